"""What the egress proxy knows about its principals: their policies, addresses, tokens, open connections and
refused hosts.

The server's loop writes it (a sandbox starts, stops) while the proxy's loop reads it on every request, from
another thread, so every access holds one `threading.Lock`, for a few dictionary operations at most: never
across an await, never long enough to stall either loop.
"""

from __future__ import annotations

import collections
import ipaddress
import secrets
import threading
from dataclasses import dataclass, replace

from server.core.common import now_rfc3339
from server.egress.host_rules import HostRules

__all__ = ["EgressPolicy", "Principals", "Refusal"]


@dataclass(frozen=True)
class EgressPolicy:
    """Where a principal may connect. `why` names the setting behind `rules`, for refusal messages, e.g.
    "networking.allowed_hosts of environment 'x'"."""

    rules: HostRules
    why: str = ""


@dataclass(frozen=True)
class Refusal:
    """Requests for one (host, port) the proxy refused: how often, first and last (RFC 3339 UTC), and why."""

    host: str
    port: int
    reason: str
    count: int
    first_at: str
    last_at: str


class Principals:
    """The proxy's thread-safe registry (see the module docstring)."""

    def __init__(self, *, max_connections: int, max_refusals: int) -> None:
        self.max_connections = max_connections
        self._max_refusals = max_refusals
        self._lock = threading.Lock()
        self._policies: dict[str, EgressPolicy] = {}
        self._sources: dict[str, str] = {}
        self._tokens: dict[str, str] = {}
        self._open: collections.Counter[str] = collections.Counter()
        self._refusals: dict[str, collections.OrderedDict[tuple[str, int], Refusal]] = {}

    def set_policy(self, principal: str, policy: EgressPolicy) -> None:
        with self._lock:
            self._policies[principal] = policy

    def drop_policy(self, principal: str) -> None:
        """Forgets the policy and the refusals; connections already open run until they end."""
        with self._lock:
            self._policies.pop(principal, None)
            self._refusals.pop(principal, None)

    def policy(self, principal: str) -> EgressPolicy | None:
        with self._lock:
            return self._policies.get(principal)

    def admit(self, source_ip: str, principal: str) -> None:
        with self._lock:
            self._sources[_ip(source_ip)] = principal

    def forget(self, source_ip: str, principal: str | None = None) -> None:
        with self._lock:
            key = _ip(source_ip)
            if principal is None or self._sources.get(key) == principal:  # not an address reused by another since
                self._sources.pop(key, None)

    def issue_token(self, principal: str) -> str:
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._tokens[token] = principal
        return token

    def revoke_token(self, token: str) -> None:
        with self._lock:
            self._tokens.pop(token, None)

    def principal(self, source_ip: str, token: str | None) -> str | None:
        """Whose connection this is: the token's principal if it carries a valid one, else the source address's."""
        with self._lock:
            by_token = self._tokens.get(token) if token else None
            return by_token or self._sources.get(_ip(source_ip))

    def claim(self, principal: str) -> bool:
        """Counts a new connection for `principal`, unless it has `max_connections` open already."""
        with self._lock:
            if self._open[principal] >= self.max_connections:
                return False
            self._open[principal] += 1
            return True

    def release(self, principal: str) -> None:
        with self._lock:
            self._open[principal] -= 1
            if self._open[principal] <= 0:
                del self._open[principal]

    def open_connections(self, principal: str) -> int:
        with self._lock:
            return self._open[principal]

    def refuse(self, principal: str, host: str, port: int, reason: str) -> None:
        """Records a refusal; only the `max_refusals` most recently refused (host, port) are kept."""
        now = now_rfc3339()
        with self._lock:
            kept = self._refusals.setdefault(principal, collections.OrderedDict())
            earlier = kept.pop((host, port), None)
            if earlier is None:
                kept[(host, port)] = Refusal(host, port, reason, 1, now, now)
            else:
                kept[(host, port)] = replace(earlier, reason=reason, count=earlier.count + 1, last_at=now)
            while len(kept) > self._max_refusals:
                kept.popitem(last=False)

    def refusals(self, principal: str) -> list[Refusal]:
        """Most recent first."""
        with self._lock:
            return list(reversed(self._refusals.get(principal, {}).values()))


def _ip(address: str) -> str:
    """`address` as one spelling: an IPv4-mapped IPv6 address (a dual-stack listener's view) as the IPv4 one."""
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address
    mapped = parsed.ipv4_mapped if isinstance(parsed, ipaddress.IPv6Address) else None
    return str(mapped or parsed)
