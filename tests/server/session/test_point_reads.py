"""Point reads (`get_session`, `get_agent`, `get_environment`) run on the event loop when the store is free, and in
a worker thread when another thread is using it: the same answer either way, and the loop never waits on the
store's lock."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import anyio
import anyio.to_thread
import pytest
from store_rows import insert_session

from server.core.blocking import Busy, in_thread, point_read
from server.core.errors import NotFoundError
from server.core.sessions import Session
from server.store.sqlite.store import Store

pytestmark = pytest.mark.anyio

HANG_GUARD_S = 10.0
"""Only bounds a broken run: a holder that is never released gives up after this."""


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(tmp_path / "store.db")
    yield opened
    opened.close()


class RecordingRead:
    """`store.get_session`, noting the thread each call ran on."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.threads: list[int] = []

    def __call__(self, session_id: str) -> Session:
        self.threads.append(threading.get_ident())
        return self.store.get_session(session_id)


async def test_on_a_free_store_the_read_runs_on_the_loop_and_answers_as_the_threaded_read_does(store: Store) -> None:
    session_id = insert_session(store)
    read = RecordingRead(store)
    inline = await point_read(store, read, session_id)
    assert read.threads == [threading.get_ident()]
    assert inline == await in_thread(store.get_session, session_id)


async def test_while_another_thread_uses_the_store_the_read_goes_to_a_worker_thread(store: Store) -> None:
    session_id = insert_session(store)
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        holding.set()
        release.wait(HANG_GUARD_S)

    holder = threading.Thread(target=store.read_now, args=(hold,))
    holder.start()
    await anyio.to_thread.run_sync(holding.wait, HANG_GUARD_S)
    assert store.read_now(lambda: "free") is Busy.BUSY
    read = RecordingRead(store)
    found: list[Session] = []

    async def get() -> None:
        found.append(await point_read(store, read, session_id))

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(get)
        await anyio.to_thread.run_sync(lambda: None)  # the loop runs on while the read waits for the store
        release.set()
    holder.join()
    assert len(read.threads) == 1
    assert read.threads[0] != threading.get_ident()
    assert found == [store.get_session(session_id)]


def test_a_read_that_fails_on_the_loop_raises_as_it_would_in_a_thread(store: Store) -> None:
    with pytest.raises(NotFoundError, match="no session"):
        store.read_now(lambda: store.get_session("sesn_missing"))
    assert store.read_now(lambda: "free again") == "free again"  # the lock was let go
