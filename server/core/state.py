"""A session's state, derived by folding its events in order.

The event log is the truth. The store keeps the result of this fold beside
each session as a cache (updated in the same transaction as the append), and
`fold` over the whole log must always give the same answer: a test checks it.
"""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import BaseModel, Field

from server.core.events import (
    Event,
    SessionStatusIdle,
    SessionStatusRunning,
    SessionStatusTerminated,
    SpanModelRequestEnd,
    StopReason,
    Usage,
)
from server.core.sessions import SessionStatus

__all__ = ["SessionState", "fold"]


class SessionState(BaseModel):
    """Everything about a session that events change."""

    status: SessionStatus = "idle"
    stop_reason: StopReason | None = None
    usage: Usage = Field(default_factory=Usage)
    event_count: int = 0
    last_event_at: str | None = None

    def apply(self, event: Event) -> SessionState:
        """The state after `event`; events that change nothing here still count."""
        changes: dict[str, object] = {"event_count": self.event_count + 1, "last_event_at": event.processed_at}
        if event.type in _STATUS_TYPES and self.status != "terminated":
            changes.update(_status_changes(event))
        elif event.type == "span.model_request_end":
            match event.body:
                case SpanModelRequestEnd(model_usage=usage) if usage is not None:
                    changes["usage"] = self.usage.plus(usage)
                case _:
                    pass
        return self.model_copy(update=changes)


def fold(events: Iterable[Event], start: SessionState | None = None) -> SessionState:
    """Folds events, oldest first, onto `start` (a fresh session by default)."""
    state = start or SessionState()
    for event in events:
        state = state.apply(event)
    return state


_STATUS_TYPES = frozenset({"session.status_running", "session.status_idle", "session.status_terminated"})
"""`session.status_rescheduled` is readable but changes nothing: this server never emits it."""


def _status_changes(event: Event) -> dict[str, object]:
    """Status events set the status; only idle carries a stop reason (one that does not read is none).

    Checked on `type` first, so the events that change nothing here are never parsed."""
    match event.body:
        case SessionStatusIdle(stop_reason=stop_reason):
            return {"status": "idle", "stop_reason": stop_reason}
        case SessionStatusRunning():
            return {"status": "running", "stop_reason": None}
        case SessionStatusTerminated():
            return {"status": "terminated", "stop_reason": None}
        case _:  # an idle event whose stop reason does not read
            return {"status": "idle", "stop_reason": None}
