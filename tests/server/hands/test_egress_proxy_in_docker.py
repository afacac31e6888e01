"""The egress proxy from inside real sandboxes, under bad input and across a server restart.

A sandbox's code is untrusted: it opens far more connections than it may, asks for names that resolve to this
machine, for ports nobody allowed, and sends lines that are not HTTP. Each gets a clear refusal, another
session's sandbox is served meanwhile, and the server's file descriptors come back. A container that outlives
its server (a restart) is admitted again by the next one.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import docker
import pytest
from egress_sandboxes import BODY, Sandbox, egress_config, http_server, limited, make_sandbox, this_host
from egress_upstreams import TcpServer
from sandbox_probes import containers_of

from server.egress.proxy import ALLOW_PRIVATE_HINT
from server.services.runtime import Runtime, open_runtime

pytestmark = [pytest.mark.docker, pytest.mark.anyio]

CAP = 64
"""The proxy's default cap on one session's concurrent connections."""
FD_SLACK = 8
"""Descriptors the server may hold after the flood beyond its baseline: pooled Docker API connections, say."""
WAIT_S = 60.0
"""A bound on waiting for something that should happen; never a measurement."""

PROXY_CLIENT = """
import json, os, socket, sys, time, urllib.parse
proxy = urllib.parse.urlsplit(os.environ["HTTP_PROXY"])

def head_of(sock):
    head = b""
    while not head.endswith(b"\\r\\n\\r\\n"):
        byte = sock.recv(1)  # one at a time: a tunnel's first byte is the upstream's
        if not byte:
            break
        head += byte
    return head.decode("latin-1")

def ask(raw):
    sock = socket.create_connection((proxy.hostname, proxy.port), timeout=30)
    sock.sendall(raw.encode("latin-1"))
    return sock, head_of(sock)

def rest(sock):
    return b"".join(iter(lambda: sock.recv(65536), b"")).decode()
"""


async def _until(condition: Callable[[], Any], what: str) -> Any:
    """Polls a blocking `condition` (in a thread) until it is truthy, and returns it; fails after `WAIT_S`."""
    deadline = anyio.current_time() + WAIT_S
    while True:
        found = await anyio.to_thread.run_sync(condition)
        if found:
            return found
        assert anyio.current_time() < deadline, f"never happened: {what}"
        await anyio.sleep(0.1)


def _fd_count() -> int:
    gc.collect()  # what earlier tests left to the collector is closed before counting, not during
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture
async def runtime(data_dir: Path) -> AsyncIterator[Runtime]:
    async with open_runtime(egress_config(data_dir)) as runtime:
        yield runtime


async def test_a_flood_of_connections_is_capped_while_another_session_is_served_and_nothing_leaks(
    runtime: Runtime, docker_client: docker.DockerClient
) -> None:
    """200 CONNECTs from one sandbox to an allowed upstream that never answers: the first ones get tunnels, the
    rest the cap's 429; another session fetches meanwhile; once the flood ends, the server's descriptors are back."""
    host = this_host()
    with http_server() as (site, site_port), TcpServer(echo=False) as silent:
        other = await make_sandbox(runtime, limited(f"{host}:{site_port}"))
        crowd = await make_sandbox(runtime, limited(f"{host}:{silent.port}"))
        await other.ok("true")
        await crowd.ok("rm -f /tmp/held /tmp/release")
        [container] = containers_of(docker_client, crowd.session_id)

        def held() -> str:
            done = container.exec_run(["cat", "/tmp/held"], user="1000:1000")
            return done.output.decode() if done.exit_code == 0 else ""

        held()  # the test's own Docker connection is open before the baseline
        baseline = _fd_count()
        target = f"{host}:{silent.port}"
        flood = (
            PROXY_CLIENT
            + f"""
opened = [ask("CONNECT {target} HTTP/1.1\\r\\nHost: {target}\\r\\n\\r\\n") for _ in range(200)]
capped = [sock for sock, head in opened if head.startswith("HTTP/1.1 429 ")]
summary = {{
    "tunnels": sum(head.startswith("HTTP/1.1 200 ") for _, head in opened),
    "capped": len(capped),
    "body": rest(capped[0]) if capped else "",
}}
with open("/tmp/held", "w") as out:
    json.dump(summary, out)
while not os.path.exists("/tmp/release"):
    time.sleep(0.05)
for sock, _ in opened:
    sock.close()
