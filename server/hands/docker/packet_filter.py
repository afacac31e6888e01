"""Packet filters for the sessions' Docker networks, where the server has the rights to set them.

Docker's bridge lets a container reach the host itself through the bridge's gateway (so any service the host binds
on all interfaces, this server in team mode included), link-local addresses (169.254.169.254 answers with a cloud
VM's credentials) and private networks. Docker leaves the `DOCKER-USER` chain to the administrator for exactly
this; the host's own addresses are reached through `INPUT`, which Docker does not filter at all. So, per store:

- `MS-<store>-LIM-IN` (INPUT from the `limited` network's bridge): only TCP to the egress proxy's port on the
  gateway; everything else is rejected. Forwarding out of that network Docker already drops (it is internal).
- `MS-<store>-OPEN-IN` (INPUT from the `unrestricted` network's bridge): everything rejected.
- `MS-<store>-OPEN-FWD` (DOCKER-USER, from that bridge): replies pass, DNS to the host's own resolvers passes
  (Docker's embedded DNS forwards queries from the container's namespace), and private, shared (CGNAT),
  link-local, loopback, multicast and reserved destinations are rejected; the public internet stays open.

`MANAGED_SESSIONS_EGRESS_ALLOW_PRIVATE=1` leaves the unrestricted chains empty (the limited one stays: it is
what makes the proxy the only way out). Rules are rebuilt from scratch each time they are applied (idempotent) and
left in place when the server stops: a bridge without them would be open. IPv6 is not enabled on these networks,
so only iptables is needed. Without root (or CAP_NET_ADMIN) or without `iptables`, nothing is applied and the
state says so; `doctor` and `get_session` repeat it.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["BLOCKED_FROM_SANDBOXES", "FilterState", "PacketFilter", "host_resolvers"]

logger = logging.getLogger(__name__)

BLOCKED_FROM_SANDBOXES = (
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "224.0.0.0/4",
    "240.0.0.0/4",
)
"""IPv4 destinations an unrestricted sandbox may not reach: this-network, private (RFC 1918), shared (CGNAT),
loopback, link-local (cloud metadata), multicast and reserved."""

_TIMEOUT_S = 20.0


@dataclass(frozen=True)
class FilterState:
    """Whether packet filters guard the sandboxes' networks, and the words `get_session` shows for it."""

    enforced: bool
    detail: str


@dataclass(frozen=True)
class Bridge:
    """A sessions' network as the filter sees it: the host-side interface and the gateway address on it."""

    interface: str
    gateway: str


