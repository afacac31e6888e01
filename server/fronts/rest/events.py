"""`/v1/sessions/{id}/events`: list a session's log (order, types, time bounds, cursor) and send it events.

A send takes several events, checks them all (the service's rules, the same as the MCP tools') before any is
recorded, and answers the recorded events. Events of the hosted API that this server does not have are refused
with a message that says so, never dropped.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, JsonValue, TypeAdapter, ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from server.core.events import EventType
from server.core.validation import describe_problems
from server.fronts.rest.common import page, path_id, runtime
from server.fronts.rest.listing import CursorQuery
from server.fronts.rest.shown import shown_event
from server.fronts.rest.wire import ApiError, RequestModel, endpoint, json_response, read_body, read_query
from server.services.sessions import EventQuery
from server.services.user_events import MAX_EVENTS_PER_SEND, UserEvent

__all__ = ["InitialEvents", "event_routes", "user_events"]

RawEvents = Annotated[list[dict[str, JsonValue]], Field(min_length=1, max_length=MAX_EVENTS_PER_SEND)]
InitialEvents = Annotated[list[dict[str, JsonValue]], Field(max_length=MAX_EVENTS_PER_SEND)]
UNSUPPORTED = {
    "user.define_outcome": "outcomes are not built here",
    "user.tool_result": "it answers self-hosted sandbox tools; this server runs its tools itself",
    "system.message": "send the instruction as a user.message, or put it in the agent's system prompt",
}
_USER_EVENTS: TypeAdapter[list[UserEvent]] = TypeAdapter(list[UserEvent])


def user_events(raw: list[dict[str, JsonValue]], where: str, only: str | None = None) -> list[UserEvent]:
    """The events as the service takes them; an event this server lacks (or, with `only`, another type) is a
    400 naming it."""
    for index, event in enumerate(raw):
        kind = event.get("type")
        if isinstance(kind, str) and kind in UNSUPPORTED:
            message = f"{where}[{index}]: this server does not support {kind!r} events ({UNSUPPORTED[kind]})"
            raise ApiError(400, "invalid_request_error", message)
        if only is not None and kind != only:
            raise ApiError(400, "invalid_request_error", f"{where}[{index}]: only {only!r} events are allowed here")
    try:
        return _USER_EVENTS.validate_python(raw)
    except ValidationError as exc:
        raise ApiError(400, "invalid_request_error", describe_problems(exc, f"invalid {where}")) from exc


class SendBody(RequestModel):
    events: RawEvents


class EventListQuery(CursorQuery):
    order: Literal["asc", "desc"] = "asc"
    types: Annotated[list[EventType], Field(max_length=50)] | None = None

    def query(self) -> EventQuery:
        return EventQuery(
            limit=self.limit,
            page=self.page,
            order=self.order,
            types=tuple(self.types or ()),
            created_at=self.created_at(),
        )


@endpoint
async def list_events(request: Request) -> Response:
    query = read_query(request, EventListQuery).query()
    listed = await runtime(request).sessions.list_events(path_id(request, "session_id"), query)
    return json_response(page([shown_event(e) for e in listed.items], listed.next_page))


@endpoint
async def send(request: Request) -> Response:
    body = await read_body(request, SendBody)
    events = user_events(body.events, "events")
    recorded = await runtime(request).inbox.send(path_id(request, "session_id"), events)
    return json_response({"data": [shown_event(e) for e in recorded]})


def event_routes() -> list[BaseRoute]:
    return [
        Route("/sessions/{session_id}/events", list_events, methods=["GET"]),
        Route("/sessions/{session_id}/events", send, methods=["POST"]),
    ]
