"""The syntax of a host allow-list entry (`networking.allowed_hosts`) and of the host a request names.

It lives in core because environment validation refuses a bad entry when the environment is saved, long before
the egress proxy (which imports it from here) matches requests against it. Entry forms:

- `example.com`: that name only (lower-cased, one trailing dot dropped, internationalised names in IDNA form);
- `*.example.com`: any name below example.com, not example.com itself;
- `203.0.113.5`, `[2001:db8::1]`: that address, matching only a request naming that same address literally;
- any of them with `:port`; without one, ports 80 and 443.

A name whose last label is all digits (`127.1`) is refused: resolvers read it as an IPv4 address.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

__all__ = ["DEFAULT_PORTS", "HostEntry", "check_host_entry", "normalise_host", "parse_host_entry"]

DEFAULT_PORTS = frozenset({80, 443})
"""The ports an entry without `:port` opens: plain HTTP and HTTPS."""

EXPECTED = (
    "expected a host name ('example.com'), a wildcard for its subdomains ('*.example.com') or an IP address "
    "('203.0.113.5', '[2001:db8::1]'), each with an optional ':port'"
)

_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")
_PORT = re.compile(r"[0-9]{1,5}")
_MAX_NAME = 253


@dataclass(frozen=True)
class HostEntry:
    """One parsed entry. `host` is a normalised name, the suffix of a wildcard, or an address as `str(ip)`."""

    host: str
    port: int | None = None
    wildcard: bool = False
    is_ip: bool = False

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else f"*.{self.host}" if self.wildcard else self.host
        return host if self.port is None else f"{host}:{self.port}"


def check_host_entry(entry: str) -> str:
    """`entry` in its normalised form, for display and storage.

    Raises:
        ValueError: the entry is not one of the forms above; the message names it and the forms.
    """
    return str(parse_host_entry(entry))


def parse_host_entry(entry: str) -> HostEntry:
    """`entry` parsed (see `check_host_entry`)."""
    try:
        return _parse(entry)
    except ValueError as exc:
        raise ValueError(f"allowed_hosts entry {entry!r}: {exc}; {EXPECTED}") from None


def normalise_host(host: str) -> str:
    """The host of a request as entries store it: an IP address as `str(ip)` (no brackets), else the name
    lower-cased, in IDNA form, without a trailing dot.

    Raises:
        ValueError: `host` is neither an IP address nor a valid host name.
    """
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return _name(host)


def _parse(entry: str) -> HostEntry:
    if any(c.isspace() or c in "/@%" for c in entry):
        raise ValueError("no spaces, schemes, paths, user names or zone ids")
    host, port = _split_port(entry)
    if host.startswith("[") or ":" in host:
        address = ipaddress.IPv6Address(host.removeprefix("[").removesuffix("]"))
        return HostEntry(str(address), port, is_ip=True)
    if host.startswith("*."):
        suffix = _name(host[2:])
        if "." not in suffix:
            raise ValueError("a wildcard must stand for subdomains of a domain, such as '*.example.com'")
        return HostEntry(suffix, port, wildcard=True)
    try:
        return HostEntry(str(ipaddress.IPv4Address(host)), port, is_ip=True)
    except ValueError:
        return HostEntry(_name(host), port)


def _split_port(entry: str) -> tuple[str, int | None]:
    """(host, port) of an entry; a bare IPv6 address (two colons or more) has no port."""
    if entry.startswith("["):
        host, bracket, rest = entry.partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ValueError("an IPv6 address goes in brackets, with the port after them")
        return host + bracket, _port(rest[1:]) if rest else None
    if entry.count(":") == 1:
        host, _, port = entry.partition(":")
        return host, _port(port)
    return entry, None


def _port(text: str) -> int:
    port = int(text) if _PORT.fullmatch(text) else 0
    if not 1 <= port <= 65535:
        raise ValueError(f"the port {text!r} is not a number from 1 to 65535")
    return port


def _name(host: str) -> str:
    name = host.lower().removesuffix(".")
    if not name.isascii():
        try:
            name = name.encode("idna").decode("ascii")
        except UnicodeError as exc:
            raise ValueError(f"{host!r} is not a valid internationalised name ({exc})") from None
    labels = name.split(".")
    if len(name) > _MAX_NAME or not all(_LABEL.fullmatch(label) for label in labels):
        raise ValueError(f"{host!r} is not a valid host name")
    if labels[-1].isdigit():
        raise ValueError(f"{host!r} looks like an IPv4 address but is not one")
    return name
