"""What the providers share about HTTP failures: reading a `retry-after` header.

Each provider translates its own SDK's errors into `ModelError`; how long the
endpoint asked us to wait is read the same way for all of them.
"""

from __future__ import annotations

import email.utils
import math
from datetime import UTC, datetime

__all__ = ["retry_after_s"]


def retry_after_s(value: str | None) -> float | None:
    """`retry-after` as seconds: a number, or an HTTP date (RFC 9110); None when absent or unreadable."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            return None
        seconds = (when - datetime.now(UTC)).total_seconds()
    return max(0.0, seconds) if math.isfinite(seconds) else None
