"""The sessions' Docker networks and the egress proxy in front of the `limited` one.

Per store, made on first need (a server whose sandboxes have no network makes none):

- `ms-<store>-limited`: an *internal* bridge (no route out, no DNS for outside names), inter-container traffic
  off. The only thing a sandbox on it can reach is the egress proxy, which this server runs on its own thread
  (see `server/egress/proxy.py`) on the bridge's gateway address. The proxy knows a sandbox by its address on
  this network, registered when its container starts or is found running. Its packets never leave this machine,
  so it has a loopback-sized MTU (`LIMITED_MTU`): the sandbox-to-proxy leg then moves far fewer, larger packets,
  which is what lets a download through the proxy keep up with a direct one (`benchmarks/bench_egress.py`).
- `ms-<store>-open`: an ordinary bridge for `unrestricted` sandboxes, inter-container traffic off, with packet
  filters (see `packet_filter.py`) keeping it off the host and private networks where the server may set them.

The bridges are named after the store (`msl-<store>` / `mso-<store>`), so the filters have stable interfaces.
Networks stay when the server stops (containers of a resumed session re-attach to them). A container's proxy
variables are set when it is made, so a restarted server listens on the port the store's running sandboxes were
given, when it can; a container whose proxy variables name another address is remade (see `sandbox.py`).
"""

from __future__ import annotations

import errno
import logging
import threading
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from server.core.errors import SandboxUnavailableError
from server.egress.proxy import EgressProxy
from server.hands.docker.packet_filter import Bridge, FilterState, PacketFilter, host_resolvers

if TYPE_CHECKING:
    from docker import DockerClient


__all__ = ["NetworkPlan", "SandboxNetworks"]

logger = logging.getLogger(__name__)

NO_PROXY = "localhost,127.0.0.1,::1"

LIMITED_MTU = 65520
"""The limited network's MTU: it carries only sandbox <-> proxy traffic on this host, never a real link."""


@dataclass(frozen=True)
class NetworkPlan:
    """What a container joins and the proxy settings it gets (empty for unrestricted)."""

    network: str
    proxy_url: str | None

    def environment(self, credentials: str | None = None) -> dict[str, str]:
        """The proxy variables, both spellings (curl reads only the lower-case `http_proxy`)."""
        if self.proxy_url is None:
            return {}
        url = self.proxy_url if credentials is None else self.proxy_url.replace("://", f"://{credentials}@", 1)
        names = ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy")
        return {**dict.fromkeys(names, url), "NO_PROXY": NO_PROXY, "no_proxy": NO_PROXY}


@dataclass(frozen=True)
class _Ready:
    limited: NetworkPlan
    unrestricted: NetworkPlan
    filters: FilterState


class SandboxNetworks:
    """Makes the store's two networks, starts the proxy on the limited one and applies the filters, once."""

    def __init__(
        self, store_id: str, proxy: EgressProxy, *, allow_private: bool, packet_filter: PacketFilter | None = None
    ) -> None:
        self._store_id = store_id
        self.proxy = proxy
        self._allow_private = allow_private
        self._filter = packet_filter or PacketFilter(store_id)
        self._ready: _Ready | None = None
        self._lock = threading.Lock()

    @property
    def proxy_url(self) -> str | None:
        """The egress proxy's address on the limited network, once set up."""
        return None if self._ready is None else self._ready.limited.proxy_url

    @property
    def filters(self) -> FilterState | None:
        """The packet filters in force, once the networks are set up."""
        return None if self._ready is None else self._ready.filters

    def plan(self, client: DockerClient, kind: str) -> NetworkPlan:
        """The network for `kind` ('limited' or 'unrestricted'), setting everything up on first call (blocking)."""
        ready = self._ensure(client)
        return ready.limited if kind == "limited" else ready.unrestricted

    def _ensure(self, client: DockerClient) -> _Ready:
        with self._lock:
            if self._ready is None:
                self._ready = self._set_up(client)
            return self._ready

    def _set_up(self, client: DockerClient) -> _Ready:
        short = self._store_id[:12].lower()
        limited = _network(client, f"ms-{short}-limited", f"msl-{short[:10]}", internal=True, store=self._store_id)
        unrestricted = _network(client, f"ms-{short}-open", f"mso-{short[:10]}", internal=False, store=self._store_id)
        self.proxy.start()
        try:
            port = self._listen(limited.gateway, _port_of_running_sandboxes(client, limited, self._store_id))
        except OSError as exc:
            raise SandboxUnavailableError(
                f"the egress proxy cannot listen on {limited.gateway} (the gateway of Docker network "
                f"{limited.name!r}): {exc}. Limited networking needs the Docker engine on this machine's own network "
                "(not in a VM such as Docker Desktop's); use networking 'none' or 'unrestricted' there"
            ) from exc
        filters = self._filter.apply(
            Bridge(limited.interface, limited.gateway),
            Bridge(unrestricted.interface, unrestricted.gateway),
            port,
            allow_private=self._allow_private,
            resolvers=host_resolvers(),
        )
        logger.info(
            "sandbox networks ready: %s (proxy %s:%d), %s; packet filters %s",
            limited.name,
            limited.gateway,
            port,
            unrestricted.name,
            filters.detail,
        )
        return _Ready(
            NetworkPlan(limited.name, f"http://{limited.gateway}:{port}"), NetworkPlan(unrestricted.name, None), filters
        )

    def _listen(self, gateway: str, earlier: int | None) -> int:
        """The proxy's port on `gateway`: the one running sandboxes expect (`earlier`: their proxy variables were
        set when they were made), else the store's own, else any free one (running sandboxes are then remade)."""
        for port in dict.fromkeys(p for p in (earlier, _store_port(self._store_id)) if p is not None):
            try:
                return self.proxy.listen(gateway, port)
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE:
                    raise
                logger.info("the egress proxy cannot listen on %s:%d (in use); trying another port", gateway, port)
        return self.proxy.listen(gateway, 0)


