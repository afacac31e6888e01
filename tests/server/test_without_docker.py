"""With no Docker engine at all, everything that does not run a tool works, and what does says why it cannot.

`DOCKER_HOST` names a socket that does not exist, so these run the same on a machine with an engine and one
without. Archive and delete are the store's business: their containers go later, once an engine answers
(the start-up reaper removes whatever no session needs; tests/faults/ shows it with a real engine).
"""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
from mcp import Client
from model_server import ModelServer, reply, tool_use
from scenario import call_error, call_ok
from serving import connected

from server.core.config import ServerConfig

pytestmark = pytest.mark.anyio

HANG_GUARD_S = 60


@pytest.fixture(autouse=True)
def _no_engine(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")


async def test_archive_and_delete_work_without_an_engine(client: Client) -> None:
    session = await call_ok(client, "create_session", {"title": "t"})
    archived = await call_ok(client, "archive_session", {"session_id": session["id"]})
    assert archived["status"] == "terminated"
    deleted = await call_ok(client, "delete_session", {"session_id": session["id"]})
    assert deleted["deleted"] is True
    assert "no session" in await call_error(client, "get_session", {"session_id": session["id"]})

    other = await call_ok(client, "create_session", {})
    await call_ok(client, "delete_session", {"session_id": other["id"]})  # delete without archiving first
    assert (await call_ok(client, "list_sessions", {"include_archived": True}))["sessions"] == []


async def test_output_files_without_an_engine_say_what_to_start(client: Client) -> None:
    session = await call_ok(client, "create_session", {})
    for tool, arguments in (
        ("list_output_files", {"session_id": session["id"]}),
        ("read_output_file", {"session_id": session["id"], "path": "report.md"}),
    ):
        error = await call_error(client, tool, arguments)
        assert "the Docker engine does not answer" in error, error
        assert "DOCKER_HOST" in error


async def test_a_tool_call_waits_for_the_engine_then_idles_without_asking_the_model_again(
    data_dir: Path, model: ModelServer
) -> None:
    config = ServerConfig(data_dir=data_dir, model="claude-test", model_key_present=True, engine_wait_s=1.0)
    model.enqueue(reply(tool_use("bash", {"command": "echo hi"})))
    async with connected(config) as client:
        session = await call_ok(client, "create_session", {})
        with anyio.fail_after(HANG_GUARD_S):
            outcome = await call_ok(client, "send_message", {"session_id": session["id"], "text": "go"})
        assert outcome["status"] == "idle"
        assert outcome["stop_reason"]["type"] == "retries_exhausted"
        errors = [e["error"] for e in outcome["events"] if e["type"] == "session.error"]
        assert [e["retry_status"]["type"] for e in errors] == ["retrying", "exhausted"]
        assert all("the Docker engine does not answer" in e["message"] for e in errors)
        assert "Waiting up to 1 s" in errors[0]["message"]
        assert "nothing ran" in errors[1]["message"]
        assert not [e for e in outcome["events"] if e["type"] == "agent.tool_result"]  # it never ran: no result
        assert len(model.requests) == 1  # the model is not asked again with the failure

        # The next message tries the tool again first (here the engine is still away: the same, and no model call).
        with anyio.fail_after(HANG_GUARD_S):
            again = await call_ok(client, "send_message", {"session_id": session["id"], "text": "try again"})
        assert again["stop_reason"]["type"] == "retries_exhausted"
        assert len(model.requests) == 1
