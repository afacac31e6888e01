"""Following a session's log: every event after a cursor, then each new one as it is appended.

Each follower reads the store after its own cursor, woken by the session's `EventNotifier`, so it goes at
its own pace: a slow reader holds up nobody (not the session, not other readers) and, reconnecting with the
id of the last event it got, misses nothing. Around the stored events it may get stream-only ones: previews
of the model's text (`PreviewHub`), `session.deleted` when the session is deleted (its log is gone, so this
service says so and the follow ends), and a heartbeat when nothing happened for a while.

Previews of a message always come before the stored message: the loop publishes them before it appends it,
and a follower hands out what previews it holds before it reads the store. A preview of a message the
follower has already handed out (it was catching up on the log meanwhile) is dropped.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream
from pydantic import JsonValue

from server.core.blocking import in_thread
from server.core.common import now_rfc3339
from server.core.errors import InvalidRequestError, NotFoundError
from server.core.events import Event
from server.core.ids import is_id, new_id
from server.services.notifier import EventNotifier
from server.services.previews import PreviewHub, PreviewKind
from server.store.ports import SessionStore

__all__ = ["FollowItem", "Heartbeat", "LogFollower", "Transient"]

READ_BATCH = 500
"""Events read per store round trip while catching up."""


@dataclass(frozen=True)
class Transient:
    """A stream-only event (a preview, `session.deleted`): never stored, so never replayed."""

    fields: dict[str, JsonValue]


@dataclass(frozen=True)
class Heartbeat:
    """Nothing happened for a while; the connection is still alive."""


FollowItem = Event | Transient | Heartbeat


class LogFollower:
    """Opens follows of session logs (one per stream connection)."""

    def __init__(self, store: SessionStore, notifier: EventNotifier, previews: PreviewHub) -> None:
        self._store = store
        self._notifier = notifier
        self._previews = previews

    async def start(self, session_id: str, after: str | None) -> str | None:
        """Where a follow starts: after `after`, or (None) after the newest event now, as a hosted stream does.

        Raises `NotFoundError` for an unknown session or cursor, `InvalidRequestError` for a malformed one:
        called before a stream starts, so its client gets a plain error."""
        if after is not None and not is_id(after, "sevt"):
            raise InvalidRequestError(
                f"{after!r} is not an event id: Last-Event-ID (or after=) takes the id (sevt_...) of one of the "
                "session's events"
            )
        _, state = await in_thread(self._store.read_page, session_id, after, 0)
        if after is not None or state.event_count == 0:
            return after
        newest = await in_thread(self._store.read_events, session_id, state.event_count - 1, 1)
        return newest[-1].id if newest else None

    async def follow(
        self,
        session_id: str,
        after: str | None,
        previews: frozenset[PreviewKind],
        heartbeat_s: float,
    ) -> AsyncGenerator[FollowItem, None]:
        """The events after `after` (all, when None), then the new ones, until the session is deleted.

        Call `start` first for the cursor. Previews are subscribed to when the iteration begins."""
        with self._previews.subscribe(session_id, previews) as preview_stream:
            follow = _Follow(self._store, self._notifier, session_id, after, preview_stream)
            async for item in follow.items(heartbeat_s):
                yield item


@dataclass
class _Follow:
    store: SessionStore
    notifier: EventNotifier
    session_id: str
    cursor: str | None
    previews: MemoryObjectReceiveStream[dict[str, JsonValue]]
    shown: set[str] = field(default_factory=set)  # ids of stored messages handed out: their late previews go
    held: list[dict[str, JsonValue]] = field(default_factory=list)

    async def items(self, heartbeat_s: float) -> AsyncIterator[FollowItem]:
        caught_up = False
        while True:
            signal = self.notifier.arm(self.session_id)  # armed before the read: no append goes unnoticed
            if caught_up:
                for preview in self._drain():
                    yield preview
            try:
                events, _ = await in_thread(self.store.read_page, self.session_id, self.cursor, READ_BATCH)
            except NotFoundError:  # the session (and its log) is gone
                yield Transient({"id": new_id("sevt"), "type": "session.deleted", "processed_at": now_rfc3339()})
                return
            for event in events:
                if event.type in ("agent.message", "agent.thinking"):
                    self.shown.add(event.id)
                yield event
            if events:
                self.cursor = events[-1].id
            caught_up = len(events) < READ_BATCH
            if not caught_up:
                continue
            while not signal.is_set():  # previews alone need no store read
                if not await self._wait(signal, heartbeat_s):
                    yield Heartbeat()
                for preview in self._drain():
                    yield preview

    def _drain(self) -> list[Transient]:
        """The previews received so far, minus those of messages already handed out."""
        while True:
            try:
                self.held.append(self.previews.receive_nowait())
            except anyio.WouldBlock:
                break
        drained, self.held = self.held, []
        return [Transient(p) for p in drained if _previewed_id(p) not in self.shown]

    async def _wait(self, signal: anyio.Event, timeout_s: float) -> bool:
        """Waits for an append or a preview; False if `timeout_s` passed with neither."""
        if self.held:
            return True
        with anyio.move_on_after(timeout_s) as timer:
            async with anyio.create_task_group() as waiting:

                async def appended() -> None:
                    await signal.wait()
                    waiting.cancel_scope.cancel()

                async def previewed() -> None:
                    self.held.append(await self.previews.receive())
                    waiting.cancel_scope.cancel()

                waiting.start_soon(appended)
                waiting.start_soon(previewed)
        return not timer.cancelled_caught


def _previewed_id(preview: dict[str, JsonValue]) -> object:
    event = preview.get("event")
    return event.get("id") if isinstance(event, dict) else preview.get("event_id")
