"""Cursor pagination: a cursor is the last id of the previous page (ids sort by creation time)."""

from __future__ import annotations

from server.core.errors import InvalidRequestError
from server.core.ids import IdPrefix, is_id

__all__ = ["check_cursor", "page_cursor"]


def check_cursor(cursor: str | None, prefix: IdPrefix) -> str | None:
    """Returns the cursor if it is one this server made; refuses anything else."""
    if cursor is not None and not is_id(cursor, prefix):
        raise InvalidRequestError(f"cursor {cursor!r} is not one this server made; pass a next_cursor back unchanged")
    return cursor


def page_cursor(ids: list[str], limit: int) -> str | None:
    """The next cursor for a page fetched with `limit + 1` rows; None on the last page."""
    return ids[limit - 1] if len(ids) > limit else None
