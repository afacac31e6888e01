"""Issue 12's figures from inside real sandboxes: a 100 MB download through the egress proxy vs straight from an
`unrestricted` sandbox, and the latency a CONNECT through the proxy adds to setting up a connection.

One in-process runtime (default image, `MANAGED_SESSIONS_EGRESS_ALLOW_PRIVATE=1`, so the proxy may reach this
machine and the open network's packet filters let the direct path through), two sessions:

  limited:      `allowed_hosts` names this machine's host name with the two ports below; everything goes through
                the proxy (its own thread in this process), which resolves the name and connects on loopback.
  unrestricted: reaches the same server at the open network's gateway address, no proxy: the baseline.

The file server is a child process (so it shares no GIL with the proxy, as a real upstream would not): HTTP on one
port (`sendfile` of a 100 MB file), TLS with a self-signed certificate on another. Nothing leaves the machine.

  download: `curl -o /dev/null -w %{speed_download}` in the sandbox, rounds interleaved (direct, proxied as plain
            HTTP, proxied through a CONNECT tunnel with `--proxytunnel`, as HTTPS downloads are), median MB/s.
  connect:  a python script in the sandbox timing each connection with `perf_counter`: through the proxy, TCP to
            the proxy + CONNECT to the TLS port + its 200 answer; direct, a TCP connect to the same TLS port.
            Sequential, in interleaved blocks, after a few warm-up ones; added latency = difference of medians.

    .venv/bin/python benchmarks/bench_egress.py [--size-mb 100] [--rounds 5] [--connects 200]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import socket
import statistics
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import docker
import docker.errors
from _common import PYTHON, REPO_ROOT, check, emit, environment, latency_ms, log, ratio, temp_dir

sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "tests"))

from egress_upstreams import certificate

from server.core.config import ServerConfig
from server.core.environments import LimitedNetwork, Networking, UnrestrictedNetwork
from server.core.log import configure_logging
from server.hands.docker.packet_filter import PacketFilter
from server.hands.docker.sandbox import LABEL_STORE
from server.services.definitions import EnvironmentChanges
from server.services.runtime import Runtime, open_runtime
from server.services.sessions import NewSession

MB = 1024 * 1024
WARM_UP_CONNECTS = 10
BLOCKS = 4
TOOL_TIMEOUT_MS = 300_000

FILE_SERVER = r"""
import socket, ssl, sys, threading
path, cert, key = sys.argv[1:4]
size = __import__("os").path.getsize(path)
head = f"HTTP/1.1 200 OK\r\nContent-Length: {size}\r\nConnection: close\r\n\r\n"
tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
tls.load_cert_chain(cert, key)
def download(conn):
    with conn:
        request = b""
        while b"\r\n\r\n" not in request:
            data = conn.recv(65536)
            if not data:
                return
            request += data
        conn.sendall(head.encode())
        with open(path, "rb") as body:
            conn.sendfile(body)
def handshake(conn):
    try:
        with tls.wrap_socket(conn, server_side=True) as wrapped:
            wrapped.recv(1)
    except OSError:
        pass