print("released")
"""
        )
        outcome: list[str] = []

        async def run_flood() -> None:
            outcome.append(await crowd.ok(f"python3 - <<'EOF'\n{flood}EOF"))

        async with anyio.create_task_group() as group:
            group.start_soon(run_flood)
            summary = json.loads(await _until(held, "the sandbox opened its 200 connections"))
            during = _fd_count()  # each tunnel: the proxy's two ends and the upstream's accepted socket
            # While the flood holds its tunnels: another session is served as usual.
            assert await other.ok(f"curl -sS -m 20 http://{host}:{site_port}/meanwhile") == BODY.decode().strip()
            await anyio.to_thread.run_sync(container.exec_run, ["touch", "/tmp/release"])
        assert outcome == ["released"]

        assert summary["tunnels"] == CAP
        assert summary["capped"] == 200 - CAP
        assert f"already has {CAP} connections open through the proxy" in summary["body"]
        assert site.paths == ["/meanwhile"]  # type: ignore[attr-defined]
        assert silent.accepted == CAP
        assert during >= baseline + 3 * CAP
        [refusal] = (await crowd.egress()).recent_refusals
        assert (refusal.host, refusal.port, refusal.count) == (host, silent.port, 200 - CAP)
        await _until(lambda: _fd_count() <= baseline + FD_SLACK, "the server closed both ends of every tunnel")


async def test_bad_requests_from_a_sandbox_get_clear_refusals(data_dir: Path) -> None:
    """Without the private-address opt-in: a name that resolves to this machine is refused whichever way it is
    asked (DNS rebinding), as are a port nobody allowed and a line that is not HTTP; the proxy answers on."""
    host = this_host()
    with http_server() as (server, port):
        async with open_runtime(egress_config(data_dir, allow_private=False)) as runtime:
            sandbox = await make_sandbox(runtime, limited(f"{host}:{port}"))
            probe = (
                PROXY_CLIENT
                + f"""
for raw in (
    "GET http://{host}:{port}/rebound HTTP/1.1\\r\\nHost: {host}:{port}\\r\\n\\r\\n",
    "CONNECT {host}:{port} HTTP/1.1\\r\\nHost: {host}:{port}\\r\\n\\r\\n",
    "CONNECT {host}:{port + 1} HTTP/1.1\\r\\nHost: {host}:{port + 1}\\r\\n\\r\\n",
    "HELLO THERE\\r\\n\\r\\n",
    "GET /not-absolute HTTP/1.1\\r\\nHost: {host}:{port}\\r\\n\\r\\n",
):
    sock, head = ask(raw)
    print(json.dumps([head.split(" ")[1], rest(sock)]))
"""
            )
            answers = [json.loads(line) for line in (await sandbox.ok(f"python3 - <<'EOF'\n{probe}EOF")).splitlines()]
            curl = await sandbox.ok(f"curl -s -w '\\n%{{http_code}}' http://{host}:{port}/by-curl")
            refusals = {(r.host, r.port): r.count for r in (await sandbox.egress()).recent_refusals}

    assert [status for status, _ in answers] == ["403", "403", "403", "400", "400"]
    rebound, tunnel, other_port, garbage, relative = (body for _, body in answers)
    for body in (rebound, tunnel):
        assert f"{host} resolves to 127.0.0.1, a loopback address" in body
        assert "MANAGED_SESSIONS_EGRESS_ALLOW_PRIVATE=1" in body
    assert ALLOW_PRIVATE_HINT in rebound
    assert f"{host}:{port + 1} is not allowed by networking.allowed_hosts" in other_port
    assert "malformed request" in garbage
    assert "malformed request" in relative
    assert curl.endswith("403")
    assert "MANAGED_SESSIONS_EGRESS_ALLOW_PRIVATE=1" in curl
    assert server.paths == []  # type: ignore[attr-defined]
    assert refusals == {(host, port): 3, (host, port + 1): 1}  # the malformed ones name no host


@pytest.mark.parametrize("port_taken", [False, True])
async def test_a_running_container_is_admitted_again_by_the_next_server(data_dir: Path, port_taken: bool) -> None:
    """The next server listens where a running container's proxy variables point; if something else took that port
    meanwhile, the container is remade (its volumes kept) rather than left cut off."""
    with http_server() as (server, port), contextlib.ExitStack() as squatter:
        host = this_host()
        async with open_runtime(egress_config(data_dir)) as runtime:
            before = await make_sandbox(runtime, limited(f"{host}:{port}"))
            assert await before.ok(f"curl -sS http://{host}:{port}/first") == BODY.decode().strip()
            await before.ok("echo kept > /tmp/marker; echo kept > /workspace/marker")
            proxy = (await before.egress()).proxy
            assert proxy is not None
        # A clean shutdown stopped the idle session's container; started again, it is what a server that died
        # (kill -9) leaves behind: a running container whose proxy variables name the old server's port.
        client = docker.from_env()
        for container in containers_of(client, before.session_id):
            client.containers.get(container.id).start()
        if port_taken:
            gateway, _, proxy_port = proxy.removeprefix("http://").rpartition(":")
            squatter.enter_context(socket.create_server((gateway, int(proxy_port))))
        async with open_runtime(egress_config(data_dir)) as runtime:
            after = Sandbox(runtime, before.session_id)
            kept = await after.ok("cat /workspace/marker; cat /tmp/marker 2>/dev/null || echo remade")
            assert kept == ("kept\nremade" if port_taken else "kept\nkept")  # the volume's file, the container's
            succeeded, output = await after.run(f"curl -sS -m 20 http://{host}:{port}/second")
            assert succeeded, output
            assert output == BODY.decode().strip()
            assert ((await after.egress()).proxy == proxy) is not port_taken
        assert server.paths == ["/first", "/second"]  # type: ignore[attr-defined]
