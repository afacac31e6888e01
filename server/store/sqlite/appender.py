"""Group commit for event appends.

Every append is its own durable transaction as far as its caller is concerned,
but appends that arrive while a commit is under way wait for it and then go
together: one transaction and one worker-thread hop for the whole batch. With
many sessions running at once this keeps the store's throughput near the bare
SQLite figure instead of paying a thread hop per event.

The first caller to find no commit under way leads: it commits batches until
none is pending. The others wait on their request's signal. The leader's
commits are shielded from cancellation, so a cancelled leader never strands the
requests it took.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import anyio

from server.core.blocking import in_thread
from server.core.errors import NotFoundError
from server.core.events import Event, EventBody
from server.store.ports import SessionStore

__all__ = ["Appender"]


@dataclass
class _Request:
    session_id: str
    events: Sequence[EventBody]
    done: anyio.Event = field(default_factory=anyio.Event)
    result: list[Event] | Exception | None = None


class Appender:
    def __init__(self, store: SessionStore) -> None:
        self._store = store
        self._pending: list[_Request] = []
        self._committing = False

    async def append(self, session_id: str, events: Sequence[EventBody]) -> list[Event]:
        """Appends `events` to the session's log; returns them once they are committed."""
        request = _Request(session_id, events)
        self._pending.append(request)
        if not self._committing:
            self._committing = True
            try:
                with anyio.CancelScope(shield=True):
                    await self._commit_pending()
            finally:
                self._committing = False
        await request.done.wait()
        if isinstance(request.result, Exception):
            raise request.result
        assert request.result is not None
        return request.result

    async def _commit_pending(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            results: list[list[Event] | NotFoundError] | list[Exception]
            try:
                results = await in_thread(self._store.append_many, [(r.session_id, r.events) for r in batch])
            except Exception as exc:  # noqa: BLE001 - the whole transaction failed: each caller gets the failure
                results = [exc] * len(batch)
            for request, result in zip(batch, results, strict=True):
                request.result = result
                request.done.set()
