"""A session's state, derived by folding its events in order.

The event log is the truth. The store keeps the result of this fold beside
each session as a cache (updated in the same transaction as the append), and
`fold` over the whole log must always give the same answer: a test checks it.
"""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import BaseModel, Field, ValidationError

from server.core.events import Event, StopReason, Usage
from server.core.sessions import SessionStatus

__all__ = ["SessionState", "fold"]

_STATUS_BY_EVENT: dict[str, SessionStatus] = {
    "session.status_running": "running",
    "session.status_idle": "idle",
    "session.status_terminated": "terminated",
}


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
        status = _STATUS_BY_EVENT.get(event.type)
        if status is not None and self.status != "terminated":
            changes["status"] = status
            changes["stop_reason"] = _stop_reason(event) if status == "idle" else None
        if event.type == "span.model_request_end":
            changes["usage"] = self.usage.plus(_model_usage(event))
        return self.model_copy(update=changes)


def fold(events: Iterable[Event], start: SessionState | None = None) -> SessionState:
    """Folds events, oldest first, onto `start` (a fresh session by default)."""
    state = start or SessionState()
    for event in events:
        state = state.apply(event)
    return state


def _stop_reason(event: Event) -> StopReason | None:
    raw = event.payload().get("stop_reason")
    try:
        return StopReason.model_validate(raw) if raw is not None else None
    except ValidationError:
        return None


def _model_usage(event: Event) -> Usage:
    raw = event.payload().get("model_usage")
    try:
        return Usage.model_validate(raw) if isinstance(raw, dict) else Usage()
    except ValidationError:
        return Usage()
