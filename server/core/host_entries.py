"""The syntax of one `allowed_hosts` entry, shared by validation (core) and the egress proxy's rules.

An entry names where a `limited` sandbox may connect, and nothing else: a host name (`example.com`), any
subdomain of one (`*.example.com`, not the bare name), an IPv4 literal or a bracketed IPv6 literal, each with an
optional `:port`. Entries are normalised so that equal rules compare equal: names lower-cased, the trailing dot
dropped, international names in their ASCII (IDNA) form, addresses in their canonical text, ports without
leading zeros. Schemes, paths, wildcards elsewhere and spaces are refused with the form expected, since a
mistyped rule that silently matched nothing would look like a broken network to the agent.
"""

from __future__ import annotations

import ipaddress
import re

__all__ = ["check_host_entry"]

MAX_NAME_CHARS = 253  # DNS's limit for a name in text form

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_PORT = re.compile(r"^[0-9]{1,5}$")
_FORMS = (
    "'example.com', '*.example.com' (its subdomains), '203.0.113.5' or '[2001:db8::1]', each with an optional ':port'"
)


def check_host_entry(entry: str) -> str:
    """`entry` normalised; ValueError naming the entry and the forms expected when it is not one."""
    try:
        return _normalised(entry)
    except ValueError as exc:
        raise ValueError(f"{entry[:80]!r} is not a host entry ({exc}); write {_FORMS}") from None


def _normalised(entry: str) -> str:
    if not entry or any(c.isspace() for c in entry):
        raise ValueError("empty or has spaces")
    if "://" in entry or "/" in entry:
        raise ValueError("no scheme or path, only the host")
    if entry.startswith("["):
        return _ipv6(entry)
    host, port = _split_port(entry)
    if host.startswith("*."):
        suffix = _name(host[2:])
        if suffix.rsplit(".", 1)[-1].isdigit():
            raise ValueError("a wildcard covers the subdomains of a name, not of an address")
        return "*." + suffix + port
    if "*" in host:
        raise ValueError("a wildcard may only be a whole first label, as in '*.example.com'")
    if host.count(":"):
        raise ValueError("an IPv6 address goes in brackets, as in '[2001:db8::1]'")
    return _ipv4_or_name(host) + port


def _split_port(entry: str) -> tuple[str, str]:
    """(host, ':port' or '') for an entry that is not a bracketed IPv6 literal."""
    if entry.count(":") != 1:
        return entry, ""
    host, port = entry.split(":")
    return host, _port(port)


def _port(text: str) -> str:
    if not _PORT.match(text) or not 1 <= int(text) <= 65_535:
        raise ValueError(f"port {text!r} is not a number from 1 to 65535")
    return f":{int(text)}"


def _ipv6(entry: str) -> str:
    inside, closed, rest = entry[1:].partition("]")
    if not closed or "%" in inside:
        raise ValueError("a bracketed IPv6 address, without a zone, as in '[2001:db8::1]:8443'")
    try:
        address = ipaddress.IPv6Address(inside)
    except ValueError:
        raise ValueError(f"{inside!r} is not an IPv6 address") from None
    if rest and not rest.startswith(":"):
        raise ValueError("only ':port' may follow the brackets")
    return f"[{address.compressed}]" + (_port(rest[1:]) if rest else "")


def _ipv4_or_name(host: str) -> str:
    name = _name(host)
    if name.rsplit(".", 1)[-1].isdigit():  # URL parsers read a name ending in a number as IPv4
        try:
            return str(ipaddress.IPv4Address(name))
        except ValueError:
            raise ValueError(f"{host!r} is not a dotted IPv4 address such as '203.0.113.5'") from None
    return name


def _name(host: str) -> str:
    """A DNS name in lower-case ASCII, without the trailing dot."""
    name = host.lower().removesuffix(".")
    if not name.isascii():
        try:
            name = name.encode("idna").decode("ascii")
        except UnicodeError:
            raise ValueError(f"{host!r} is not a valid international domain name") from None
    labels = name.split(".")
    if len(name) > MAX_NAME_CHARS or not all(_LABEL.match(label) for label in labels):
        raise ValueError(
            "a name is dot-separated labels of letters, digits and inner hyphens (at most 63 each, 253 in all)"
        )
    return name
