"""Events: the append-only log that is the truth about a session.

Each event is `{id, seq, type, processed_at, ...fields}` with the types and
fields of the Managed Agents API. `seq` is the event's 1-based position in its
session's log; `id` is `sevt_` + a ULID. The fields beyond those four are kept
as the event's payload, so this module does not need to know every shape.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, JsonValue, field_validator

__all__ = ["EVENT_TYPES", "Event", "EventType", "NewEvent", "StopReason", "Usage"]

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
    """One event as tools return it; type-specific fields follow the four common ones."""

    model_config = ConfigDict(extra="allow")

    id: str = Field(description="sevt_ id; pass it as `after` to read what came next.")
    seq: int = Field(description="1-based position in the session's log.")
    type: EventType
    processed_at: str | None

    def payload(self) -> dict[str, JsonValue]:
        """The type-specific fields, as stored."""
        return dict(self.model_extra or {})


class StopReason(BaseModel):
    """Why an idle session stopped: end_turn, requires_action (+ event_ids), retries_exhausted, ..."""

    model_config = ConfigDict(extra="allow")

    type: str
    event_ids: list[str] | None = None


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

    def plus(self, other: Usage) -> Usage:
        return Usage(**{name: getattr(self, name) + getattr(other, name) for name in Usage.model_fields})


@dataclass(frozen=True)
class NewEvent:
    """An event to append: its type and type-specific fields."""

    type: EventType
    payload: dict[str, JsonValue]
