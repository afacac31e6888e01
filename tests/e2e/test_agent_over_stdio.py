"""The agent loop end to end over a real stdio MCP connection, real Docker, and the scripted model."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import docker
import docker.errors
import pytest
from mcp import Client, StdioServerParameters, stdio_client
from model_server import ModelServer, error, reply, tool_use
from processes import python_path_env
from sandbox_probes import LONG_COMMAND, wait_for_running_command
from scenario import call_ok, wait_end_turn, wait_requires_action

from server.core.config import DEFAULT_IMAGE
from server.hands.docker.sandbox import LABEL_SESSION

pytestmark = [pytest.mark.docker, pytest.mark.anyio]

HANG_GUARD_S = 120
"""Only stops a test that hangs; what a test checks is events and states, never how long something took."""


@pytest.fixture
def model() -> AsyncIterator[ModelServer]:
    with ModelServer() as server:
        yield server  # type: ignore[misc]
        assert server.violations == []


@pytest.fixture
def stdio(
    subprocess_env: dict[str, str], model: ModelServer, tmp_path: Path, docker_client: docker.DockerClient
) -> Callable[..., Any]:

    @asynccontextmanager
    async def connect(**extra_env: str) -> AsyncIterator[Client]:
        env = python_path_env(
            {
                **subprocess_env,
                "ANTHROPIC_BASE_URL": model.base_url,
                "ANTHROPIC_API_KEY": "test-key",
                "MANAGED_SESSIONS_IMAGE": DEFAULT_IMAGE,
                "MANAGED_SESSIONS_MODEL_RETRY_DELAYS": "0.01,0.01",
                **extra_env,
            }
        )
        env = {k: v for k, v in env.items() if v}
        params = StdioServerParameters(command=sys.executable, args=["-m", "server", "serve"], env=env)
        with (tmp_path / "server.log").open("a") as errlog:
            async with Client(stdio_client(params, errlog=errlog)) as client:
                yield client

    return connect


async def test_memory_persistent_bash_and_output_files(stdio: Callable[..., Any], model: ModelServer) -> None:
    model.enqueue(
        reply(tool_use("bash", {"command": "mkdir -p /workspace/app && cd /workspace/app && export MODE=fast"})),
        reply(tool_use("write", {"file_path": "/mnt/session/outputs/notes.md", "content": "# Notes\n"})),
        reply("Set up."),
        reply(tool_use("bash", {"command": 'pwd && echo "$MODE"'})),
        lambda request: reply(f"Still here: {request.tool_results()}"),
    )
    async with stdio() as client:
        session = await call_ok(client, "create_session", {"message": "set up"})
        assert session["status"] == "running"
        assert await wait_end_turn(client, session["id"]) == "Set up."
        done = await call_ok(client, "send_message", {"session_id": session["id"], "text": "where are you?"})
        assert "/workspace/app" in done["reply"]
        assert "fast" in done["reply"]
        listing = await call_ok(client, "list_output_files", {"session_id": session["id"]})
        assert [f["path"] for f in listing["files"]] == ["notes.md"]
        read = await client.call_tool("read_output_file", {"session_id": session["id"], "path": "notes.md"})
        assert read.content[0].text == "# Notes\n"  # type: ignore[union-attr]
        assert [m["role"] for m in model.requests[-1].messages][:3] == ["user", "assistant", "user"]
        await call_ok(client, "delete_session", {"session_id": session["id"]})


async def test_custom_tool_and_confirmations(stdio: Callable[..., Any], model: ModelServer) -> None:
    custom = {"type": "custom", "name": "approve", "description": "Ask.", "input_schema": {"type": "object"}}
    toolset = {"type": "agent_toolset_20260401", "default_config": {"permission_policy": {"type": "always_ask"}}}
    model.enqueue(
        reply(tool_use("approve", {})),
        reply(tool_use("bash", {"command": "echo allowed-ran"})),
        reply(tool_use("bash", {"command": "rm -rf /workspace"})),
        lambda request: reply(f"outcome {request.tool_results()}"),
    )
    async with stdio() as client:
        agent = await call_ok(client, "create_agent", {"name": "careful", "tools": [toolset, custom]})
        session = await call_ok(client, "create_session", {"agent_id": agent["id"]})
        sid = session["id"]
        step = await call_ok(client, "send_message", {"session_id": sid, "text": "go"})
        [custom_id] = step["stop_reason"]["event_ids"]
        await call_ok(client, "submit_tool_result", {"session_id": sid, "tool_use_id": custom_id, "content": "ok"})
        step = await wait_requires_action(client, sid, exclude=custom_id)
        await call_ok(client, "confirm_tool_use", {"session_id": sid, "tool_use_id": step, "allow": True})
        denied = await wait_requires_action(client, sid, exclude=step)
        await call_ok(
            client,
            "confirm_tool_use",
            {"session_id": sid, "tool_use_id": denied, "allow": False, "deny_message": "never"},
        )
        final = await wait_end_turn(client, sid)
        assert "never" in final
    assert "allowed-ran" in str(model.requests[2].tool_results())


async def test_retries_then_exhausted_and_a_missing_key(stdio: Callable[..., Any], model: ModelServer) -> None:
    model.enqueue(error(529, "overloaded_error"), error(529, "overloaded_error"), error(529, "overloaded_error"))
    async with stdio() as client:
        session = await call_ok(client, "create_session", {})
        outcome = await call_ok(client, "send_message", {"session_id": session["id"], "text": "hi"})
        assert outcome["stop_reason"]["type"] == "retries_exhausted"
    async with stdio(ANTHROPIC_API_KEY="") as client:
        session = await call_ok(client, "create_session", {})
        outcome = await call_ok(client, "send_message", {"session_id": session["id"], "text": "hi"})
        assert outcome["status"] == "idle"
        assert any("ANTHROPIC_API_KEY" in str(e.get("error")) for e in outcome["events"])


async def test_interrupt_during_a_long_command(
    stdio: Callable[..., Any], model: ModelServer, docker_client: docker.DockerClient
) -> None:
    model.enqueue(reply(tool_use("bash", {"command": LONG_COMMAND})))
    async with stdio() as client:
        session = await call_ok(client, "create_session", {"message": "sleep"})
        sid = session["id"]
        # The interrupt must find the command running: wait until it shows in the sandbox's process list.
        await anyio.to_thread.run_sync(wait_for_running_command, docker_client, sid)
        with anyio.fail_after(HANG_GUARD_S):
            stopped = await call_ok(client, "interrupt_session", {"session_id": sid})
        assert stopped["status"] == "idle"
        assert docker_client.containers.list(all=True, filters={"label": f"{LABEL_SESSION}={sid}"}) == []
        page = await call_ok(client, "get_events", {"session_id": sid, "limit": 200})
        [use] = [e for e in page["events"] if e["type"] == "agent.tool_use"]
        [result] = [e for e in page["events"] if e["type"] == "agent.tool_result"]
        assert result["tool_use_id"] == use["id"]
        assert result["is_error"] is True
        assert "interrupted" in result["content"][0]["text"]
        assert "user.interrupt" in [e["type"] for e in page["events"]]
