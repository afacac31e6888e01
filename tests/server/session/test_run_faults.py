"""A run that breaks ends alone, says why where it can, and its session goes on later.

In process, with the real store, loop and `anyio` task group: the store is made to refuse every write in the
middle of a turn with SQLite's `query_only`, which fails each write with SQLITE_READONLY as a file system
remounted read-only does (a real full file system is in tests/faults/). No Docker: these turns use no tools.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import anyio
import pytest
from model_server import ModelServer, RecordedRequest, Reply, reply

from server.core.config import ServerConfig
from server.core.errors import DataDirUnwritableError
from server.services.runtime import Runtime, open_runtime
from server.services.sessions import NewSession

pytestmark = pytest.mark.anyio

HANG_GUARD_S = 60


@pytest.fixture
def run_config(data_dir: Path) -> ServerConfig:
    return ServerConfig(data_dir=data_dir, model="claude-test", model_key_present=True, model_retry_delays_s=(0.01,))


def refuse_writes(runtime: Runtime, refuse: bool) -> None:
    """Makes the store's connection refuse (or take) writes; may be called from the model server's thread."""
    store = runtime.store
    with store._lock:
        store._db.execute(f"pragma query_only = {'on' if refuse else 'off'}")


def types(events: list[Any]) -> list[str]:
    return [e.type for e in events]


async def test_a_store_that_refuses_writes_mid_turn_ends_that_run_alone_and_the_session_goes_on_later(
    run_config: ServerConfig, model: ModelServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with open_runtime(run_config) as runtime:
        stuck = await runtime.sessions.create(NewSession())
        other = await runtime.sessions.create(NewSession())

        def fill_the_store(request: RecordedRequest) -> Reply:
            refuse_writes(runtime, refuse=True)
            return reply("y" * 1_000)

        model.enqueue(fill_the_store)
        with anyio.fail_after(HANG_GUARD_S):
            with pytest.raises(DataDirUnwritableError) as refused:
                await runtime.inbox.send_message(stuck.id, "go", 30, None)
        assert "it is read-only" in str(refused.value)
        assert "Make it writable again" in str(refused.value)
        assert str(run_config.data_dir) in str(refused.value)
        assert "could not record that its run failed" in caplog.text

        # The server and the other session still answer: reads work, and a write says what is wrong.
        assert (await runtime.sessions.get(other.id)).status == "idle"
        with pytest.raises(DataDirUnwritableError):
            await runtime.inbox.send_message(other.id, "hello", 0, None)
        assert (await runtime.sessions.get(stuck.id)).status == "running"  # its log stops mid-turn, unfinished

        refuse_writes(runtime, refuse=False)
        model.enqueue(lambda request: reply(f"{len(request.messages)} message(s)"))
        with anyio.fail_after(HANG_GUARD_S):
            outcome = await runtime.inbox.send_message(stuck.id, "again", 30, None)
        assert outcome.status == "idle"
        assert outcome.reply == "1 message(s)"  # "go" and "again" in one user message: the lost answer is not in it
        (only,) = model.requests[-1].messages
        assert [block["text"] for block in only["content"]] == ["go", "again"]
        log = runtime.store.read_events(stuck.id, 0, 1_000)
        assert [e.seq for e in log] == list(range(1, len(log) + 1))
        assert types(log) == [
            "user.message",
            "session.status_running",
            "span.model_request_start",  # the span the refused writes cut short, never ended
            "user.message",
            "span.model_request_start",
            "agent.message",
            "span.model_request_end",
            "session.usage",
            "session.status_idle",
        ]


async def test_interrupting_a_session_whose_run_could_not_record_its_end_makes_it_idle(
    run_config: ServerConfig, model: ModelServer
) -> None:
    async with open_runtime(run_config) as runtime:
        session = await runtime.sessions.create(NewSession())

        def fill_the_store(request: RecordedRequest) -> Reply:
            refuse_writes(runtime, refuse=True)
            return reply("y" * 1_000)

        model.enqueue(fill_the_store)
        with anyio.fail_after(HANG_GUARD_S), pytest.raises(DataDirUnwritableError):
            await runtime.inbox.send_message(session.id, "go", 30, None)
        refuse_writes(runtime, refuse=False)

        with anyio.fail_after(HANG_GUARD_S):
            interrupted = await runtime.inbox.interrupt(session.id)
        assert interrupted.status == "idle"
        assert interrupted.stop_reason is not None
        assert interrupted.stop_reason.type == "end_turn"
        archived = await runtime.sessions.archive(session.id)  # idle now, so archiving is allowed
        assert archived.status == "terminated"


async def test_a_run_that_crashes_records_an_error_and_idles_without_taking_other_sessions_down(
    run_config: ServerConfig, model: ModelServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A bug in one run (here: the model answers something the loop cannot record) is that run's end alone."""

    async with open_runtime(run_config) as runtime:
        broken = await runtime.sessions.create(NewSession())
        fine = await runtime.sessions.create(NewSession())
        original = runtime.runner._model.turn

        async def crash_once(**kwargs: Any) -> Any:
            runtime.runner._model.turn = original  # type: ignore[method-assign]
            raise RuntimeError("a bug in the loop")

        runtime.runner._model.turn = crash_once  # type: ignore[method-assign]
        with anyio.fail_after(HANG_GUARD_S):
            outcome = await runtime.inbox.send_message(broken.id, "go", 30, None)
        assert outcome.status == "idle"
        assert outcome.stop_reason is not None
        assert outcome.stop_reason.type == "retries_exhausted"
        error = next(e for e in outcome.events if e["type"] == "session.error")["error"]
        assert "failed unexpectedly (RuntimeError)" in error["message"]
        assert "a bug in the loop" not in error["message"]  # the exception's text stays in the server's log
        assert error["retry_status"] == {"type": "exhausted"}
        assert "a bug in the loop" in caplog.text

        model.enqueue(reply("fine"), reply("back"))
        with anyio.fail_after(HANG_GUARD_S):
            assert (await runtime.inbox.send_message(fine.id, "hi", 30, None)).reply == "fine"
            assert (await runtime.inbox.send_message(broken.id, "again", 30, None)).reply == "back"
