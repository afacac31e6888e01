"""Limited and unrestricted networking from inside real sandboxes, against the real egress proxy.

Everything the sandboxes reach is on this machine: HTTP servers and a git server the test starts, allowed by the
machine's own host name (`HOST:PORT`; `localhost` is the sandbox itself, so it is in NO_PROXY) with the
private-address opt-in, as the README tells mirror users to do.
Package registries are reached only where the test says so (pip against the default index).
"""

from __future__ import annotations

import itertools
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import docker
import pytest
from git_server import git_server, make_repository

from server.core.config import ServerConfig
from server.core.environments import LimitedNetwork, Networking, NoNetwork, Packages, UnrestrictedNetwork
from server.services.definitions import EnvironmentChanges
from server.services.runtime import Runtime, open_runtime
from server.services.sessions import NewSession

pytestmark = [pytest.mark.docker, pytest.mark.anyio]

HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
BODY = b"hello from the host\n"
_names = itertools.count()


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.server.paths.append(self.path)  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)

    def log_message(self, format: str, *args: object) -> None:
        pass


def this_host() -> str:
    """A name of this machine that its resolver knows (the proxy resolves it on the host side)."""
    name = socket.gethostname()
    try:
        socket.getaddrinfo(name, 80)
    except OSError:
        pytest.skip(f"this machine's own name {name!r} does not resolve here")
    return name


@contextmanager
def http_server(host: str = "0.0.0.0") -> Iterator[tuple[ThreadingHTTPServer, int]]:
    server = ThreadingHTTPServer((host, 0), _Handler)
    server.paths = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server, server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class Sandbox:
    runtime: Runtime
    session_id: str

    async def run(self, command: str) -> tuple[bool, str]:
        """Runs `command` in the session's sandbox: (succeeded, output)."""
        session = await self.runtime.sessions.get(self.session_id)
        result = await self.runtime.sandboxes.tools(session.id, session.environment).execute(
            "bash", {"command": command, "timeout_ms": 120_000}
        )
        return not result.is_error, result.as_text()

    async def ok(self, command: str) -> str:
        succeeded, output = await self.run(command)
        assert succeeded, output
        return output

    async def refusals(self) -> list[str]:
        session = await self.runtime.sessions.get(self.session_id)
        assert session.sandbox is not None
        assert session.sandbox.egress is not None
        return [f"{r.host}:{r.port}" for r in session.sandbox.egress.recent_refusals]


@pytest.fixture
async def runtime(data_dir: Path) -> AsyncIterator[Runtime]:
    config = ServerConfig.from_env(
        {
            "MANAGED_SESSIONS_DATA_DIR": str(data_dir),
            "MANAGED_SESSIONS_EXTRA_CA_BUNDLE": str(HOST_CA_BUNDLE),
            "MANAGED_SESSIONS_EGRESS_ALLOW_PRIVATE": "1",
        }
    )
    async with open_runtime(config) as runtime:
        yield runtime


async def make_sandbox(runtime: Runtime, networking: Networking, packages: Packages | None = None) -> Sandbox:
    environment = await runtime.definitions.create_environment(
        EnvironmentChanges(name=f"egress-{next(_names)}", networking=networking, packages=packages or Packages())
    )
    session = await runtime.sessions.create(NewSession(environment_id=environment.id))
    return Sandbox(runtime, session.id)


def limited(*hosts: str, package_managers: bool = False) -> LimitedNetwork:
    return LimitedNetwork(type="limited", allowed_hosts=list(hosts), allow_package_managers=package_managers)


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
        session = await runtime.sessions.get(sandbox.session_id)
        assert session.sandbox is not None
        assert session.sandbox.egress is not None
        proxy = session.sandbox.egress.proxy
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
        for expected in ("outside closed", "dns failed", "udp failed"):
            assert expected in output, output
        session = await runtime.sessions.get(sandbox.session_id)
        assert session.sandbox is not None
        assert session.sandbox.egress is not None
        if "not enforced" not in session.sandbox.egress.enforcement:
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
    index = await _default_pip_index(runtime)
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
    assert refused, "the proxy recorded no refusal"
    assert refused[0].split(":")[0] in index, refused


async def _default_pip_index(runtime: Runtime) -> str:
    """pip's own default index, as the sandbox's pip knows it (this test names no registry itself)."""
    probe = await make_sandbox(runtime, NoNetwork())
    return (await probe.ok("python3 -c 'from pip._internal.models.index import PyPI; print(PyPI.simple_url)'")).strip()


def _bridge_gateway(client: docker.DockerClient, network: str) -> str:
    attrs = client.networks.get(network).attrs
    return str(attrs["IPAM"]["Config"][0]["Gateway"])


@pytest.mark.parametrize("allow_private", [False, True])
async def test_unrestricted_reaches_the_internet_but_not_the_host_unless_opted_in(
    data_dir: Path, docker_client: docker.DockerClient, allow_private: bool
) -> None:
    env = {"MANAGED_SESSIONS_DATA_DIR": str(data_dir), "MANAGED_SESSIONS_EXTRA_CA_BUNDLE": str(HOST_CA_BUNDLE)}
    if allow_private:
        env["MANAGED_SESSIONS_EGRESS_ALLOW_PRIVATE"] = "1"
    async with open_runtime(ServerConfig.from_env(env)) as runtime:
        sandbox = await make_sandbox(runtime, UnrestrictedNetwork(type="unrestricted"))
        await sandbox.ok("true")
        session = await runtime.sessions.get(sandbox.session_id)
        assert session.sandbox is not None
        assert session.sandbox.egress is not None
        posture = session.sandbox.egress
        assert posture.mode == "unrestricted"
        assert posture.private_addresses_allowed is allow_private
        if "not enforced" in posture.enforcement:
            pytest.skip(f"packet filters cannot be set here: {posture.enforcement}")
        gateway = _bridge_gateway(docker_client, session.sandbox.network)
        with http_server(gateway) as (_, port):
            succeeded, output = await sandbox.run(f"curl -sS -m 5 http://{gateway}:{port}/")
            assert succeeded is allow_private, output
        index = await _default_pip_index(runtime)
        succeeded, output = await sandbox.run(f"curl -sS -m 20 -o /dev/null -w '%{{http_code}}' {index}")
        assert succeeded, output
        assert output.strip()[:1] in {"2", "3"}, output  # an answer from the registry, past the filters


async def test_a_limited_sandbox_found_running_after_a_restart_still_goes_out_through_the_proxy(
    data_dir: Path, docker_client: docker.DockerClient
) -> None:
    """The container outlives the server; the next server admits it again (same proxy port, or it is remade)."""
    env = {"MANAGED_SESSIONS_DATA_DIR": str(data_dir), "MANAGED_SESSIONS_EGRESS_ALLOW_PRIVATE": "1"}
    with http_server() as (server, port):
        host = this_host()
        async with open_runtime(ServerConfig.from_env(env)) as runtime:
            sandbox = await make_sandbox(runtime, limited(f"{host}:{port}"))
            await sandbox.ok(f"curl -sS http://{host}:{port}/before")
            await sandbox.ok("echo kept > /workspace/note")
        async with open_runtime(ServerConfig.from_env(env)) as runtime:
            again = Sandbox(runtime, sandbox.session_id)
            await again.ok(f"curl -sS http://{host}:{port}/after")
            assert (await again.ok("cat /workspace/note")).strip() == "kept"
        assert server.paths == ["/before", "/after"]  # type: ignore[attr-defined]