def _store_port(store_id: str) -> int:
    """A port in 30000-49999 that is the same for a store at every start (outside Linux's ephemeral range)."""
    return 30_000 + zlib.crc32(store_id.encode()) % 20_000


@dataclass(frozen=True)
class _Network:
    name: str
    interface: str
    gateway: str


def _network(client: DockerClient, name: str, bridge: str, *, internal: bool, store: str) -> _Network:
    """The network `name`, made if missing (blocking); its bridge interface and gateway."""
    import docker.errors

    try:
        try:
            network = client.networks.get(name)
            _note_small_mtu(network.attrs, internal=internal)
        except docker.errors.NotFound:
            options = {"com.docker.network.bridge.enable_icc": "false", "com.docker.network.bridge.name": bridge}
            if internal:
                options["com.docker.network.driver.mtu"] = str(LIMITED_MTU)
            try:
                network = client.networks.create(
                    name,
                    driver="bridge",
                    internal=internal,
                    options=options,
                    labels={"io.managed-sessions.store": store},
                )
            except docker.errors.APIError as exc:
                if exc.status_code != 409:  # 409: another process made it meanwhile
                    raise
                network = client.networks.get(name)
            network.reload()
    except docker.errors.APIError as exc:
        raise SandboxUnavailableError(f"could not make the sandboxes' Docker network {name!r}: {exc}") from exc
    configs: Sequence[dict[str, str]] = (network.attrs.get("IPAM") or {}).get("Config") or []
    gateway = next((c["Gateway"] for c in configs if c.get("Gateway") and ":" not in c["Gateway"]), None)
    if gateway is None:
        raise SandboxUnavailableError(f"Docker network {name!r} has no IPv4 gateway; remove it and try again")
    interface = (network.attrs.get("Options") or {}).get("com.docker.network.bridge.name") or f"br-{network.short_id}"
    return _Network(name, interface, gateway)


def _note_small_mtu(attrs: dict[str, object], *, internal: bool) -> None:
    """Say once that a limited network made by an earlier version keeps its smaller MTU (slower proxied downloads)."""
    options = attrs.get("Options")
    mtu = options.get("com.docker.network.driver.mtu") if isinstance(options, dict) else None
    if internal and mtu != str(LIMITED_MTU):
        logger.info(
            "the Docker network %s was made with a smaller MTU (%s) than this version uses (%d), so downloads through "
            "the egress proxy are slower; remove it (docker network rm %s) when no sandbox uses it to get the new one",
            attrs.get("Name"), mtu or "default", LIMITED_MTU, attrs.get("Name"),
        )  # fmt: skip


def _port_of_running_sandboxes(client: DockerClient, network: _Network, store: str) -> int | None:
    """The proxy port in the proxy variables of this store's running containers on `network`, if any (blocking)."""
    import docker.errors

    try:
        found = client.containers.list(filters={"label": f"io.managed-sessions.store={store}", "network": network.name})
    except docker.errors.APIError as exc:
        logger.warning("could not list the sandboxes on %s: %s", network.name, exc)
        return None
    prefix = f"HTTP_PROXY=http://{network.gateway}:"
    for container in found:
        for variable in (container.attrs.get("Config") or {}).get("Env") or ():
            port = variable.removeprefix(prefix)
            if port != variable and port.isdigit():
                return int(port)
    return None
