"""Normalization of what credentials match: both sides of a match go through the same functions."""

from __future__ import annotations

import pytest

from vault import VaultError, git_host_of, normalize_git_host, normalize_mcp_url


@pytest.mark.parametrize(
    ("given", "normalized"),
    [
        ("https://mcp.example.com/mcp", "https://mcp.example.com/mcp"),
        ("HTTPS://MCP.Example.COM/mcp/", "https://mcp.example.com/mcp"),
        ("https://mcp.example.com:443/mcp", "https://mcp.example.com/mcp"),
        ("http://mcp.example.com:80/", "http://mcp.example.com"),
        ("https://mcp.example.com:8443/mcp", "https://mcp.example.com:8443/mcp"),
        ("http://mcp.example.com:443/mcp", "http://mcp.example.com:443/mcp"),
        ("https://mcp.example.com/MCP/v1//", "https://mcp.example.com/MCP/v1"),
        ("https://mcp.example.com/mcp?tenant=a#frag", "https://mcp.example.com/mcp"),
        ("  https://mcp.example.com/mcp  ", "https://mcp.example.com/mcp"),
        ("http://127.0.0.1:8931/mcp", "http://127.0.0.1:8931/mcp"),
        ("http://[::1]:8931/mcp", "http://[::1]:8931/mcp"),
    ],
)
def test_mcp_urls_normalize_like_the_hosted_api(given: str, normalized: str) -> None:
    assert normalize_mcp_url(given) == normalized


def test_a_different_path_subdomain_or_port_is_a_different_server() -> None:
    base = normalize_mcp_url("https://mcp.example.com/mcp")
    for other in (
        "https://mcp.example.com/other",
        "https://api.mcp.example.com/mcp",
        "https://mcp.example.com:444/mcp",
    ):
        assert normalize_mcp_url(other) != base


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("ftp://mcp.example.com/x", "only http:// and https://"),
        ("mcp.example.com/mcp", "only http:// and https://"),
        ("https://user:pw@mcp.example.com/mcp", "user name or password"),
        ("https://token@mcp.example.com/mcp", "user name or password"),
        ("https://mcp.example.com:99999/", "invalid port"),
        ("https://mcp example.com/", "spaces"),
        ("", "empty"),
        ("https://bad..host/", "invalid host name"),
    ],
)
def test_bad_mcp_urls_are_refused_with_the_reason(given: str, message: str) -> None:
    with pytest.raises(VaultError, match=message):
        normalize_mcp_url(given)


def test_a_refused_url_with_a_password_does_not_echo_the_password() -> None:
    with pytest.raises(VaultError) as raised:
        normalize_mcp_url("https://user:hunter2hunter2@mcp.example.com/mcp")
    assert "hunter2" not in str(raised.value)


@pytest.mark.parametrize(
    ("given", "host"),
    [
        ("github.com", "github.com"),
        ("GitHub.com", "github.com"),
        ("https://github.com", "github.com"),
        ("https://github.com/owner/repo.git", "github.com"),
        ("github.com/owner/repo", "github.com"),
        ("ghe.example.com:8443", "ghe.example.com:8443"),
        ("https://ghe.example.com:8443/org/repo", "ghe.example.com:8443"),
        ("https://ghe.example.com:443/org/repo", "ghe.example.com"),
        ("ghe.example.com:443", "ghe.example.com"),
        ("http://git.internal:80/x.git", "git.internal"),
        ("http://127.0.0.1:9418/private.git", "127.0.0.1:9418"),
    ],
)
def test_git_hosts_normalize_to_lowercase_host_and_port(given: str, host: str) -> None:
    assert normalize_git_host(given) == host


@pytest.mark.parametrize(
    "given",
    ["git@github.com:owner/repo.git", "ssh://git@github.com/owner/repo", "", "https://x:y@github.com/o/r", "a b"],
)
def test_bad_git_hosts_are_refused(given: str) -> None:
    with pytest.raises(VaultError):
        normalize_git_host(given)


def test_git_host_of_needs_a_full_url() -> None:
    assert git_host_of("https://GITHUB.com:443/a/b") == "github.com"
    with pytest.raises(VaultError, match="only http:// and https://"):
        git_host_of("github.com/a/b")
