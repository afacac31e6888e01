"""Prefixed, time-sortable unique ids (`sesn_01J…`, `sevt_01J…`).

The suffix is a ULID: 48 bits of milliseconds then 80 random bits, in
Crockford base32, so ids sort by creation time and are safe to expose.
Within one process the generator is monotonic: two ids made in the same
millisecond still sort in the order they were made.
"""

from __future__ import annotations

import re
import secrets
import threading
import time
from typing import Annotated, Literal

from pydantic import Field

__all__ = [
    "AgentId",
    "EnvironmentId",
    "EventId",
    "FileId",
    "IdPrefix",
    "SessionId",
    "SkillId",
    "VaultId",
    "is_id",
    "new_id",
]

IdPrefix = Literal["agent", "env", "sesn", "sevt", "sesrsc", "file", "skill"]

# Ids as arguments, defined once for every front and request model: a well-formed id that names nothing is a
# NotFoundError from the service, so these only bound the length (and vault ids, their shape).
SessionId = Annotated[str, Field(min_length=1, max_length=64, description="A session id (sesn_...).")]
AgentId = Annotated[str, Field(min_length=1, max_length=64, description="An agent id (agent_...).")]
EnvironmentId = Annotated[str, Field(min_length=1, max_length=64, description="An environment id (env_...).")]
EventId = Annotated[str, Field(min_length=1, max_length=64, description="The event id (sevt_...) waiting for you.")]
VaultId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^vlt_[0-9a-z]+$")]
SkillId = Annotated[str, Field(min_length=1, max_length=64, description="A skill id (skill_...) or name.")]
FileId = Annotated[str, Field(min_length=1, max_length=64, description="A file id (file_...).")]

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_RANDOM_BITS = 80
_lock = threading.Lock()
_last = (0, 0)


def _next_value() -> int:
    global _last
    now_ms = time.time_ns() // 1_000_000
    with _lock:
        last_ms, last_rand = _last
        if now_ms <= last_ms:
            # Same (or earlier, if the clock stepped back) millisecond: count up.
            now_ms, rand = last_ms, last_rand + 1
        else:
            rand = secrets.randbits(_RANDOM_BITS - 1)  # headroom so +1 never overflows
        _last = (now_ms, rand)
    return (now_ms << _RANDOM_BITS) | rand


def _encode(value: int) -> str:
    chars = []
    for _ in range(26):
        value, digit = divmod(value, 32)
        chars.append(_ALPHABET[digit])
    return "".join(reversed(chars))


def new_id(prefix: IdPrefix) -> str:
    """Returns a new id such as `sesn_01JD7Y3Q4K2W8T6X0V5N9R1M3P`."""
    return f"{prefix}_{_encode(_next_value())}"


_ID_PATTERN = re.compile(r"^[a-z]+_[0-9A-HJKMNP-TV-Z]{26}$")


def is_id(value: str, prefix: IdPrefix) -> bool:
    """Whether `value` is shaped like an id with this prefix."""
    return value.startswith(prefix + "_") and bool(_ID_PATTERN.match(value))
