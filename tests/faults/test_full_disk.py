"""The data dir's disk fills in the middle of a turn: that turn fails, the server stays up, and the session goes
on once there is space again (with its next message, or at the next start).

The server is a child process on stdio with its data dir on a 64 MiB tmpfs (tests/small_disk.py); the scripted
model fills the disk while the turn waits for its answer, so the commit of that answer is what fails. The
store is new, so its WAL has never been checkpointed and every commit needs fresh blocks.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from log_checks import assert_log_is_valid, read_log
from mcp import Client, StdioServerParameters, stdio_client
from model_server import ModelServer, RecordedRequest, Reply, reply
from processes import python_path_env
from scenario import call_error, call_ok
from small_disk import SmallDisk

pytestmark = pytest.mark.anyio

HANG_GUARD_S = 120
Connect = Callable[[], AbstractAsyncContextManager[Client]]


@pytest.fixture
def stdio_server(small_disk: SmallDisk, subprocess_env: dict[str, str], model: ModelServer, tmp_path: Path) -> Connect:
    """Starts `python -m server serve` over stdio on the small disk; its stderr goes to tmp_path/server.core.log."""
    env = python_path_env(
        {
            **subprocess_env,
            "MANAGED_SESSIONS_DATA_DIR": str(small_disk.path / "data"),
            "ANTHROPIC_BASE_URL": model.base_url,
            "ANTHROPIC_API_KEY": "test-key",
            "MANAGED_SESSIONS_MODEL_RETRY_DELAYS": "0.01",
        }
    )

    @asynccontextmanager
    async def connect() -> AsyncIterator[Client]:
        params = StdioServerParameters(command=sys.executable, args=["-m", "server", "serve"], env=env)
        with (tmp_path / "server.log").open("a") as errlog:
            async with Client(stdio_client(params, errlog=errlog)) as client:
                yield client

    return connect


def fill_then_answer(disk: SmallDisk) -> Callable[[RecordedRequest], Reply]:
    def answer(request: RecordedRequest) -> Reply:
        disk.fill()
        return reply("an answer the full disk cannot take: " + "x" * 20_000)

    return answer


def user_texts(request: RecordedRequest) -> list[str]:
    return [b["text"] for m in request.messages if m["role"] == "user" for b in m["content"] if b["type"] == "text"]


async def test_a_disk_that_fills_during_a_turn_fails_that_turn_and_the_server_answers_throughout(
    stdio_server: Connect, small_disk: SmallDisk, model: ModelServer, tmp_path: Path
) -> None:
    data_dir = small_disk.path / "data"
    model.enqueue(fill_then_answer(small_disk))
    with anyio.fail_after(HANG_GUARD_S):
        async with stdio_server() as client:
            session = (await call_ok(client, "create_session", {}))["id"]
            other = (await call_ok(client, "create_session", {}))["id"]

            error = await call_error(client, "send_message", {"session_id": session, "text": "go"})
            assert "cannot take writes: its disk is full. Free space on that disk" in error
            assert str(data_dir) in error

            # The same server still answers: reads as ever, and every write says what is wrong.
            assert (await call_ok(client, "get_session", {"session_id": session}))["status"] == "running"
            assert len((await call_ok(client, "list_sessions", {}))["sessions"]) == 2
            for tool, arguments in (
                ("create_agent", {"name": "a"}),
                ("send_message", {"session_id": other, "text": "hi", "wait_seconds": 0}),
                ("archive_session", {"session_id": other}),
            ):
                refused = await call_error(client, tool, arguments)
                assert "its disk is full" in refused, (tool, refused)

            small_disk.free()
            model.enqueue(lambda request: reply(f"heard {user_texts(request)}"))
            outcome = await call_ok(client, "send_message", {"session_id": session, "text": "again"})
            assert outcome["status"] == "idle"
            assert outcome["stop_reason"]["type"] == "end_turn"
            assert outcome["reply"] == "heard ['go', 'again']"
            assert (await call_ok(client, "archive_session", {"session_id": other}))["status"] == "terminated"

    server_log = (tmp_path / "server.log").read_text()
    assert "could not record that its run failed" in server_log
    log = read_log(data_dir, session)
    assert_log_is_valid(log)
    assert "an answer the full disk cannot take" not in str([e.model_dump() for e in log])


async def test_a_session_cut_short_by_a_full_disk_goes_on_at_the_next_start(
    stdio_server: Connect, small_disk: SmallDisk, model: ModelServer
) -> None:
    model.enqueue(fill_then_answer(small_disk))
    with anyio.fail_after(HANG_GUARD_S):
        async with stdio_server() as client:
            session = (await call_ok(client, "create_session", {}))["id"]
            await call_error(client, "send_message", {"session_id": session, "text": "go"})
            small_disk.free()

        model.enqueue(lambda request: reply(f"resumed with {user_texts(request)}"))
        async with stdio_server() as client:
            idle = await wait_for_idle(client, session)
            assert idle["stop_reason"]["type"] == "end_turn"
            page = await call_ok(client, "get_events", {"session_id": session, "types": ["agent.message"]})
            assert [e["content"][0]["text"] for e in page["events"]] == ["resumed with ['go']"]
    assert_log_is_valid(read_log(small_disk.path / "data", session))


async def wait_for_idle(client: Client, session_id: str) -> dict[str, Any]:
    for _ in range(30):
        page = await call_ok(
            client, "get_events", {"session_id": session_id, "types": ["session.status_idle"], "wait_seconds": 5}
        )
        if page["events"]:
            return dict(page["events"][-1])
    raise AssertionError(f"session {session_id} never went idle")
