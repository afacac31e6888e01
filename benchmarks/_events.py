"""Realistic event payloads for filling a log: the shapes of the Managed Agents API.

A turn is what an agent loop appends while it works: a model request span, an `agent.message`
(~200 characters of text), an `agent.tool_use` with an input dict, the span's end with usage, and
the `agent.tool_result` (a few hundred characters of output). Every 40 turns a user message starts
a new run (`running`) and the previous one ends `idle` with `end_turn`.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

from pydantic import JsonValue

from server.core.events import EventBody, raw_event
from server.core.ids import new_id

__all__ = ["realistic_events"]

_WORDS = [
    "the",
    "session",
    "reads",
    "file",
    "test",
    "output",
    "build",
    "module",
    "function",
    "error",
    "fix",
    "patch",
    "run",
    "check",
    "import",
    "config",
    "path",
    "line",
    "value",
    "list",
    "result",
    "call",
    "tool",
    "model",
    "agent",
    "sandbox",
    "command",
    "retry",
    "cache",
    "store",
]
TURNS_PER_RUN = 40


def _text(rng: random.Random, chars: int) -> str:
    words: list[str] = []
    while sum(len(w) + 1 for w in words) < chars:
        words.append(rng.choice(_WORDS))
    return " ".join(words)[:chars]


def _turn(rng: random.Random) -> list[EventBody]:
    start_id, tool_use_id = new_id("sevt"), new_id("sevt")
    command = f"cd /workspace && python -m pytest tests/test_{rng.choice(_WORDS)}.py -q -x"
    usage: dict[str, JsonValue] = {
        "input_tokens": rng.randint(500, 5000),
        "output_tokens": rng.randint(50, 800),
        "cache_read_input_tokens": rng.randint(0, 20000),
        "cache_creation_input_tokens": rng.randint(0, 2000),
    }
    return [
        raw_event("span.model_request_start", {}),
        raw_event("agent.message", {"content": [{"type": "text", "text": _text(rng, 200)}]}),
        raw_event(
            "agent.tool_use",
            {"name": "bash", "input": {"command": command, "timeout_ms": 120_000}, "evaluated_permission": "allow"},
        ),
        raw_event(
            "span.model_request_end",
            {"model_request_start_id": start_id, "is_error": False, "model_usage": usage},
        ),
        raw_event(
            "agent.tool_result",
            {"tool_use_id": tool_use_id, "content": [{"type": "text", "text": _text(rng, 600)}], "is_error": False},
        ),
    ]


def realistic_events(seed: int = 7) -> Iterator[EventBody]:
    """An endless, deterministic stream of events in the order an agent loop writes them."""
    rng = random.Random(seed)
    while True:
        yield raw_event("user.message", {"content": [{"type": "text", "text": _text(rng, 120)}]})
        yield raw_event("session.status_running", {})
        for _ in range(TURNS_PER_RUN):
            yield from _turn(rng)
        yield raw_event("session.status_idle", {"stop_reason": {"type": "end_turn"}})
