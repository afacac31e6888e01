"""Stream-only previews of what the model is saying, fanned out to the stream connections that asked for them.

The agent loop calls `started` and `text` (the brain's `Previews` port) while a model turn streams; each
connection that subscribed to the session gets the previews of the kinds it asked for, as the Managed Agents
API shows them (`event_start`, `event_delta`). Nothing here is stored or replayed.

A connection's buffer is bounded and a full one drops previews: the model never waits for a client, and the
stored `agent.message` that follows carries the whole text anyway.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Literal

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from pydantic import JsonValue

__all__ = ["PREVIEW_BUFFER", "PreviewHub", "PreviewKind"]

PreviewKind = Literal["agent.message", "agent.thinking"]
PREVIEW_BUFFER = 512
"""Previews a connection may fall behind by before its new ones are dropped: a few seconds of fast streaming."""


@dataclass(frozen=True)
class _Subscriber:
    kinds: frozenset[PreviewKind]
    send: MemoryObjectSendStream[dict[str, JsonValue]]


class PreviewHub:
    """Satisfies the brain's `Previews` port; the event stream service subscribes connections to it."""

    def __init__(self) -> None:
        self._subscribers: dict[str, list[_Subscriber]] = {}

    @contextmanager
    def subscribe(
        self, session_id: str, kinds: frozenset[PreviewKind], buffer: int = PREVIEW_BUFFER
    ) -> Iterator[MemoryObjectReceiveStream[dict[str, JsonValue]]]:
        """The session's previews of `kinds`, until the block ends."""
        send, receive = anyio.create_memory_object_stream[dict[str, JsonValue]](buffer)
        subscriber = _Subscriber(kinds, send)
        if kinds:  # a connection that asked for none costs the model nothing
            self._subscribers.setdefault(session_id, []).append(subscriber)
        try:
            with send, receive:
                yield receive
        finally:
            listed = self._subscribers.get(session_id, [])
            if subscriber in listed:
                listed.remove(subscriber)
            if not listed:
                self._subscribers.pop(session_id, None)

    def started(self, session_id: str, event_id: str, event_type: PreviewKind) -> None:
        self._publish(session_id, event_type, {"type": "event_start", "event": {"type": event_type, "id": event_id}})

    def text(self, session_id: str, event_id: str, text: str) -> None:
        delta: dict[str, JsonValue] = {"type": "content_delta", "index": 0, "content": {"type": "text", "text": text}}
        self._publish(session_id, "agent.message", {"type": "event_delta", "event_id": event_id, "delta": delta})

    def _publish(self, session_id: str, kind: PreviewKind, preview: dict[str, JsonValue]) -> None:
        for subscriber in self._subscribers.get(session_id, ()):
            if kind not in subscriber.kinds:
                continue
            # A client that falls behind loses previews, never the model's time.
            with suppress(anyio.WouldBlock, anyio.BrokenResourceError, anyio.ClosedResourceError):
                subscriber.send.send_nowait(preview)
