"""Page cursors (bound to their order, both directions) and time bounds on millisecond timestamps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from server.core.errors import InvalidRequestError
from server.services.listing import PageCursor, TimeFilter, Walk, time_bounds


def test_a_cursor_reads_back_only_in_its_own_order() -> None:
    token = PageCursor("desc", True, "sesn_01JD7Y3Q4K2W8T6X0V5N9R1M3P").encode()
    assert token.startswith("page_")
    assert PageCursor.decode(token, "desc") == PageCursor("desc", True, "sesn_01JD7Y3Q4K2W8T6X0V5N9R1M3P")
    with pytest.raises(InvalidRequestError, match="order='desc'"):
        PageCursor.decode(token, "asc")


@pytest.mark.parametrize("page", ["garbage", "page_", "page_!!!", "page_WyJ1cCJd", "sesn_01JD7Y3Q4K2W8T6X0V5N9R1M3P"])
def test_a_cursor_this_server_did_not_make_is_refused(page: str) -> None:
    with pytest.raises(InvalidRequestError, match="not a cursor this server made"):
        PageCursor.decode(page, "asc")


def test_walking_back_turns_the_page_round_and_points_both_ways() -> None:
    forward = Walk.start(None, "desc")
    first = forward.page(["e", "d", "c"], 2, str)
    assert (first.items, first.prev_page) == (["e", "d"], None)
    back = Walk.start(PageCursor("desc", True, "c").encode(), "desc")
    assert back.ascending  # a desc list walked back reads ascending from the anchor
    page = back.page(["d", "e"], 2, str)  # as the store returns them: nearest the anchor first
    assert page.items == ["e", "d"]
    assert page.prev_page is None
    assert page.next_page is not None
    assert PageCursor.decode(page.next_page, "desc") == PageCursor("desc", False, "d")


def test_time_bounds_round_so_that_millisecond_stamps_compare_exactly() -> None:
    moment = datetime(2026, 12, 2, 10, 0, 0, 123_456, tzinfo=UTC)
    bounds = time_bounds(TimeFilter(gt=moment, gte=moment, lt=moment, lte=moment))
    assert bounds.gt == "2026-12-02T10:00:00.123Z"  # > .123456 is > .123 for ms stamps
    assert bounds.gte == "2026-12-02T10:00:00.124Z"
    assert bounds.lt == "2026-12-02T10:00:00.124Z"
    assert bounds.lte == "2026-12-02T10:00:00.123Z"
    paris = datetime(2026, 12, 2, 11, 0, 0, tzinfo=timezone(timedelta(hours=1)))
    assert time_bounds(TimeFilter(gte=paris)).gte == "2026-12-02T10:00:00.000Z"
    assert time_bounds(TimeFilter(lt=datetime(2026, 12, 2, 10, 0, 0, 999_999))).lt == "2026-12-02T10:00:01.000Z"