class PacketFilter:
    """Applies the rules described in the module docstring for one store's networks."""

    def __init__(self, store_id: str, iptables: str | None = "iptables") -> None:
        """`iptables`: the program (looked up on PATH); None stands for a machine without it."""
        self._prefix = f"MS-{store_id[:8].upper()}"
        self._iptables = shutil.which(iptables) if iptables else None

    def why_not(self) -> str | None:
        """Why rules cannot be set here, or None when they can."""
        if self._iptables is None:
            return "iptables is not installed on the server's machine"
        if os.geteuid() != 0:
            return "the server does not run as root (needed to set packet filters)"
        done = self._run(["-S", "DOCKER-USER"], check=False)
        if done.returncode != 0:
            return f"iptables refused to list Docker's DOCKER-USER chain: {done.stderr.strip() or done.returncode}"
        return None

    def apply(
        self, limited: Bridge, unrestricted: Bridge, proxy_port: int, *, allow_private: bool, resolvers: Sequence[str]
    ) -> FilterState:
        """Rebuilds this store's rules; returns what is in force (never raises: a failure is reported, not fatal)."""
        reason = self.why_not()
        if reason is not None:
            return FilterState(False, f"not enforced: {reason}")
        try:
            self._chain(
                f"{self._prefix}-LIM-IN",
                "INPUT",
                limited.interface,
                [
                    ["-p", "tcp", "-d", limited.gateway, "--dport", str(proxy_port), "-j", "ACCEPT"],
                    ["-p", "tcp", "-j", "REJECT", "--reject-with", "tcp-reset"],
                    ["-j", "REJECT"],
                ],
            )
            self._chain(
                f"{self._prefix}-OPEN-IN",
                "INPUT",
                unrestricted.interface,
                []
                if allow_private
                else [["-p", "tcp", "-j", "REJECT", "--reject-with", "tcp-reset"], ["-j", "REJECT"]],
            )
            self._chain(f"{self._prefix}-OPEN-FWD", "DOCKER-USER", unrestricted.interface, _forward_rules(
                allow_private, resolvers
            ))  # fmt: skip
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
            detail = getattr(exc, "stderr", None) or exc
            logger.warning("could not set the sandboxes' packet filters: %s", detail)
            return FilterState(False, f"not enforced: iptables failed: {str(detail).strip()}")
        opened = "; private addresses allowed (MANAGED_SESSIONS_EGRESS_ALLOW_PRIVATE=1)" if allow_private else ""
        return FilterState(True, f"iptables chains {self._prefix}-* (INPUT and DOCKER-USER){opened}")

    def remove(self, interfaces: Sequence[str]) -> None:
        """Removes this store's chains and their jumps (with its networks: a bridge that is gone needs none)."""
        if self.why_not() is not None:
            return
        for chain, parent in ((f"{self._prefix}-LIM-IN", "INPUT"), (f"{self._prefix}-OPEN-IN", "INPUT"),
                              (f"{self._prefix}-OPEN-FWD", "DOCKER-USER")):  # fmt: skip
            for interface in interfaces:
                while self._run(["-D", parent, "-i", interface, "-j", chain], check=False).returncode == 0:
                    pass
            self._run(["-F", chain], check=False)
            self._run(["-X", chain], check=False)

    def _chain(self, chain: str, parent: str, interface: str, rules: list[list[str]]) -> None:
        """Makes `chain` hold exactly `rules`, jumped to first from `parent` for packets in on `interface`."""
        if self._run(["-n", "-L", chain], check=False).returncode != 0:
            self._run(["-N", chain])
        self._run(["-F", chain])
        for rule in rules:
            self._run(["-A", chain, *rule])
        jump = ["-i", interface, "-j", chain]
        while self._run(["-D", parent, *jump], check=False).returncode == 0:
            pass  # a jump left by an earlier start (or a duplicate): one is put back below
        self._run(["-I", parent, "1", *jump])

    def _run(self, args: list[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
        assert self._iptables is not None
        return subprocess.run(  # noqa: S603 (a fixed binary and arguments this module builds)
            [self._iptables, "-w", "5", *args], capture_output=True, text=True, check=check, timeout=_TIMEOUT_S
        )


def _forward_rules(allow_private: bool, resolvers: Sequence[str]) -> list[list[str]]:
    if allow_private:
        return []
    rules = [["-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "RETURN"]]
    for resolver in resolvers:
        rules += [["-d", resolver, "-p", proto, "--dport", "53", "-j", "RETURN"] for proto in ("udp", "tcp")]
    rules += [["-d", network, "-j", "REJECT"] for network in BLOCKED_FROM_SANDBOXES]
    return rules


def host_resolvers(resolv_conf: str = "/etc/resolv.conf") -> list[str]:
    """The IPv4 name servers Docker's embedded DNS forwards to (systemd-resolved's upstreams behind its stub)."""
    servers = _nameservers(resolv_conf)
    if any(server.startswith("127.") for server in servers):  # a local stub: Docker uses the real upstreams
        servers = _nameservers("/run/systemd/resolve/resolv.conf") or servers
    return [server for server in servers if ":" not in server and not server.startswith("127.")]


def _nameservers(path: str) -> list[str]:
    try:
        with open(path, encoding="utf-8", errors="replace") as lines:
            return [
                words[1] for words in (line.split() for line in lines) if len(words) >= 2 and words[0] == "nameserver"
            ]
    except OSError:
        return []
