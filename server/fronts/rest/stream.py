"""`GET /v1/sessions/{id}/events/stream`: a session's events as Server-Sent Events, the way the `anthropic` SDK
reads them (current and 0.9x generations).

Framing: every message is `event: message` (a name both SDK generations read; the 0.9x ones drop names they do
not know) with one JSON event on its `data:` line; stored events also carry `id: <sevt_ id>`. Idle streams get
`event: ping` heartbeats. The response headers go out before any event: clients open the stream, then send.

A new stream starts after the newest event, as the hosted one does (a client that reads "until idle" must not
stop at an earlier turn's idle). Beyond the hosted API, which cannot replay: `Last-Event-ID: <sevt_ id>` (what
an SSE client sends when it reconnects) or `?after=<sevt_ id>` replays every event after that one first, so a
dropped stream loses nothing. `event_deltas[]=agent.message` (or `agent.thinking`) adds stream-only previews
while the model streams.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Literal

from pydantic import Field
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from server.core.ids import EventId
from server.fronts.rest.common import path_id, runtime
from server.fronts.rest.shown import shown_event
from server.fronts.rest.wire import QueryModel, endpoint, read_query
from server.services.follow import FollowItem, Heartbeat, Transient

__all__ = ["MIN_PING_S", "sse_message", "stream_routes"]

MIN_PING_S = 0.05
"""A floor under the configured heartbeat interval: a zero would make a stream nothing but pings."""
PING = b'event: ping\ndata: {"type": "ping"}\n\n'
HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}  # no proxy may hold events back


class StreamQuery(QueryModel):
    event_deltas: list[Literal["agent.message", "agent.thinking"]] = Field(default_factory=list)
    after: EventId | None = None


def sse_message(item: FollowItem) -> bytes:
    """One SSE message: stored events with their id (a reconnect's `Last-Event-ID`), the rest without."""
    if isinstance(item, Heartbeat):
        return PING
    if isinstance(item, Transient):
        return b"event: message\ndata: " + json.dumps(item.fields).encode() + b"\n\n"
    data = json.dumps(shown_event(item)).encode()
    return b"event: message\nid: " + item.id.encode() + b"\ndata: " + data + b"\n\n"


@endpoint
async def stream(request: Request) -> Response:
    query = read_query(request, StreamQuery)
    session_id = path_id(request, "session_id")
    opened = runtime(request)
    # A 404 or 400 answers before the stream starts.
    after = await opened.follower.start(session_id, request.headers.get("last-event-id") or query.after)
    follow = opened.follower.follow(
        session_id, after, frozenset(query.event_deltas), max(opened.config.stream_ping_s, MIN_PING_S)
    )

    async def body() -> AsyncIterator[bytes]:
        async with aclosing(follow) as items:  # ends the follow (and its preview subscription) on disconnect
            async for item in items:
                yield sse_message(item)

    return StreamingResponse(body(), media_type="text/event-stream", headers=HEADERS)


def stream_routes() -> list[BaseRoute]:
    return [Route("/sessions/{session_id}/events/stream", stream, methods=["GET"])]