def serve(listener, handler):
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=handler, args=(conn,), daemon=True).start()
listeners = [socket.create_server(("0.0.0.0", 0), backlog=512) for _ in range(2)]
print(listeners[0].getsockname()[1], listeners[1].getsockname()[1], flush=True)
threading.Thread(target=serve, args=(listeners[1], handshake), daemon=True).start()
serve(listeners[0], download)
"""

CONNECTS = r"""
import json, os, socket, sys, time
mode, host, port, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
proxy = os.environ.get("HTTPS_PROXY", "").removeprefix("http://").rstrip("/")
def through_proxy():
    proxy_host, _, proxy_port = proxy.rpartition(":")
    sock = socket.create_connection((proxy_host, int(proxy_port)))
    sock.sendall(f"CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        data = sock.recv(4096)
        assert data, head
        head += data
    assert head.startswith(b"HTTP/1.1 200"), head
    return sock
def direct():
    return socket.create_connection((host, port))
connect = through_proxy if mode == "proxied" else direct
times = []
for _ in range(count):
    start = time.perf_counter()
    sock = connect()
    times.append(time.perf_counter() - start)
    sock.close()
print(json.dumps(times))
"""


@dataclass
class Sandbox:
    runtime: Runtime
    session_id: str

    async def run(self, command: str) -> str:
        """`command`'s output, through the agent's own bash tool; a failure ends the benchmark."""
        session = await self.runtime.sessions.get(self.session_id)
        tools = self.runtime.sandboxes.tools(session.id, session.environment)
        result = await tools.execute("bash", {"command": command, "timeout_ms": TOOL_TIMEOUT_MS})
        if result.is_error:
            raise RuntimeError(f"{command[:80]!r} failed in the sandbox: {result.as_text()[-500:]}")
        return result.as_text()


async def make_sandbox(runtime: Runtime, name: str, networking: Networking) -> Sandbox:
    environment = await runtime.definitions.create_environment(EnvironmentChanges(name=name, networking=networking))
    session = await runtime.sessions.create(NewSession(environment_id=environment.id))
    sandbox = Sandbox(runtime, session.id)
    await sandbox.run("true")  # its container started (and, for limited, admitted by the proxy)
    return sandbox


def this_host() -> str:
    """This machine's name, as the proxy resolves it (on the host side): the test suite's way of naming it."""
    name = socket.gethostname()
    socket.getaddrinfo(name, 80)  # fails early if the name does not resolve here
    return name


@contextmanager
def file_server(scratch: Path, size_mb: int, host: str) -> Iterator[tuple[int, int]]:
    """The child serving the file (HTTP) and TLS handshakes; yields (http port, tls port)."""
    body = scratch / "body.bin"
    with body.open("wb") as out:
        for _ in range(size_mb):
            out.write(os.urandom(MB))
    cert, key = certificate(scratch, host)
    child = subprocess.Popen(
        [PYTHON, "-c", FILE_SERVER, str(body), str(cert), str(key)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        http_port, tls_port = map(int, child.stdout.readline().split())
        yield http_port, tls_port
    finally:
        child.kill()
        child.wait()


def gateway_of(client: docker.DockerClient, network: str) -> str:
    return str(client.networks.get(network).attrs["IPAM"]["Config"][0]["Gateway"])


async def download(sandbox: Sandbox, url: str, size: int, *, tunnel: bool = False) -> float:
    """One download's MB/s as curl reports it (bytes over the whole transfer's time)."""
    flags = "-p " if tunnel else ""
    output = await sandbox.run(f"curl -sS {flags}-o /dev/null -w '%{{speed_download}} %{{size_download}}' {url}")
    speed, got = output.split()
    if int(float(got)) != size:
        raise RuntimeError(f"{url}: {got} bytes downloaded, {size} expected")
    return float(speed) / MB


async def connects(sandbox: Sandbox, mode: str, host: str, port: int, count: int) -> list[float]:
    script = shlex.quote(CONNECTS)
    output = await sandbox.run(f"python3 -c {script} {mode} {host} {port} {count}")
    return [float(t) for t in json.loads(output)]


async def measure(args: argparse.Namespace, scratch: Path) -> dict[str, Any]:
    host = this_host()
    client = docker.from_env()
    env = {"MANAGED_SESSIONS_DATA_DIR": str(scratch / "data"), "MANAGED_SESSIONS_EGRESS_ALLOW_PRIVATE": "1"}
    store_id = ""
    try:
        with file_server(scratch, args.size_mb, host) as (http_port, tls_port):
            async with open_runtime(ServerConfig.from_env(env)) as runtime:
                store_id = runtime.store.store_id
                allowed = [f"{host}:{http_port}", f"{host}:{tls_port}"]
                networking = LimitedNetwork(type="limited", allowed_hosts=allowed)
                limited = await make_sandbox(runtime, "bench-limited", networking)
                open_ = await make_sandbox(runtime, "bench-open", UnrestrictedNetwork(type="unrestricted"))
                session = await runtime.sessions.get(open_.session_id)
                assert session.sandbox is not None
                gateway = await anyio.to_thread.run_sync(gateway_of, client, session.sandbox.network)
                posture = session.sandbox.egress.enforcement if session.sandbox.egress else "unknown"
                figures = await _measure(args, limited, open_, host, gateway, http_port, tls_port)
    finally:
        with anyio.CancelScope(shield=True):
            if store_id:
                await anyio.to_thread.run_sync(sweep, client, store_id)
            client.close()
    return report(args, figures, posture)


async def _measure(
    args: argparse.Namespace, limited: Sandbox, open_: Sandbox, host: str, gateway: str, http_port: int, tls_port: int
) -> dict[str, list[float]]:
    size = args.size_mb * MB
    figures: dict[str, list[float]] = {"direct": [], "proxied_http": [], "proxied_tunnel": []}
    runs = {
        "direct": lambda: download(open_, f"http://{gateway}:{http_port}/body", size),
        "proxied_http": lambda: download(limited, f"http://{host}:{http_port}/body", size),
        "proxied_tunnel": lambda: download(limited, f"http://{host}:{http_port}/body", size, tunnel=True),
    }
    await runs["direct"]()  # warm-up: page cache, first curl start
    await runs["proxied_tunnel"]()
    names = list(runs)
    for round_ in range(args.rounds):
        order = names[round_ % 3 :] + names[: round_ % 3]  # each path goes first as often as the others
        for name in order:
            figures[name].append(await runs[name]())
        shown = ", ".join(f"{name} {figures[name][-1]:.0f}" for name in names)
        log(f"egress: download round {round_ + 1}/{args.rounds} (MB/s): {shown}")
    await connects(limited, "proxied", host, tls_port, WARM_UP_CONNECTS)
    await connects(open_, "direct", gateway, tls_port, WARM_UP_CONNECTS)
    figures["connect_proxied"], figures["connect_direct"] = [], []
    for block in range(BLOCKS):
        per_block = args.connects // BLOCKS
        figures["connect_proxied"] += await connects(limited, "proxied", host, tls_port, per_block)
        figures["connect_direct"] += await connects(open_, "direct", gateway, tls_port, per_block)
        log(f"egress: connect block {block + 1}/{BLOCKS}")
    return figures


def report(args: argparse.Namespace, figures: dict[str, list[float]], posture: str) -> dict[str, Any]:
    mb_s = {name: round(statistics.median(figures[name]), 1) for name in ("direct", "proxied_http", "proxied_tunnel")}
    tunnel_ratio = ratio(mb_s["proxied_tunnel"], mb_s["direct"])
    http_ratio = ratio(mb_s["proxied_http"], mb_s["direct"])
    proxied, direct = latency_ms(figures["connect_proxied"]), latency_ms(figures["connect_direct"])
    added_ms = round(float(proxied["median_ms"]) - float(direct["median_ms"]), 3)
    return {
        "benchmark": "egress",
        "targets": [
            check("download throughput through a CONNECT tunnel / direct", ">=", 0.8, "ratio", tunnel_ratio),
            check("download throughput as plain HTTP through the proxy / direct", ">=", 0.8, "ratio", http_ratio),
            check("added latency per connection through a CONNECT (median)", "<=", 2.0, "ms", added_ms),
        ],
        "download_mb_per_s": mb_s,
        "download_rounds_mb_per_s": {name: [round(v, 1) for v in figures[name]] for name in mb_s},
        "connection_setup": {"proxied": proxied, "direct": direct, "added_median_ms": added_ms},
        "baseline": "the same server from an unrestricted sandbox at the open network's gateway, no proxy, interleaved",
        "ratios": {"throughput_tunnel": tunnel_ratio, "throughput_http": http_ratio},
        "params": {"size_mb": args.size_mb, "rounds": args.rounds, "connects": args.connects, "blocks": BLOCKS},
        "packet_filters": posture,
        "env": environment(),
    }


def sweep(client: docker.DockerClient, store_id: str) -> None:
    """Removes what this run's store made in Docker: containers, volumes, its two networks and their filters."""
    label: dict[str, str | list[str] | bool] = {"label": f"{LABEL_STORE}={store_id}"}
    try:
        for container in client.containers.list(all=True, filters=label):
            container.remove(force=True)
        for volume in client.volumes.list(filters=label):
            volume.remove(force=True)
        networks = client.networks.list(filters=label)
        interfaces = [(n.attrs.get("Options") or {}).get("com.docker.network.bridge.name", "") for n in networks]
        for network in networks:
            network.remove()
    except docker.errors.DockerException as exc:
        log(f"egress: cleanup incomplete: {exc}")
        return
    PacketFilter(store_id).remove([i for i in interfaces if i])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=9, help="download rounds (each: direct, HTTP, tunnel)")
    parser.add_argument("--connects", type=int, default=200, help="timed connections each way")
    args = parser.parse_args()
    configure_logging("WARNING")
    with temp_dir("egress") as scratch:
        result = anyio.run(measure, args, scratch)
    result["meets_target"] = all(target["meets"] for target in result["targets"])
    emit(result)


if __name__ == "__main__":
    main()
