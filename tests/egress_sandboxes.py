"""Real sandboxes behind the real egress proxy, for the Docker egress tests: a runtime with the private-address
opt-in, sessions on environments made for one test, a loopback HTTP server and this machine's own name.

Everything the sandboxes reach is on this machine, allowed by the machine's own host name (`HOST:PORT`;
`localhost` is the sandbox itself, so it is in NO_PROXY) with the private-address opt-in, as the README tells
mirror users to do. Package registries are reached only where a test says so (pip against its default index).
"""

from __future__ import annotations

import itertools
import socket
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from server.core.config import ServerConfig
from server.core.environments import LimitedNetwork, Networking, NoNetwork, Packages
from server.core.sessions import EgressPosture
from server.services.definitions import EnvironmentChanges
from server.services.runtime import Runtime
from server.services.sessions import NewSession

__all__ = [
    "BODY",
    "HOST_CA_BUNDLE",
    "Sandbox",
    "default_pip_index",
    "egress_config",
    "http_server",
    "limited",
    "make_sandbox",
    "this_host",
]

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
    """A server answering every GET with `BODY`, recording the paths in `server.paths`; yields (server, port)."""
    server = ThreadingHTTPServer((host, 0), _Handler)
    server.paths = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server, server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def egress_config(data_dir: Path, *, allow_private: bool = True) -> ServerConfig:
    env = {"MANAGED_SESSIONS_DATA_DIR": str(data_dir), "MANAGED_SESSIONS_EXTRA_CA_BUNDLE": str(HOST_CA_BUNDLE)}
    if allow_private:
        env["MANAGED_SESSIONS_EGRESS_ALLOW_PRIVATE"] = "1"
    return ServerConfig.from_env(env)


@dataclass
class Sandbox:
    runtime: Runtime
    session_id: str
    mcp_hosts: Sequence[str] = ()
    """What the agent loop passes along: the host entries of the session's agent's MCP servers."""

    async def run(self, command: str) -> tuple[bool, str]:
        """Runs `command` in the session's sandbox: (succeeded, output)."""
        session = await self.runtime.sessions.get(self.session_id)
        tools = self.runtime.sandboxes.tools(session.id, session.environment, mcp_hosts=self.mcp_hosts)
        result = await tools.execute("bash", {"command": command, "timeout_ms": 120_000})
        return not result.is_error, result.as_text()

    async def ok(self, command: str) -> str:
        succeeded, output = await self.run(command)
        assert succeeded, output
        return output

    async def egress(self) -> EgressPosture:
        """The egress part of `get_session`'s sandbox."""
        session = await self.runtime.sessions.get(self.session_id)
        assert session.sandbox is not None
        assert session.sandbox.egress is not None
        return session.sandbox.egress

    async def refusals(self) -> list[str]:
        return [f"{r.host}:{r.port}" for r in (await self.egress()).recent_refusals]


async def make_sandbox(
    runtime: Runtime, networking: Networking, packages: Packages | None = None, *, agent_id: str | None = None
) -> Sandbox:
    environment = await runtime.definitions.create_environment(
        EnvironmentChanges(name=f"egress-{next(_names)}", networking=networking, packages=packages or Packages())
    )
    session = await runtime.sessions.create(NewSession(environment_id=environment.id, agent_id=agent_id))
    return Sandbox(runtime, session.id, [server.host_entry for server in session.agent.mcp_servers])


def limited(*hosts: str, package_managers: bool = False, mcp_servers: bool = False) -> LimitedNetwork:
    return LimitedNetwork(
        type="limited",
        allowed_hosts=list(hosts),
        allow_package_managers=package_managers,
        allow_mcp_servers=mcp_servers,
    )


async def default_pip_index(runtime: Runtime) -> str:
    """pip's own default index, as the sandbox's pip knows it (the tests name no registry themselves)."""
    probe = await make_sandbox(runtime, NoNetwork())
    return (await probe.ok("python3 -c 'from pip._internal.models.index import PyPI; print(PyPI.simple_url)'")).strip()
