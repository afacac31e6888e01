"""The egress proxy's HTTP/1.x: the request heads it accepts, the heads it forwards, the answers it gives.

Strict on purpose: a request the proxy cannot read exactly is answered 400, never guessed at, since what it
decides (which host, which port) comes from these bytes. Bodies are never parsed: they are relayed as bytes to a
destination already checked, so a second request hidden in them can reach only that same host and port.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from http import HTTPStatus

from server.core.host_entries import normalise_host

__all__ = ["BadMessage", "ProxyRequest", "answer", "forwarded_response_head", "parse_request"]

_REQUEST_LINE = re.compile(r"([!#$%&'*+.^_`|~0-9A-Za-z-]+) ([\x21-\x7e]+) HTTP/(1\.[01])")
_HEADER = re.compile(r"([!#$%&'*+.^_`|~0-9A-Za-z-]+):[ \t]*([^\x00-\x08\x0a-\x1f\x7f]*?)[ \t]*")
_STATUS_LINE = re.compile(r"HTTP/1\.[01] ([1-9][0-9]{2})(?: [^\x00-\x08\x0a-\x1f\x7f]*)?")
_PORT = re.compile(r"[0-9]{1,5}")
_HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-connection", "proxy-authorization", "te", "upgrade"})
_Headers = tuple[tuple[str, str], ...]


class BadMessage(ValueError):
    """A request (or upstream response) head that is not well-formed HTTP/1.x; the message says what is wrong."""


@dataclass(frozen=True)
class ProxyRequest:
    """A request to the proxy: CONNECT host:port, or a plain-HTTP request with an absolute http:// URI.

    Attributes:
        host: the destination as `normalise_host` gives it (an IPv6 address without brackets).
        target: the origin-form target sent upstream (path and query), "" for CONNECT.
    """

    method: str
    host: str
    port: int
    target: str
    headers: _Headers

    @property
    def is_connect(self) -> bool:
        return self.method == "CONNECT"

    @property
    def authority(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def shown(self) -> str:
        """The request for logs: never its query string, which may carry secrets."""
        if self.is_connect:
            return f"CONNECT {self.authority}"
        return f"{self.method} http://{self.authority}{self.target.partition('?')[0]}"

    def header(self, name: str) -> str | None:
        return next((value for key, value in self.headers if key.lower() == name), None)

    def token(self) -> str | None:
        """The secret of `Proxy-Authorization: Basic base64("build:" + token)`, if the request carries one."""
        scheme, _, credentials = (self.header("proxy-authorization") or "").partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            user, _, secret = base64.b64decode(credentials.strip(), validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return secret if user == "build" and secret else None

    def forwarded_head(self) -> bytes:
        """The head sent upstream: origin-form target, Host from the URI, no hop-by-hop or proxy headers, and
        `Connection: close`, so that one client connection carries one request, each one checked."""
        listed = {name.strip().lower() for name in (self.header("connection") or "").split(",")}
        kept = [(k, v) for k, v in self.headers if k.lower() not in _HOP_BY_HOP | listed | {"host"}]
        host = self.authority.removesuffix(":80")
        lines = [f"{self.method} {self.target} HTTP/1.1", f"Host: {host}", *(f"{k}: {v}" for k, v in kept)]
        return "\r\n".join([*lines, "Connection: close", "", ""]).encode("latin-1")


def parse_request(head: bytes) -> ProxyRequest:
    """The request in `head` (the bytes before the blank line).

    Raises:
        BadMessage: it is not a request this proxy serves; the message says why.
    """
    request_line, *header_lines = head.decode("latin-1").split("\r\n")
    line = _REQUEST_LINE.fullmatch(request_line)
    if line is None:
        raise BadMessage(f"the request line {request_line[:100]!r} is not 'METHOD target HTTP/1.1'")
    method, target, version = line.groups()
    headers = _headers(header_lines)
    hosts = [value for key, value in headers if key.lower() == "host"]
    if len(hosts) > 1 or (version == "1.1" and method != "CONNECT" and not hosts):
        raise BadMessage("an HTTP/1.1 request needs exactly one Host header")
    if method == "CONNECT":
        host, port = _authority(target, default_port=None)
        return ProxyRequest(method, host, port, "", headers)
    host, port, path = _absolute_http(target)
    return ProxyRequest(method, host, port, path, headers)


def forwarded_response_head(head: bytes) -> tuple[int, bytes]:
    """An upstream response head as the client gets it: with `Connection: close` (see `forwarded_head`).

    Raises:
        BadMessage: the upstream's answer is not an HTTP/1.x response head.
    """
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    line = _STATUS_LINE.fullmatch(status_line)
    if line is None:
        raise BadMessage(f"the upstream answered {status_line[:100]!r}, not an HTTP/1.x status line")
    headers = _headers(header_lines)
    listed = {
        name.strip().lower() for key, value in headers if key.lower() == "connection" for name in value.split(",")
    }
    kept = [f"{k}: {v}" for k, v in headers if k.lower() not in _HOP_BY_HOP | listed]
    status = int(line.group(1))
    closing = [] if status < 200 else ["Connection: close"]
    return status, "\r\n".join([status_line, *kept, *closing, "", ""]).encode("latin-1")


def answer(status: int, body: str, *, error: str) -> bytes:
    """A complete response from the proxy itself, with an RFC 9209 `Proxy-Status` naming the `error` type."""
    data = f"egress proxy: {body}\n".encode()
    head = (
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(data)}\r\n"
        f"Proxy-Status: managed-sessions-egress; error={error}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode("ascii") + data


def _headers(lines: list[str]) -> _Headers:
    headers = []
    for text in lines:
        match = _HEADER.fullmatch(text)
        if match is None:
            raise BadMessage(f"the header line {text[:100]!r} is not 'Name: value'")
        headers.append((match.group(1), match.group(2)))
    return tuple(headers)


def _absolute_http(target: str) -> tuple[str, int, str]:
    scheme, separator, rest = target.partition("://")
    if not separator:
        raise BadMessage(f"{target[:100]!r} is not an absolute URI: send 'GET http://host/path' or CONNECT to a proxy")
    if scheme.lower() != "http":
        hint = (
            "; for https, send CONNECT host:443 and speak TLS through the tunnel" if scheme.lower() == "https" else ""
        )
        raise BadMessage(f"only http:// URIs are relayed, not {scheme[:20]!r}{hint}")
    cut = min((i for i in (rest.find("/"), rest.find("?")) if i >= 0), default=len(rest))
    host, port = _authority(rest[:cut], default_port=80)
    path = rest[cut:]
    return host, port, path if path.startswith("/") else f"/{path}"


def _authority(text: str, *, default_port: int | None) -> tuple[str, int]:
    """(host, port) of `host:port`, `[v6]:port`, or (with a default port) a bare host."""
    if "@" in text:
        raise BadMessage(f"{text[:100]!r}: user names in the URI are not relayed")
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or ":" not in host or (rest and not rest.startswith(":")):
            raise BadMessage(f"{text[:100]!r} is not '[IPv6 address]:port'")
        port_text = rest.removeprefix(":")
    else:
        host, _, port_text = text.rpartition(":") if ":" in text else (text, "", "")
        if ":" in host:
            raise BadMessage(f"{text[:100]!r}: an IPv6 address goes in brackets, '[2001:db8::1]:443'")
    if not port_text and default_port is None:
        raise BadMessage(f"{text[:100]!r} has no port: CONNECT needs 'host:port'")
    port = int(port_text) if _PORT.fullmatch(port_text) else 0 if port_text else default_port or 0
    if not 1 <= port <= 65535:
        raise BadMessage(f"{text[:100]!r}: the port is not a number from 1 to 65535")
    try:
        return normalise_host(host), port
    except ValueError:
        raise BadMessage(f"{host[:100]!r} is not a host name or an IP address") from None
