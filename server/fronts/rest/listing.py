"""Query parameters of the lists that have an order, time bounds and this server's longer cursors."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import Field

from server.fronts.rest.common import PageQuery
from server.services.listing import TimeFilter

__all__ = ["CursorQuery"]

MAX_CURSOR_CHARS = 200


class CursorQuery(PageQuery):
    """`limit`, `page` (a `next_page` or `prev_page` given back) and `created_at[gt|gte|lt|lte]`."""

    page: Annotated[str | None, Field(max_length=MAX_CURSOR_CHARS)] = None
    created_at_gt: datetime | None = None
    created_at_gte: datetime | None = None
    created_at_lt: datetime | None = None
    created_at_lte: datetime | None = None

    def created_at(self) -> TimeFilter:
        return TimeFilter(self.created_at_gt, self.created_at_gte, self.created_at_lt, self.created_at_lte)
