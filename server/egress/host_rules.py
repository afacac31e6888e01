"""Which (host, port) a sandbox may reach: an environment's `allowed_hosts`, parsed once, matched per request.

The entry syntax is core's (`server.core.host_entries`), so validation and matching cannot disagree. Matching is
by name as the request gives it, before any resolution: whether the address it resolves to may be reached is the
proxy's separate check. A name entry never matches a request for an IP address, nor an IP entry a name.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from server.core.host_entries import DEFAULT_PORTS, check_host_entry, normalise_host, parse_host_entry

__all__ = ["HostRules", "check_host_entry"]

_Ports = frozenset[int]


@dataclass(frozen=True)
class HostRules:
    """An allow-list of hosts. Equal (and hashed) by its normalised `entries`."""

    entries: tuple[str, ...]
    _exact: Mapping[str, _Ports] = field(compare=False, repr=False)
    _below: Mapping[str, _Ports] = field(compare=False, repr=False)

    @classmethod
    def parse(cls, entries: Iterable[str]) -> HostRules:
        """Rules from `allowed_hosts` entries.

        Raises:
            ValueError: an entry is malformed; the message names it and the forms expected.
        """
        exact: dict[str, _Ports] = {}
        below: dict[str, _Ports] = {}
        shown: list[str] = []
        for text in entries:
            entry = parse_host_entry(text)
            ports = DEFAULT_PORTS if entry.port is None else frozenset({entry.port})
            table = below if entry.wildcard else exact
            table[entry.host] = table.get(entry.host, frozenset()) | ports
            shown.append(str(entry))
        return cls(tuple(dict.fromkeys(shown)), MappingProxyType(exact), MappingProxyType(below))

    def allows(self, host: str, port: int) -> bool:
        """Whether a request for `host` (a name, or an IP address with or without brackets) on `port` matches."""
        try:
            name = normalise_host(host.removeprefix("[").removesuffix("]"))
        except ValueError:
            return False
        if port in self._exact.get(name, ()):
            return True
        if _is_address(name):  # matches only its literal entry
            return False
        parents = (name[i + 1 :] for i, char in enumerate(name) if char == ".")
        return any(port in self._below.get(parent, ()) for parent in parents)


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
