"""Group commit: concurrent appends share transactions, keep each session's order, and fail alone."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import anyio
import pytest

from server.core.agents import AgentSnapshot, ModelConfig
from server.core.common import now_rfc3339
from server.core.environments import EnvironmentSpec
from server.core.errors import NotFoundError
from server.core.events import Event, EventBody, raw_event
from server.core.sessions import Session, SessionStats
from server.store.sqlite.appender import Appender
from server.store.sqlite.store import Store

pytestmark = pytest.mark.anyio


class CountingStore(Store):
    """The real store, counting its group-commit transactions."""

    batches: list[int]

    def append_many(self, requests: Sequence[tuple[str, Sequence[EventBody]]]) -> list[list[Event] | NotFoundError]:
        self.batches.append(len(requests))
        return super().append_many(requests)


def open_store(path: Path) -> CountingStore:
    plain = Store.open(path)
    store = CountingStore(plain._db, path)  # same connection, counting subclass
    store.batches = []
    return store


def add_session(store: Store, session_id: str) -> None:
    now = now_rfc3339()
    agent = AgentSnapshot(id=None, version=None, name="inline", model=ModelConfig(id="m"), tools=[])
    store.insert_session(
        Session(
            id=session_id,
            status="idle",
            agent=agent,
            environment_id=None,
            environment=EnvironmentSpec(),
            stats=SessionStats(event_count=0),
            created_at=now,
            updated_at=now,
        )
    )


async def test_concurrent_appends_keep_each_sessions_order_and_share_transactions(tmp_path: Path) -> None:
    store = open_store(tmp_path / "store.db")
    appender = Appender(store)
    session_ids = [f"sesn_{i:026d}" for i in range(10)]
    for session_id in session_ids:
        add_session(store, session_id)
    per_session = 50

    async def writer(session_id: str) -> None:
        for n in range(per_session):
            [event] = await appender.append(session_id, [raw_event("agent.message", {"n": n})])
            assert event.payload() == {"n": n}

    async with anyio.create_task_group() as tg:
        for session_id in session_ids:
            tg.start_soon(writer, session_id)

    for session_id in session_ids:
        events = store.read_events(session_id, 0, 1_000)
        assert [e.seq for e in events] == list(range(1, per_session + 1))
        assert [e.payload()["n"] for e in events] == list(range(per_session))
    assert sum(store.batches) == len(session_ids) * per_session
    assert len(store.batches) < len(session_ids) * per_session  # some appends did share a transaction
    assert max(store.batches) > 1


async def test_an_append_to_a_missing_session_fails_alone(tmp_path: Path) -> None:
    store = open_store(tmp_path / "store.db")
    appender = Appender(store)
    add_session(store, "sesn_live")
    outcomes: dict[str, object] = {}

    async def append(session_id: str) -> None:
        try:
            outcomes[session_id] = await appender.append(session_id, [raw_event("agent.message", {})])
        except NotFoundError as exc:
            outcomes[session_id] = exc

    async with anyio.create_task_group() as tg:
        tg.start_soon(append, "sesn_live")
        tg.start_soon(append, "sesn_gone")
        tg.start_soon(append, "sesn_live")

    assert isinstance(outcomes["sesn_gone"], NotFoundError)
    assert [e.seq for e in store.read_events("sesn_live", 0, 10)] == [1, 2]
    assert store.read_events("sesn_gone", 0, 10) == []
