"""Events as the Managed Agents API shows them: every field the API declares for the type is present.

The log stores only the fields an event was written with (`stored_fields`); the API's readers (the `anthropic`
SDK's types) expect each declared field, null or empty where there is nothing. Shared by every route that returns
events (the list, the send, the stream).
"""

from __future__ import annotations

from pydantic import JsonValue

from server.core.events import Event

__all__ = ["ABSENT_AS_EMPTY", "shown_event"]

_THREAD: dict[str, JsonValue] = {"session_thread_id": None}
ABSENT_AS_EMPTY: dict[str, dict[str, JsonValue]] = {
    "user.interrupt": _THREAD,
    "user.tool_confirmation": {"deny_message": None, **_THREAD},
    "user.custom_tool_result": {"content": [], "is_error": None, **_THREAD},
    "agent.tool_use": {"evaluated_permission": None, "evaluation": None, **_THREAD},
    "agent.mcp_tool_use": {"evaluated_permission": None, "evaluation": None, **_THREAD},
    "agent.custom_tool_use": _THREAD,
    "agent.tool_result": {"content": [], "is_error": None},
    "agent.mcp_tool_result": {"content": [], "is_error": None},
    "session.status_idle": {"stop_details": None},
    "session.usage": {"budget": None},
    "span.model_request_end": {"model_request_start_id": None, "is_error": None, "model_usage": None},
}
"""Fields the API declares that the log leaves out when they are empty (the log keeps what was written).
`session.updated` is not here: which of its fields it carries says what changed."""


def shown_event(event: Event) -> dict[str, JsonValue]:
    """An event as the API shows it: as stored, with the declared fields it lacks as null or empty."""
    return {**ABSENT_AS_EMPTY.get(event.type, {}), **event.model_dump(mode="json")}
