"""Limited and unrestricted networking from inside real sandboxes, against the real egress proxy.

Everything the sandboxes reach is on this machine: HTTP servers and a git server the test starts, allowed by the
machine's own host name (`HOST:PORT`; `localhost` is the sandbox itself, so it is in NO_PROXY) with the
private-address opt-in, as the README tells mirror users to do.
Package registries are reached only where the test says so (pip against the default index).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import docker
import pytest
from egress_sandboxes import BODY, default_pip_index, egress_config, http_server, limited, make_sandbox, this_host
from git_server import git_server, make_repository

from server.core.environments import UnrestrictedNetwork
from server.hands.docker.networks import LIMITED_MTU
from server.services.runtime import Runtime, open_runtime

pytestmark = [pytest.mark.docker, pytest.mark.anyio]


@pytest.fixture
async def runtime(data_dir: Path) -> AsyncIterator[Runtime]:
    async with open_runtime(egress_config(data_dir)) as runtime:
        yield runtime


async def test_an_allowed_host_answers_through_the_proxy_and_others_get_a_403_naming_the_setting(
    runtime: Runtime,
) -> None:
    with http_server() as (server, port):
        host = this_host()
        sandbox = await make_sandbox(runtime, limited(f"{host}:{port}"))
        env = await sandbox.ok("env | grep -i _proxy | sort")
        assert "HTTPS_PROXY=http://" in env
        assert "https_proxy=http://" in env
        assert "NO_PROXY=" in env

        assert await sandbox.ok(f"curl -sS http://{host}:{port}/via-curl?q=1") == BODY.decode().strip()
        fetched = await sandbox.ok(
            f"python3 -c \"import urllib.request; print(urllib.request.urlopen('http://{host}:{port}/py').read())\""
        )
        assert "hello from the host" in fetched
        assert server.paths == ["/via-curl?q=1", "/py"]  # type: ignore[attr-defined]

        # The same server under another name, or on another port: refused, and the body says what to change.
        for url, shown in ((f"http://elsewhere.example.com:{port}/x", "elsewhere.example.com"),
                           (f"http://{host}:{port + 1}/x", f"{host}:{port + 1}")):  # fmt: skip
            refused = await sandbox.ok(f"curl -s -w '\\n%{{http_code}}' {url}")
            assert refused.endswith("403"), refused
            assert shown in refused
            assert "allowed_hosts" in refused
        assert server.paths == ["/via-curl?q=1", "/py"]  # type: ignore[attr-defined]
        refusals = await sandbox.refusals()
        assert refusals[0] == f"{host}:{port + 1}"
        assert f"elsewhere.example.com:{port}" in refusals


async def test_no_way_out_but_the_proxy(runtime: Runtime) -> None:
    """A raw socket to an address (even the proxy's host, on another port), and a DNS query, both fail."""
    with http_server("0.0.0.0") as (_, port):
        sandbox = await make_sandbox(runtime, limited(f"{this_host()}:{port}"))
        await sandbox.ok("true")
        proxy = (await sandbox.egress()).proxy
        assert proxy is not None
        gateway = proxy.removeprefix("http://").rpartition(":")[0]
        probe = (
            "import socket,sys\n"
            "def tcp(h,p):\n"
            "    try: socket.create_connection((h,p),timeout=3).close(); return 'open'\n"
            "    except OSError as e: return 'closed'\n"
            f"print('gateway', tcp('{gateway}', {port}))\n"
            "print('outside', tcp('198.51.100.7', 80))\n"
            "try: socket.getaddrinfo('example.com', 80); print('dns ok')\n"
            "except OSError: print('dns failed')\n"
            "s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
            "try: s.sendto(b'x',('198.51.100.7',53)); s.settimeout(2); s.recv(10); print('udp ok')\n"
            "except OSError: print('udp failed')\n"
        )
        output = await sandbox.ok(f"python3 - <<'EOF'\n{probe}EOF")
        for outcome in ("outside closed", "dns failed", "udp failed"):
            assert outcome in output, output
        # The network never leaves this machine, so it has a loopback-sized MTU (the proxied download's speed).
        assert await sandbox.ok("cat /sys/class/net/eth0/mtu") == str(LIMITED_MTU)
        if "not enforced" not in (await sandbox.egress()).enforcement:
            assert "gateway closed" in output, output  # the host's own services, past the proxy's port


async def test_git_and_pip_use_the_proxy_by_themselves(runtime: Runtime, tmp_path: Path) -> None:
    make_repository(tmp_path / "repos", "tool", files=2)
    with git_server(tmp_path / "repos", "t0ken", public=frozenset({"tool"})) as git, http_server() as (index, port):
        host = this_host()
        sandbox = await make_sandbox(runtime, limited(f"{host}:{git.port}", f"{host}:{port}"))
        await sandbox.ok(f"git clone -q http://{host}:{git.port}/tool.git /workspace/tool")
        assert "README.md" in await sandbox.ok("ls /workspace/tool")
        # pip asks the index through the proxy by itself (the page lists no files, so nothing is downloaded).
        await sandbox.run(
            f"pip download --no-deps -d /tmp/d --index-url http://{host}:{port}/simple --trusted-host {host} tiny-pkg"
        )
        assert "/simple/tiny-pkg/" in index.paths  # type: ignore[attr-defined]


async def test_pip_install_works_with_allow_package_managers_and_is_refused_without(runtime: Runtime) -> None:
    install = "pip install --user --break-system-packages --no-cache-dir --no-deps --index-url {} six==1.16.0"
    index = await default_pip_index(runtime)
    opened = await make_sandbox(runtime, limited(package_managers=True))
    succeeded, output = await opened.run(install.format(index))
    if not succeeded and "403" not in output and "ProxyError" not in output:
        pytest.skip(f"no package registry is reachable from this machine: {output[-300:]}")
    assert succeeded, output
    assert "six" in await opened.ok("python3 -c 'import six; print(six.__name__)'")

    closed = await make_sandbox(runtime, limited())
    succeeded, output = await closed.run(install.format(index).replace("pip install", "pip install --retries 1"))
    assert not succeeded
    assert "403" in output or "Forbidden" in output or "ProxyError" in output, output
    refused = await closed.refusals()
    assert refused, output
    assert refused[0].split(":")[0] in index, refused


def _bridge_gateway(client: docker.DockerClient, network: str) -> str:
    attrs = client.networks.get(network).attrs
    return str(attrs["IPAM"]["Config"][0]["Gateway"])


@pytest.mark.parametrize("allow_private", [False, True])
async def test_unrestricted_reaches_the_internet_but_not_the_host_unless_opted_in(
    data_dir: Path, docker_client: docker.DockerClient, allow_private: bool
) -> None:
    async with open_runtime(egress_config(data_dir, allow_private=allow_private)) as runtime:
        sandbox = await make_sandbox(runtime, UnrestrictedNetwork(type="unrestricted"))
        await sandbox.ok("true")
        posture = await sandbox.egress()
        assert posture.mode == "unrestricted"
        assert await sandbox.ok("cat /sys/class/net/eth0/mtu") != str(LIMITED_MTU)  # its packets reach real links
        assert posture.private_addresses_allowed is allow_private
        if "not enforced" in posture.enforcement:
            pytest.skip(f"packet filters cannot be set here: {posture.enforcement}")
        session = await runtime.sessions.get(sandbox.session_id)
        assert session.sandbox is not None
        gateway = _bridge_gateway(docker_client, session.sandbox.network)
        with http_server(gateway) as (_, port):
            succeeded, output = await sandbox.run(f"curl -sS -m 5 http://{gateway}:{port}/")
            assert succeeded is allow_private, output
        index = await default_pip_index(runtime)
        succeeded, output = await sandbox.run(f"curl -sS -m 20 -o /dev/null -w '%{{http_code}}' {index}")
        assert succeeded, output
        assert output.strip()[:1] in {"2", "3"}, output  # an answer from the registry, past the filters
