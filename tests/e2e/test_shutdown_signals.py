"""A stdio server ends cleanly on SIGTERM or SIGHUP, the way MCP clients stop their servers (stdin closed, then
SIGTERM about 2 s later, then SIGKILL): idle sessions' containers are stopped, whether or not stdin was closed."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import docker
import pytest
from model_server import ModelServer, reply, tool_use
from processes import python_path_env
from stdio_child import StdioServer

from server.core.config import DEFAULT_IMAGE
from server.hands.docker.sandbox import LABEL_SESSION

pytestmark = pytest.mark.docker

EXIT_GUARD_S = 60
"""Only stops a test whose server never exits; what a test checks is states, never how long something took."""


@pytest.fixture
def env(data_dir: Path, subprocess_env: dict[str, str], docker_client: docker.DockerClient) -> dict[str, str]:
    return python_path_env({**subprocess_env, "ANTHROPIC_API_KEY": "test-key", "MANAGED_SESSIONS_IMAGE": DEFAULT_IMAGE})


def states(client: docker.DockerClient, session_id: str) -> list[str]:
    found = client.containers.list(all=True, filters={"label": f"{LABEL_SESSION}={session_id}"})
    return sorted(str(c.status) for c in found)


def server_with_an_idle_session(env: dict[str, str], model: ModelServer, log: Path) -> tuple[StdioServer, str]:
    model.enqueue(reply(tool_use("bash", {"command": "echo hi"})), reply("Done."))
    server = StdioServer({**env, "ANTHROPIC_BASE_URL": model.base_url}, log)
    session_id = server.call("create_session", {})["id"]
    assert server.call("send_message", {"session_id": session_id, "text": "go"})["status"] == "idle"
    return server, session_id


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_a_signal_right_after_stdin_closes_lets_the_shutdown_finish(
    env: dict[str, str], tmp_path: Path, docker_client: docker.DockerClient, signum: signal.Signals
) -> None:
    with ModelServer() as model:
        server, session_id = server_with_an_idle_session(env, model, tmp_path / "server.log")
        try:
            assert states(docker_client, session_id) == ["running"]
            assert server.proc.stdin is not None
            server.proc.stdin.close()  # the client quits ...
            server.proc.send_signal(signum)  # ... and signals at once, while the server is shutting down
            assert server.proc.wait(timeout=EXIT_GUARD_S) == 0, server.stderr()
        finally:
            server.stop()
    assert states(docker_client, session_id) == ["exited"], server.stderr()


def test_sigterm_with_stdin_still_open_stops_idle_sandboxes_and_exits(
    env: dict[str, str], tmp_path: Path, docker_client: docker.DockerClient
) -> None:
    with ModelServer() as model:
        server, session_id = server_with_an_idle_session(env, model, tmp_path / "server.log")
        try:
            server.proc.send_signal(signal.SIGTERM)  # stdin stays open: the SDK's reader never sees its end
            try:
                status = server.proc.wait(timeout=EXIT_GUARD_S)
            except subprocess.TimeoutExpired:
                pytest.fail(f"the server ignored SIGTERM:\n{server.stderr()}")
            assert status == 0, server.stderr()
        finally:
            server.stop()
    assert states(docker_client, session_id) == ["exited"], server.stderr()
    assert "stdin is still open after the signal" in server.stderr()
