"""`allowed_hosts` entries: the forms accepted, how they are normalised, and what a refusal says."""

from __future__ import annotations

import pytest

from server.core.host_entries import check_host_entry


@pytest.mark.parametrize(
    ("entry", "normalised"),
    [
        ("example.com", "example.com"),
        ("Example.COM.", "example.com"),
        ("*.example.com", "*.example.com"),
        ("*.Example.com:8443", "*.example.com:8443"),
        ("example.com:443", "example.com:443"),
        ("example.com:08080", "example.com:8080"),
        ("localhost", "localhost"),
        ("a-b.c1.io", "a-b.c1.io"),
        ("bücher.de", "xn--bcher-kva.de"),
        ("xn--bcher-kva.de", "xn--bcher-kva.de"),
        ("203.0.113.5", "203.0.113.5"),
        ("203.0.113.5:8080", "203.0.113.5:8080"),
        ("[2001:DB8:0:0::1]", "[2001:db8::1]"),
        ("[2001:db8::1]:8443", "[2001:db8::1]:8443"),
        ("[::1]", "[::1]"),
        ("2001:db8::1", "[2001:db8::1]"),
        ("_dmarc.example.com", "_dmarc.example.com"),
    ],
)
def test_accepted_entries_are_normalised(entry: str, normalised: str) -> None:
    assert check_host_entry(entry) == normalised


@pytest.mark.parametrize(
    ("entry", "reason"),
    [
        ("", "empty or has spaces"),
        ("example .com", "empty or has spaces"),
        (" example.com", "empty or has spaces"),
        ("https://example.com", "no scheme or path"),
        ("example.com/path", "no scheme or path"),
        ("*", "wildcard may only be a whole first label"),
        ("*example.com", "wildcard may only be a whole first label"),
        ("a.*.example.com", "wildcard may only be a whole first label"),
        ("*.*.example.com", "labels of letters"),
        ("*.203.0.113.5", "not of an address"),
        ("example.com:0", "port '0' is not a number"),
        ("example.com:65536", "port '65536'"),
        ("example.com:", "port ''"),
        ("example.com:https", "port 'https'"),
        ("[2001:db8::1", "bracketed IPv6 address"),
        ("[fe80::1%eth0]", "without a zone"),
        ("[203.0.113.5]", "is not an IPv6 address"),
        ("[::1]8443", "only ':port' may follow"),
        ("[::1]:99999", "port '99999'"),
        ("256.1.1.1", "not a dotted IPv4 address"),
        ("1.2.3", "not a dotted IPv4 address"),
        ("010.0.0.1", "not a dotted IPv4 address"),
        ("-bad.example.com", "labels of letters"),
        ("bad-.example.com", "labels of letters"),
        ("example..com", "labels of letters"),
        ("a" * 64 + ".com", "labels of letters"),
        (("a" * 60 + ".") * 5 + "com", "253 in all"),
    ],
)
def test_refusals_name_the_entry_the_problem_and_the_forms_expected(entry: str, reason: str) -> None:
    with pytest.raises(ValueError) as refused:
        check_host_entry(entry)
    message = str(refused.value)
    assert f"allowed_hosts entry {entry!r}" in message, reason  # `reason`: what is wrong, for the reader
    assert "'*.example.com'" in message
    assert "':port'" in message


@pytest.mark.parametrize(
    "entry",
    ["user@example.com", "*.com", "example.com:+80", "127.1", "1.2.3.4.5", "x" * 250 + ".com", "fe80::1%eth0"],
)
def test_other_malformed_entries_are_refused_naming_the_entry(entry: str) -> None:
    with pytest.raises(ValueError) as refused:
        check_host_entry(entry)
    assert f"allowed_hosts entry {entry!r}" in str(refused.value)
