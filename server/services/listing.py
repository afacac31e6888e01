"""Pages the way the Managed Agents API turns them: opaque cursors bound to their order, both directions, and
time bounds on the store's millisecond timestamps.

A cursor holds the order it was made with, whether it walks back (a `prev_page`) and its anchor (the id or seq
of the page's edge item). It is base64 of that, not a secret: a client cannot usefully forge one, but one made
for another order, or no cursor at all, is refused with a message that says so.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Generic, Literal, TypeVar

from server.core.errors import InvalidRequestError
from server.store.ports import TimeBounds

__all__ = ["CURSOR_PREFIX", "Order", "Page", "PageCursor", "TimeFilter", "Walk", "time_bounds"]

Order = Literal["asc", "desc"]
CURSOR_PREFIX = "page_"
T = TypeVar("T")


@dataclass(frozen=True)
class PageCursor:
    order: Order
    backward: bool
    anchor: str

    def encode(self) -> str:
        raw = json.dumps([self.order, self.backward, self.anchor], separators=(",", ":")).encode()
        return CURSOR_PREFIX + base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, page: str | None, order: Order) -> PageCursor | None:
        """The cursor a `page` parameter holds; refused if this server did not make it, or made it for another
        order (a cursor's position only means something in the order it was made with)."""
        if page is None:
            return None
        cursor = _parsed(page)
        if cursor is None:
            raise InvalidRequestError(
                f"page {page!r} is not a cursor this server made; pass a next_page or prev_page back unchanged"
            )
        if cursor.order != order:
            raise InvalidRequestError(
                f"page {page!r} was made with order={cursor.order!r}, not {order!r}; list with the same order, "
                "or start again without page"
            )
        return cursor


def _parsed(page: str) -> PageCursor | None:
    if not page.startswith(CURSOR_PREFIX):
        return None
    body = page.removeprefix(CURSOR_PREFIX)
    try:
        fields = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    except (binascii.Error, ValueError):
        return None
    match fields:
        case ["asc" | "desc" as order, bool(backward), str(anchor)]:
            return PageCursor(order, backward, anchor)
        case _:
            return None


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_page: str | None
    prev_page: str | None


@dataclass(frozen=True)
class Walk:
    """How the store is read for one page: from `anchor` (exclusive), ascending or not. A `prev_page` cursor
    walks against the list's order from the page's first item, and the page is turned round after."""

    order: Order
    anchor: str | None
    backward: bool

    @classmethod
    def start(cls, page: str | None, order: Order) -> Walk:
        cursor = PageCursor.decode(page, order)
        if cursor is None:
            return cls(order, None, backward=False)
        return cls(order, cursor.anchor, cursor.backward)

    @property
    def ascending(self) -> bool:
        return (self.order == "asc") != self.backward

    def page(self, read: list[T], limit: int, key: Callable[[T], str]) -> Page[T]:
        """The page from `limit + 1` items read, with its cursors (None where nothing lies that way)."""
        items = read[:limit]
        more = len(read) > limit
        if self.backward:
            items.reverse()
        if not items:
            return Page(items, None, None)
        has_next = more or self.backward  # walking back, the page it came from lies ahead
        has_prev = more if self.backward else self.anchor is not None
        next_page = PageCursor(self.order, False, key(items[-1])).encode() if has_next else None
        prev_page = PageCursor(self.order, True, key(items[0])).encode() if has_prev else None
        return Page(items, next_page, prev_page)


@dataclass(frozen=True)
class TimeFilter:
    """`created_at[gt]=...` and its kin, as given (any offset; a naive time is UTC)."""

    gt: datetime | None = None
    gte: datetime | None = None
    lt: datetime | None = None
    lte: datetime | None = None


def time_bounds(given: TimeFilter) -> TimeBounds:
    """The bounds as the store compares them: its times are whole milliseconds, so a bound with finer digits
    is rounded the way that keeps the comparison exact (`> t` is `> floor(t)`, `>= t` is `>= ceil(t)`)."""
    return TimeBounds(
        gt=_stamp(given.gt, up=False),
        gte=_stamp(given.gte, up=True),
        lt=_stamp(given.lt, up=True),
        lte=_stamp(given.lte, up=False),
    )


def _stamp(value: datetime | None, *, up: bool) -> str | None:
    if value is None:
        return None
    moment = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    micros = moment.microsecond
    millis = math.ceil(micros / 1000) if up else micros // 1000
    moment = moment.replace(microsecond=0) + timedelta(milliseconds=millis)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
