"""Shapes and limits shared by every object: timestamps, metadata, pages."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

__all__ = [
    "MAX_METADATA_PAIRS",
    "Metadata",
    "MetadataPatch",
    "Strict",
    "now_rfc3339",
]

MAX_METADATA_PAIRS = 16
MAX_METADATA_KEY_CHARS = 64
MAX_METADATA_VALUE_CHARS = 512


class Strict(BaseModel):
    """Input models refuse fields they do not know, so a typo is an error, not a no-op."""

    model_config = ConfigDict(extra="forbid")


def now_rfc3339() -> str:
    """The current UTC time as RFC 3339 with milliseconds, e.g. `2026-11-21T10:00:00.123Z`."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


MetadataKey = Annotated[str, StringConstraints(min_length=1, max_length=MAX_METADATA_KEY_CHARS)]
MetadataValue = Annotated[str, StringConstraints(max_length=MAX_METADATA_VALUE_CHARS)]


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
