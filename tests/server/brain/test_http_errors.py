"""`retry-after` as both providers read it: seconds or an HTTP date, nothing when unreadable."""

from __future__ import annotations

import email.utils
from datetime import UTC, datetime, timedelta

import pytest

from server.brain.providers.http_errors import retry_after_s


@pytest.mark.parametrize(("value", "seconds"), [("3", 3.0), ("0.5", 0.5), ("-4", 0.0)])
def test_a_number_is_seconds_and_never_negative(value: str, seconds: float) -> None:
    assert retry_after_s(value) == seconds


@pytest.mark.parametrize("value", [None, "", "soon", "nan", "inf", "Wed, 21 Oct 2015 07:28:00"])
def test_an_absent_or_unreadable_value_is_none(value: str | None) -> None:
    assert retry_after_s(value) is None


def test_an_http_date_is_the_time_until_it() -> None:
    later = email.utils.format_datetime(datetime.now(UTC) + timedelta(hours=1), usegmt=True)
    seconds = retry_after_s(later)
    assert seconds is not None
    assert 3000 < seconds <= 3600


def test_a_date_in_the_past_means_now() -> None:
    assert retry_after_s("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
