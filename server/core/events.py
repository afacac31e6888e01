"""Events: the append-only log that is the truth about a session.

Each event is `{id, seq, type, processed_at, ...fields}` with the types and fields of the Managed Agents API.
`seq` is the event's 1-based position in its session's log; `id` is `sevt_` + a ULID.

Two layers:

- An event *body* (`EventBody`) is one frozen, `extra="forbid"` model per type, discriminated on `type`
  (`server/core/event_bodies.py`). Code that writes events builds bodies; code that reads them `match`es on
  `event.body`. A body is stored as its fields that were set, in declaration order, without `type`
  (`stored_fields`): optional fields that were not given stay absent, as they always have.
- An `Event` is a stored event: the envelope (id, seq, type, processed_at) and the stored fields as they are,
  which is what clients read. Its typed `body` is parsed on first use, so a page that is only shown to a client
  costs no validation.

Rows no model describes (a type this version does not know, or fields it does not expect: written by a newer
version, or by an older one before a field was dropped) are never a reason to fail a read. Clients get them as
stored; `body` drops the fields it does not know and, if the rest still does not fit (or the type is unknown),
is an `UnknownEvent` that readers skip.
"""

from __future__ import annotations

from typing import Any, Literal, cast, get_args

from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError, field_validator
from typing_extensions import override

from server.core.event_bodies import (
    BODY_TYPES,
    AgentCustomToolUse,
    AgentMcpToolResult,
    AgentMcpToolUse,
    AgentMessage,
    AgentThinking,
    AgentThreadContextCompacted,
    AgentToolResult,
    AgentToolUse,
    EventBody,
    ModelUsage,
    PermissionEvaluation,
    RetryStatus,
    SessionError,
    SessionErrorDetail,
    SessionStatusIdle,
    SessionStatusRescheduled,
    SessionStatusRunning,
    SessionStatusTerminated,
    SessionUpdated,
    SessionUsage,
    SpanModelRequestEnd,
    SpanModelRequestStart,
    StopReason,
    UnknownEvent,
    UserCustomToolResult,
    UserInterrupt,
    UserMessage,
    UserToolConfirmation,
    preassigned_id,
    stored_fields,
    with_event_id,
)

__all__ = [
    "EVENT_TYPES",
    "AgentCustomToolUse",
    "AgentMcpToolResult",
    "AgentMcpToolUse",
    "AgentMessage",
    "AgentThinking",
    "AgentThreadContextCompacted",
    "AgentToolResult",
    "AgentToolUse",
    "Event",
    "EventBody",
    "EventType",
    "ModelUsage",
    "PermissionEvaluation",
    "RetryStatus",
    "SessionError",
    "SessionErrorDetail",
    "SessionStatusIdle",
    "SessionStatusRescheduled",
    "SessionStatusRunning",
    "SessionStatusTerminated",
    "SessionUpdated",
    "SessionUsage",
    "SpanModelRequestEnd",
    "SpanModelRequestStart",
    "StopReason",
    "UnknownEvent",
    "Usage",
    "UserCustomToolResult",
    "UserInterrupt",
    "UserMessage",
    "UserToolConfirmation",
    "parse_body",
    "preassigned_id",
    "raw_event",
    "stored_fields",
    "with_event_id",
]

EventType = Literal[
    "user.message",
    "user.interrupt",
    "user.tool_confirmation",
    "user.custom_tool_result",
    "agent.message",
    "agent.thinking",
    "agent.tool_use",
    "agent.tool_result",
    "agent.mcp_tool_use",
    "agent.mcp_tool_result",
    "agent.custom_tool_use",
    "agent.thread_context_compacted",
    "session.status_running",
    "session.status_idle",
    "session.status_rescheduled",
    "session.status_terminated",
    "session.error",
    "session.usage",
    "session.updated",
    "span.model_request_start",
    "span.model_request_end",
]
EVENT_TYPES: frozenset[str] = frozenset(get_args(EventType))


class Event(BaseModel):
    """One stored event as tools return it: the envelope, then the body's fields as stored."""

    model_config = ConfigDict(extra="allow", frozen=True)

    id: str = Field(description="sevt_ id; pass it as `after` to read what came next.")
    seq: int = Field(description="1-based position in the session's log.")
    type: str = Field(description="One of the Managed Agents event types.")
    processed_at: str | None
    # A slot, not a pydantic PrivateAttr: private attributes double the cost of validating each row read.
    __slots__ = ("_parsed_body",)

    @classmethod
    def stored(cls, body: EventBody, *, event_id: str, seq: int, processed_at: str | None) -> Event:
        """The event a body becomes once appended (its body known, so never parsed again)."""
        event = cls.model_validate(
            {"id": event_id, "seq": seq, "type": body.type, "processed_at": processed_at, **stored_fields(body)}
        )
        object.__setattr__(event, "_parsed_body", body)
        return event

    @property
    def body(self) -> EventBody:
        """The typed body (parsed once, on first use)."""
        try:
            return cast(EventBody, object.__getattribute__(self, "_parsed_body"))
        except AttributeError:
            body = parse_body(self.type, self.payload(), lenient=True)
            object.__setattr__(self, "_parsed_body", body)
            return body

    @override
    def __eq__(self, other: object) -> bool:
        """Equal when stored the same (whether `body` was parsed yet does not count)."""
        if not isinstance(other, Event):
            return NotImplemented
        return self.model_dump() == other.model_dump()

    __hash__ = None  # type: ignore[assignment]  # the stored fields are dicts and lists

    def payload(self) -> dict[str, JsonValue]:
        """The type-specific fields, as stored."""
        return dict(self.model_extra or {})

    def with_payload(self, payload: dict[str, JsonValue]) -> Event:
        """The same event with other stored fields (e.g. long strings cut for display)."""
        return Event.model_validate(
            {"id": self.id, "seq": self.seq, "type": self.type, "processed_at": self.processed_at, **payload}
        )


def raw_event(event_type: str, fields: dict[str, Any]) -> EventBody:
    """A body from fields as a stored row holds them (imports, benchmarks, tests): read leniently, as the log is."""
    return parse_body(event_type, fields, lenient=True)


def parse_body(event_type: str, payload: dict[str, Any], *, lenient: bool = False) -> EventBody:
    """The body of a stored event.

    Strict (the default) raises `ValidationError` on an unknown type or fields that do not fit. Lenient (reading
    the log) never raises: unknown fields are dropped, and what still does not fit is an `UnknownEvent`.
    """
    model = BODY_TYPES.get(event_type)
    if model is None:
        if lenient:
            return UnknownEvent(type=event_type, fields=payload)
        raise ValueError(f"unknown event type {event_type!r}")
    try:
        return cast(EventBody, model.model_validate(payload))
    except ValidationError:
        if not lenient:
            raise
    known = {key: value for key, value in payload.items() if key in model.model_fields}
    try:
        return cast(EventBody, model.model_validate(known))
    except ValidationError:
        return UnknownEvent(type=event_type, fields=payload)


class Usage(BaseModel):
    """Model tokens a session has used so far."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_input_tokens: int = 0
    cache_creation_input_tokens: int = 0

    @field_validator("*", mode="before")
    @classmethod
    def _null_is_zero(cls, value: object) -> object:
        """The Messages API reports cache counts as null when no cache was involved."""
        return 0 if value is None else value

    def plus(self, other: Usage | ModelUsage) -> Usage:
        return Usage(**{name: getattr(self, name) + (getattr(other, name) or 0) for name in Usage.model_fields})
