"""The agent loop end to end in process: the real anthropic SDK against the scripted model, real sandboxes."""

from __future__ import annotations

from typing import Any

import anyio
import docker
import docker.errors
import pytest
from mcp import Client
from model_server import ModelServer, reply, tool_use
from sandbox_probes import LONG_COMMAND, wait_for_running_command
from scenario import call_ok
from serving import connected

from server.core.config import ServerConfig
from server.hands.docker.sandbox import LABEL_SESSION

pytestmark = [pytest.mark.docker, pytest.mark.anyio]

HANG_GUARD_S = 120
"""Only stops a test that hangs; what a test checks is events and states, never how long something took."""


@pytest.fixture
def loop_config(docker_loop_config: ServerConfig) -> ServerConfig:
    return docker_loop_config


def types_of(outcome: dict[str, Any]) -> list[str]:
    return [e["type"] for e in outcome["events"]]


async def test_a_message_runs_tools_in_the_sandbox_and_remembers_across_turns(
    loop_config: ServerConfig, model: ModelServer
) -> None:
    model.enqueue(
        reply(
            "Writing it.", tool_use("bash", {"command": "cd /workspace && echo 42 > /mnt/session/outputs/answer.txt"})
        ),
        reply("Saved the answer."),
        reply(tool_use("bash", {"command": "pwd; cat /mnt/session/outputs/answer.txt"})),
        lambda request: reply(f"It says {request.tool_results()}"),
    )
    async with connected(loop_config) as client:
        session = await call_ok(client, "create_session", {"system": "Be brief."})
        first = await call_ok(client, "send_message", {"session_id": session["id"], "text": "save 42"})
        assert first["status"] == "idle"
        assert first["stop_reason"]["type"] == "end_turn"
        assert first["reply"] == "Saved the answer."
        assert types_of(first)[:3] == ["user.message", "session.status_running", "span.model_request_start"]
        assert "agent.tool_use" in types_of(first)
        assert "agent.tool_result" in types_of(first)
        second = await call_ok(client, "send_message", {"session_id": session["id"], "text": "what did you save?"})
        assert "42" in second["reply"]
        assert "/workspace" in second["reply"]
        # The second request carried the whole conversation: memory across turns.
        last = model.requests[-1]
        assert [m["role"] for m in last.messages] == [
            "user",
            "assistant",
            "user",
            "assistant",
            "user",
            "assistant",
            "user",
        ]
        assert last.system_text == "Be brief."
        assert {"bash", "read", "write", "edit", "glob", "grep", "web_fetch"} <= set(last.tool_names)
        listing = await call_ok(client, "list_output_files", {"session_id": session["id"]})
        assert [f["path"] for f in listing["files"]] == ["answer.txt"]
        got = await call_ok(client, "get_session", {"session_id": session["id"]})
        assert got["usage"]["output_tokens"] > 0
        await call_ok(client, "delete_session", {"session_id": session["id"]})


async def test_an_interrupt_stops_a_running_command(
    loop_config: ServerConfig, model: ModelServer, docker_client: docker.DockerClient
) -> None:
    model.enqueue(reply(tool_use("bash", {"command": LONG_COMMAND})), reply("Stopped, as asked."))
    async with connected(loop_config) as client:
        session = await call_ok(client, "create_session", {})
        sid = session["id"]
        started = await call_ok(client, "send_message", {"session_id": sid, "text": "wait a minute", "wait_seconds": 0})
        await wait_for_type(client, sid, started["next_cursor"], "agent.tool_use")
        await anyio.to_thread.run_sync(wait_for_running_command, docker_client, sid)
        with anyio.fail_after(HANG_GUARD_S):
            stopped = await call_ok(client, "interrupt_session", {"session_id": sid})
        assert stopped["status"] == "idle"
        # The command's container is gone, and the command with it; its result says it was interrupted.
        assert docker_client.containers.list(all=True, filters={"label": f"{LABEL_SESSION}={sid}"}) == []
        page = await call_ok(client, "get_events", {"session_id": sid, "limit": 200})
        types = [e["type"] for e in page["events"]]
        assert "user.interrupt" in types
        [result] = [e for e in page["events"] if e["type"] == "agent.tool_result"]
        assert result["is_error"]
        assert "interrupted" in result["content"][0]["text"]
        again = await call_ok(client, "send_message", {"session_id": sid, "text": "ok, stop"})
        assert again["reply"] == "Stopped, as asked."
        await call_ok(client, "delete_session", {"session_id": sid})


async def wait_for_type(client: Client, session_id: str, after: str, event_type: str) -> dict[str, Any]:
    for _ in range(20):
        page = await call_ok(
            client, "get_events", {"session_id": session_id, "after": after, "wait_seconds": 10, "types": [event_type]}
        )
        if page["events"]:
            return page["events"][0]
    raise AssertionError(f"no {event_type} event came")
