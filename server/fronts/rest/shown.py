"""Events as the Managed Agents API shows them: every field the API declares for the type is present.

The log stores only the fields an event was written with (`stored_fields`); the API's readers (the `anthropic`
SDK's types) expect each declared field, null where there is nothing (`stop_details`, `budget`, ...). Shared by
every route that returns events (the list, the stream). `session.updated` stays as stored: which fields it carries
says what changed.
"""

from __future__ import annotations

from typing import Any

from pydantic_core import to_jsonable_python

from server.core.event_bodies import BODY_TYPES
from server.core.events import Event

__all__ = ["shown_event"]


def shown_event(event: Event) -> dict[str, Any]:
    """The stored event, with each field its type declares and it was stored without, at its default."""
    shown: dict[str, Any] = event.model_dump(mode="json")
    model = BODY_TYPES.get(event.type)
    if model is None or event.type == "session.updated":  # unknown: as stored; an update: only what changed
        return shown
    for name, declared in model.model_fields.items():
        if name not in shown:
            shown[name] = to_jsonable_python(declared.get_default(call_default_factory=True))
    return shown
