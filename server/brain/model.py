"""The seam between the loop and a model: one streamed turn in, content blocks and usage out.

`ModelError` sorts failures the way the loop must treat them: `retryable`
ones (overloaded, rate limited, a dropped connection, a 5xx) are retried with
backoff; the rest (a bad key, an account out of credit, an unknown model, a
refused request) end the turn with a `session.error` that says what to fix.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from pydantic import JsonValue

__all__ = ["ModelClient", "ModelError", "ModelErrorKind", "ModelTurn", "TokenUsage", "TurnPreview"]

ModelErrorKind = Literal[
    "model_overloaded_error",
    "model_rate_limited_error",
    "model_request_failed_error",
    "authentication_error",
    "billing_error",
    "model_not_found_error",
    "invalid_request_error",
    "configuration_error",
]
_RETRYABLE: frozenset[ModelErrorKind] = frozenset(
    {"model_overloaded_error", "model_rate_limited_error", "model_request_failed_error"}
)


class ModelError(Exception):
    """A model request failed; the message says what happened and, when it can, what to fix."""

    def __init__(self, kind: ModelErrorKind, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.retry_after_s = retry_after_s

    @property
    def retryable(self) -> bool:
        return self.kind in _RETRYABLE


@dataclass(frozen=True)
class TokenUsage:
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_input_tokens: int = 0
    cache_creation_input_tokens: int = 0


@dataclass(frozen=True)
class ModelTurn:
    """What the model said: text and tool_use blocks (tool_use ids are the model's own), a bare `{"type":
    "thinking"}` where it thought (the thinking itself is not kept), why it stopped."""

    content: list[dict[str, JsonValue]] = field(default_factory=list)
    stop_reason: str | None = None
    usage: TokenUsage = field(default_factory=TokenUsage)


class TurnPreview(Protocol):
    """Told what the model says while it streams, before the turn is whole (best-effort: never raises, never
    blocks). Blocks are numbered as the model numbers them."""

    def block_started(self, index: int, kind: Literal["text", "thinking"]) -> None: ...

    def text(self, index: int, text: str) -> None: ...


class ModelClient(Protocol):
    async def turn(
        self,
        *,
        model: str,
        system: str | None,
        messages: Sequence[dict[str, JsonValue]],
        tools: Sequence[dict[str, JsonValue]],
        max_tokens: int,
        preview: TurnPreview | None = None,
    ) -> ModelTurn: ...
