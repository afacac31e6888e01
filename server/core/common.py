"""Shapes and limits shared by every object: timestamps, metadata, pages."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

__all__ = [
    "MAX_METADATA_PAIRS",
    "PLAIN_TEXT",
    "Metadata",
    "MetadataPatch",
    "Strict",
    "now_rfc3339",
    "refuse_control_characters",
]

MAX_METADATA_PAIRS = 16
MAX_METADATA_KEY_CHARS = 64
MAX_METADATA_VALUE_CHARS = 512


class Strict(BaseModel):
    """Input models refuse fields they do not know, so a typo is an error, not a no-op; and they do not coerce
    (strict mode): `true` is not the number 1, `1` is not a boolean and `"5"` is not a number."""

    model_config = ConfigDict(extra="forbid", strict=True)


_CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")


def refuse_control_characters(value: str) -> str:
    """Names, titles and metadata are shown in terminals and logs: NUL and control characters (a terminal
    escape, say) are refused; tab and newline are fine."""
    found = _CONTROL_CHARACTERS.search(value)
    if found is not None:
        raise ValueError(
            f"must not contain control characters (found {found.group()!r} at position {found.start()}); "
            "only tab and newline are allowed"
        )
    return value


PLAIN_TEXT = AfterValidator(refuse_control_characters)
"""Annotate a `str` with this to refuse control characters (see `refuse_control_characters`)."""


def now_rfc3339() -> str:
    """The current UTC time as RFC 3339 with milliseconds, e.g. `2026-11-21T10:00:00.123Z`."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


MetadataKey = Annotated[str, StringConstraints(min_length=1, max_length=MAX_METADATA_KEY_CHARS), PLAIN_TEXT]
MetadataValue = Annotated[str, StringConstraints(max_length=MAX_METADATA_VALUE_CHARS), PLAIN_TEXT]


def _at_most_16(value: dict[str, object]) -> dict[str, object]:
    if len(value) > MAX_METADATA_PAIRS:
        raise ValueError(f"metadata holds at most {MAX_METADATA_PAIRS} pairs, got {len(value)}")
    return value


Metadata = Annotated[
    dict[MetadataKey, MetadataValue],
    AfterValidator(_at_most_16),
    Field(description="Up to 16 string pairs for your own bookkeeping (keys ≤ 64 chars, values ≤ 512)."),
]
MetadataPatch = Annotated[
    dict[MetadataKey, MetadataValue | None],
    AfterValidator(_at_most_16),
    Field(description="Each key is a patch: a string sets it, null removes it, an omitted key is kept."),
]


def apply_metadata_patch(current: dict[str, str], patch: dict[str, str | None]) -> dict[str, str]:
    """Applies a metadata patch and checks the result still fits the limits."""
    merged = {**current}
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    _at_most_16(dict(merged))
    return merged
