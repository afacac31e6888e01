"""kill -9 the server in the middle of a session, start it again: the session goes on with a valid log."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import docker
import docker.errors
import pytest
from model_server import ModelServer, hang, reply, tool_use
from processes import python_path_env
from stdio_child import StdioServer

from server.core.config import DEFAULT_IMAGE
from server.store.sqlite.store import Store

pytestmark = pytest.mark.docker


@pytest.fixture
def env(data_dir: Path, subprocess_env: dict[str, str], docker_client: docker.DockerClient) -> dict[str, str]:
    return python_path_env({**subprocess_env, "ANTHROPIC_API_KEY": "test-key", "MANAGED_SESSIONS_IMAGE": DEFAULT_IMAGE})


def assert_log_is_valid(data_dir: Path, session_id: str) -> list[dict[str, Any]]:
    store = Store.open(data_dir / "store.db")
    try:
        events = store.read_events(session_id, 0, 10_000)
    finally:
        store.close()
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    uses = [e.id for e in events if e.type == "agent.tool_use"]
    answers = [e.payload()["tool_use_id"] for e in events if e.type == "agent.tool_result"]
    assert sorted(uses) == sorted(answers)  # every tool use answered exactly once
    return [e.model_dump() for e in events]


def test_a_tool_running_at_a_kill_is_answered_as_interrupted_and_the_session_goes_on(
    env: dict[str, str], data_dir: Path, tmp_path: Path
) -> None:
    with ModelServer() as model:
        model.enqueue(
            reply(tool_use("bash", {"command": "echo before > /workspace/f && sleep 60"})),
            lambda request: reply(f"recovered: {request.tool_results()}"),
        )
        env = {**env, "ANTHROPIC_BASE_URL": model.base_url}
        first = StdioServer(env, tmp_path / "first.log")
        session = first.call("create_session", {})
        first.call("send_message", {"session_id": session["id"], "text": "work", "wait_seconds": 0})
        first.wait_for(session["id"], "agent.tool_use")
        first.kill_9()

        second = StdioServer(env, tmp_path / "second.log")
        idle = second.wait_for(session["id"], "session.status_idle")
        assert idle["stop_reason"]["type"] == "end_turn"
        events = assert_log_is_valid(data_dir, session["id"])
        [result] = [e for e in events if e["type"] == "agent.tool_result"]
        assert "interrupted" in json.dumps(result)
        assert "recovered" in json.dumps([e for e in events if e["type"] == "agent.message"])
        assert [e["type"] for e in events].count("user.message") == 1
        second.call("delete_session", {"session_id": session["id"]})
        second.stop()
        assert model.violations == []


def test_a_model_request_in_flight_at_a_kill_is_asked_again(
    env: dict[str, str], data_dir: Path, tmp_path: Path
) -> None:
    release = threading.Event()
    with ModelServer() as model:
        model.enqueue(hang("thinking...", release=release), reply("answered after the restart"))
        env = {**env, "ANTHROPIC_BASE_URL": model.base_url}
        first = StdioServer(env, tmp_path / "first.log")
        session = first.call("create_session", {})
        first.call("send_message", {"session_id": session["id"], "text": "question", "wait_seconds": 0})
        model.wait_for_requests(1, timeout_s=30)
        first.kill_9()
        release.set()

        second = StdioServer(env, tmp_path / "second.log")
        idle = second.wait_for(session["id"], "session.status_idle")
        assert idle["stop_reason"]["type"] == "end_turn"
        events = assert_log_is_valid(data_dir, session["id"])
        messages = [e for e in events if e["type"] == "agent.message"]
        assert [m["content"][0]["text"] for m in messages] == ["answered after the restart"]
        second.call("delete_session", {"session_id": session["id"]})
        second.stop()
        assert model.requests[1].messages == model.requests[0].messages  # the same conversation, asked again


def test_killed_again_and_again_a_multi_step_session_still_finishes_with_a_valid_log(
    env: dict[str, str], data_dir: Path, tmp_path: Path
) -> None:
    def decide(request: Any) -> Any:
        done = sum(
            1 for m in request.messages for b in m["content"] if isinstance(b, dict) and b.get("type") == "tool_result"
        )
        if done < 4:
            return reply("step", tool_use("bash", {"command": f"sleep 0.3; echo step {done} >> /workspace/steps"}))
        return reply("finished")

    with ModelServer() as model:
        model.enqueue(*[decide] * 60)
        env = {**env, "ANTHROPIC_BASE_URL": model.base_url}
        server = StdioServer(env, tmp_path / "run-0.log")
        session = server.call("create_session", {})
        server.call("send_message", {"session_id": session["id"], "text": "do four steps", "wait_seconds": 0})
        for round_index, kill_at in enumerate((4, 9, 14, 19, 24), start=1):  # model calls, tool runs, writes
            server.follow(
                session["id"], until=lambda page, n=kill_at: page["events"] and page["events"][-1]["seq"] >= n
            )
            server.kill_9()
            server = StdioServer(env, tmp_path / f"run-{round_index}.log")
        server.follow(session["id"], until=lambda page: page["status"] == "idle" and not page["has_more"])
        events = assert_log_is_valid(data_dir, session["id"])
        assert [e["type"] for e in events].count("user.message") == 1
        assert events[-1]["type"] == "session.status_idle"
        texts = [e["content"][0]["text"] for e in events if e["type"] == "agent.message"]
        assert texts[-1] == "finished"
        server.call("delete_session", {"session_id": session["id"]})
        server.stop()
        assert [v for v in model.violations if "ran out" not in v] == []
