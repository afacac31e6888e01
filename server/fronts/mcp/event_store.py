"""Resumable `/mcp` streams: the messages a Streamable HTTP request's SSE stream carried, kept in memory so a
client whose connection dropped (during a long `send_message`, say) reconnects with `Last-Event-ID` and gets
the rest, the result included, instead of an error.

Bounded: the newest `MAX_EVENTS` messages of all streams are kept; a client that comes back after older ones
were dropped gets nothing replayed (and calls again). Event ids are random, so one client cannot guess its way
into another's stream. In memory, as the streams themselves are: a restarted server has neither.
"""

from __future__ import annotations

import secrets
from collections import OrderedDict

from mcp.server.streamable_http import EventCallback, EventId, EventMessage, EventStore, StreamId
from mcp.types import JSONRPCMessage
from typing_extensions import override

__all__ = ["MAX_EVENTS", "MemoryEventStore"]

MAX_EVENTS = 4096
"""Several minutes of progress notifications and results of a busy server: a dropped connection comes back
within seconds (the client retries after a second), so that is plenty."""


class MemoryEventStore(EventStore):
    def __init__(self, max_events: int = MAX_EVENTS) -> None:
        self._max_events = max_events
        self._events: OrderedDict[EventId, tuple[StreamId, JSONRPCMessage | None]] = OrderedDict()

    @override
    async def store_event(self, stream_id: StreamId, message: JSONRPCMessage | None) -> EventId:
        event_id = secrets.token_urlsafe(16)
        self._events[event_id] = (stream_id, message)
        while len(self._events) > self._max_events:
            self._events.popitem(last=False)
        return event_id

    @override
    async def replay_events_after(self, last_event_id: EventId, send_callback: EventCallback) -> StreamId | None:
        """Sends the stream's messages stored after `last_event_id`; None if that id is unknown (or dropped)."""
        stored = self._events.get(last_event_id)
        if stored is None:
            return None
        stream_id = stored[0]
        after = False
        for event_id, (other_stream, message) in list(self._events.items()):
            if after and other_stream == stream_id and message is not None:
                await send_callback(EventMessage(message, event_id))
            after = after or event_id == last_event_id
        return stream_id
