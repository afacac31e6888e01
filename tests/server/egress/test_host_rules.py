"""How the proxy matches requests against allowed_hosts entries (their syntax: tests/server/test_host_entries.py)."""

from __future__ import annotations

import pytest

from server.egress.host_rules import HostRules


def test_a_bad_entry_among_good_ones_is_named() -> None:
    with pytest.raises(ValueError, match=r"'exa mple\.org'"):
        HostRules.parse(["example.com", "exa mple.org"])


def test_a_name_without_a_port_allows_http_and_https_only() -> None:
    rules = HostRules.parse(["example.com"])

    assert rules.allows("example.com", 443)
    assert rules.allows("EXAMPLE.com.", 80)
    assert not rules.allows("example.com", 8443)
    assert not rules.allows("example.com", 22)


def test_a_port_opens_that_port_only_and_entries_add_up() -> None:
    rules = HostRules.parse(["example.com:8443", "example.com:22"])

    assert rules.allows("example.com", 8443)
    assert rules.allows("example.com", 22)
    assert not rules.allows("example.com", 443)


def test_a_wildcard_matches_subdomains_at_any_depth_but_not_the_bare_name() -> None:
    rules = HostRules.parse(["*.example.com"])

    assert rules.allows("api.example.com", 443)
    assert rules.allows("a.b.example.com", 443)
    assert not rules.allows("example.com", 443)
    assert not rules.allows("badexample.com", 443)
    assert not rules.allows("example.com.evil.org", 443)


def test_an_exact_name_does_not_match_its_subdomains() -> None:
    rules = HostRules.parse(["example.com"])

    assert not rules.allows("api.example.com", 443)


def test_ip_literals_match_only_the_same_literal() -> None:
    rules = HostRules.parse(["203.0.113.5", "[2001:db8::1]:8443", "example.com", "*.example.com"])

    assert rules.allows("203.0.113.5", 443)
    assert rules.allows("[2001:db8::1]", 8443)
    assert rules.allows("2001:db8:0:0::1", 8443)
    assert not rules.allows("203.0.113.6", 443)
    assert not rules.allows("[2001:db8::1]", 443)


def test_a_name_entry_never_matches_an_ip_request() -> None:
    rules = HostRules.parse(["*.example.com", "localhost"])

    assert not rules.allows("127.0.0.1", 80)
    assert not rules.allows("::1", 80)


def test_hosts_that_are_not_names_match_nothing() -> None:
    rules = HostRules.parse(["example.com"])

    assert not rules.allows("", 443)
    assert not rules.allows("example.com/x", 443)
    assert not rules.allows("127.1", 443)


def test_internationalised_names_match_in_either_form() -> None:
    rules = HostRules.parse(["bücher.de"])

    assert rules.allows("xn--bcher-kva.de", 443)
    assert rules.allows("BÜCHER.de", 443)


def test_rules_compare_and_hash_by_their_normalised_entries() -> None:
    first = HostRules.parse(["Example.com", "example.com."])
    second = HostRules.parse(["example.com"])

    assert first == second
    assert hash(first) == hash(second)
    assert first.entries == ("example.com",)
