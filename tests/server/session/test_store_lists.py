"""The store's REST-shaped reads and the session update: both directions, filters, and an update that is
written whole with its `session.updated` or not at all."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from store_rows import insert_session

from server.core.errors import ConflictError, NotFoundError
from server.core.events import SessionUpdated, UserInterrupt
from server.store.ports import EventFilter, SessionFilter, TimeBounds
from server.store.sqlite.store import Store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(tmp_path / "store.db")
    yield opened
    opened.close()


def test_sessions_list_both_ways_from_a_cursor(store: Store) -> None:
    ids = [insert_session(store) for _ in range(4)]
    newest_first = [s.id for s in store.list_sessions(10, None, SessionFilter())]
    assert newest_first == ids[::-1]
    assert [s.id for s in store.list_sessions(10, ids[1], SessionFilter(ascending=True))] == ids[2:]
    assert [s.id for s in store.list_sessions(10, ids[2], SessionFilter())] == ids[1::-1]
    created = store.get_session(ids[2]).created_at
    after = SessionFilter(ascending=True, created_at=TimeBounds(gte=created))
    listed = store.list_sessions(10, None, after)
    # Sessions made in the same millisecond share created_at: each listed one is at or after it, none is missed.
    assert all(s.created_at >= created for s in listed)
    assert [s.id for s in listed][-2:] == ids[2:]
    assert [s.id for s in store.list_sessions(10, None, SessionFilter(statuses=("running",)))] == []


def test_an_update_writes_the_session_and_its_event_together(store: Store) -> None:
    session_id = insert_session(store)
    [event] = store.update_session(session_id, "t", {"a": "1"}, SessionUpdated(title="t", metadata={"a": "1"}))
    assert event.type == "session.updated"
    assert event.seq == 1
    session = store.get_session(session_id)
    assert (session.title, session.metadata, session.stats.event_count) == ("t", {"a": "1"}, 1)

    store.archive_session(session_id, "2026-12-02T10:00:00.000Z")
    with pytest.raises(ConflictError):
        store.update_session(session_id, "late", {}, SessionUpdated(title="late"))
    assert store.get_session(session_id).title == "t"
    assert store.last_seq(session_id) == 2  # the update added nothing after the archive's event
    with pytest.raises(NotFoundError):
        store.update_session("sesn_01JD7Y3Q4K2W8T6X0V5N9R1M3P", None, {}, SessionUpdated(title=None))


def test_events_list_both_ways_by_type(store: Store) -> None:
    session_id = insert_session(store)
    store.append_events(session_id, [UserInterrupt(), SessionUpdated(title="x"), UserInterrupt()])
    assert [e.seq for e in store.list_events(session_id, 10, EventFilter())] == [1, 2, 3]
    assert [e.seq for e in store.list_events(session_id, 10, EventFilter(after_seq=3, ascending=False))] == [2, 1]
    assert [e.seq for e in store.list_events(session_id, 10, EventFilter(types=("user.interrupt",)))] == [1, 3]
    with pytest.raises(NotFoundError):
        store.list_events("sesn_01JD7Y3Q4K2W8T6X0V5N9R1M3P", 10, EventFilter())
