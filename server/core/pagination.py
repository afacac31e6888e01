"""Cursor pagination: a cursor is the last id of the previous page (ids sort by creation time)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, WithJsonSchema

from server.core.errors import InvalidRequestError
from server.core.ids import IdPrefix, is_id

__all__ = ["NEXT_CURSOR", "PUBLISHED_AS_OBJECTS", "Listing", "check_cursor", "page_cursor"]

NEXT_CURSOR = "Pass as `cursor` for the next page; null on the last one."

PUBLISHED_AS_OBJECTS = WithJsonSchema({"items": {"additionalProperties": True, "type": "object"}, "type": "array"})
"""A page's items are published as plain objects: a typed item schema would make clients that check results
(jsonschema, per item) spend ~10x longer on a page than the server. The items themselves stay typed."""


def _next_cursor_first(schema: dict[str, Any]) -> None:
    schema["required"] = sorted(schema["required"], key=lambda name: name != "next_cursor")


class Listing(BaseModel):
    """A page of a list, as every front publishes it: the items, then `next_cursor` (required first in the
    schema, as it was published before the items moved in here)."""

    model_config = ConfigDict(json_schema_extra=_next_cursor_first)


def check_cursor(cursor: str | None, prefix: IdPrefix) -> str | None:
    """Returns the cursor if it is one this server made; refuses anything else."""
    if cursor is not None and not is_id(cursor, prefix):
        raise InvalidRequestError(f"cursor {cursor!r} is not one this server made; pass a next_cursor back unchanged")
    return cursor


def page_cursor(ids: list[str], limit: int) -> str | None:
    """The next cursor for a page fetched with `limit + 1` rows; None on the last page."""
    return ids[limit - 1] if len(ids) > limit else None
