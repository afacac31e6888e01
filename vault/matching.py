"""What a credential matches: an MCP server URL (static_bearer) or a git host (github_token).

Both sides of a match, the one stored at `vault add` and the one a session asks about, go
through the same normalization, so `HTTPS://MCP.Example.com:443/mcp/` and
`https://mcp.example.com/mcp` are one server. As in the hosted API, a different path,
subdomain or non-default port is a different server: a token is only ever offered to the
place its owner named.
"""

from __future__ import annotations

import re
from urllib.parse import SplitResult, urlsplit

from vault.errors import VaultError

__all__ = ["git_host_of", "normalize_git_host", "normalize_mcp_url"]

_DEFAULT_PORTS = {"https": 443, "http": 80}
# Underscores are not valid in DNS host names but do occur in container networks' service names.
_LABEL = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
_HOSTNAME = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*$")
_IPV6 = re.compile(r"^[0-9a-f:.]+$")


def normalize_mcp_url(url: str) -> str:
    """`scheme://host[:port]/path`: lowercase scheme and host, no default port, no trailing slash.

    The query and fragment are dropped (they do not change which server gets the token).

    Raises:
        VaultError: not an http(s) URL with a host, or it carries a user name or password.
    """
    parts = _split_url(url, what="an MCP server URL")
    return f"{parts.scheme.lower()}://{_host_port(parts, url)}{parts.path.rstrip('/')}"


def normalize_git_host(value: str) -> str:
    """`host[:port]` in lowercase, from `github.com`, `ghe.example.com:8443` or a repository URL.

    Raises:
        VaultError: neither a host name (with an optional port) nor an http(s) URL.
    """
    text = value.strip()
    if "://" in text:
        return git_host_of(text)
    if "@" in text or not text:
        raise VaultError(
            f"{value!r} is not a git host: give a host name such as 'github.com' or 'ghe.example.com:8443', "
            "or an https repository URL (ssh forms like 'git@host:owner/repo' are not used with tokens)"
        )
    host = text.split("/", 1)[0]  # 'github.com/owner/repo' names the host github.com
    return _host_port(_split_url(f"https://{host}", what="a git host", original=value), value)


def git_host_of(url: str) -> str:
    """`host[:port]` of an http(s) repository URL, as `normalize_git_host` gives it.

    Raises:
        VaultError: not an http(s) URL with a host, or it carries a user name or password.
    """
    return _host_port(_split_url(url, what="a repository URL"), url)


def _split_url(url: str, *, what: str, original: str | None = None) -> SplitResult:
    shown = url if original is None else original
    text = url.strip()
    if not text or any(ch.isspace() or ord(ch) < 32 for ch in text):
        raise VaultError(f"{shown!r} is not {what}: it is empty or holds spaces or control characters")
    parts = urlsplit(text)
    if parts.scheme.lower() not in _DEFAULT_PORTS or not parts.netloc:
        raise VaultError(f"{shown!r} is not {what}: only http:// and https:// URLs with a host are accepted")
    if "@" in parts.netloc:
        # A user name or password in the URL is a credential outside the keyring: refuse to keep or match it.
        raise VaultError(f"{what} must not carry a user name or password ({parts.scheme}://USER@HOST); remove it")
    return parts


def _host_port(parts: SplitResult, original: str) -> str:
    """Lowercase host, with the port unless it is the scheme's default."""
    host = (parts.hostname or "").lower()
    try:
        port = parts.port
    except ValueError:
        raise VaultError(f"{original!r} has an invalid port") from None
    if parts.netloc.startswith("["):
        if not _IPV6.match(host):
            raise VaultError(f"{original!r} has an invalid IPv6 address")
        host = f"[{host}]"
    elif not _HOSTNAME.match(host):
        raise VaultError(f"{original!r} has an invalid host name {host!r}")
    if port is None or port == _DEFAULT_PORTS[parts.scheme.lower()]:
        return host
    return f"{host}:{port}"
