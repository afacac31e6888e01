"""`ModelClient` over the `anthropic` SDK: any Anthropic-compatible endpoint, streamed.

The SDK reads `ANTHROPIC_API_KEY` / `ANTHROPIC_BASE_URL` itself; its own
retries are off (`max_retries=0`) because the loop retries with events the
client can see. Prompt caching marks the stable prefix (system prompt and tool
definitions) and the newest message, so each turn re-reads the conversation
from the cache. SDK errors are translated here, once, into `ModelError`.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import httpx2
from pydantic import JsonValue

from server.brain.model import ModelError, ModelTurn, TokenUsage, TurnPreview
from server.brain.providers.dry_run import dry_run_anthropic
from server.brain.providers.http_errors import retry_after_s
from server.core.blocking import made_off_loop
from server.core.heap import settle_heap

if TYPE_CHECKING:
    import anthropic

__all__ = ["AnthropicModel"]

_CACHE: dict[str, JsonValue] = {"type": "ephemeral"}
REQUEST_TIMEOUT_S = 600.0


class AnthropicModel:
    """Streams turns from the Messages API. The SDK is imported on first use (in a worker thread, so the event
    loop goes on meanwhile) or by `warm` (it takes a second to import), so commands that never call a model never
    pay for it."""

    def __init__(self, api_key_present: bool) -> None:
        self._api_key_present = api_key_present
        self._client: anthropic.AsyncAnthropic | None = None
        self._making = threading.Lock()  # `warm` makes the client in a thread while a turn may ask for it

    def warm(self) -> None:
        """Imports the SDK, makes the client and takes a dry-run turn answered in memory (blocking: for a
        background thread), so the first turn costs what later ones do. Without credentials no client is made;
        the turn says what to set."""
        import anthropic  # noqa: F401 - the slow part, done once per process

        if self._api_key_present:
            self._sdk()
        dry_run_anthropic()

    @classmethod
    def with_client(cls, client: anthropic.AsyncAnthropic) -> AnthropicModel:
        """A model over a client made elsewhere (the dry run's, whose transport answers in memory)."""
        model = cls(api_key_present=True)
        model._client = client
        return model

    def _sdk(self) -> anthropic.AsyncAnthropic:
        if not self._api_key_present:
            raise ModelError(
                "configuration_error",
                "no model credentials: set ANTHROPIC_API_KEY in the server's environment (and ANTHROPIC_BASE_URL "
                "for another Anthropic-compatible endpoint), then send the message again",
            )
        with self._making:
            if self._client is None:
                import anthropic

                self._client = anthropic.AsyncAnthropic(max_retries=0, timeout=REQUEST_TIMEOUT_S)
                settle_heap("the anthropic SDK's import")  # most of the heap, for good: out of full collections
            return self._client

    async def aclose(self) -> None:
        """Closes the HTTP client (its connections belong to the event loop that made them)."""
        if self._client is not None:
            client, self._client = self._client, None
            await client.close()

    async def list_models(self) -> list[str]:
        """The models the endpoint serves (one cheap request: how `doctor` knows it is reachable)."""
        client = await made_off_loop(self._client, self._sdk)
        import anthropic

        try:
            page = await client.models.list(limit=100)
        except anthropic.APIStatusError as exc:
            raise _status_error(exc, "") from exc
        except (anthropic.APIConnectionError, httpx2.TransportError) as exc:
            raise ModelError("model_request_failed_error", f"could not reach the model endpoint: {exc}") from exc
        return [model.id for model in page.data]

    async def turn(
        self,
        *,
        model: str,
        system: str | None,
        messages: Sequence[dict[str, JsonValue]],
        tools: Sequence[dict[str, JsonValue]],
        max_tokens: int,
        preview: TurnPreview | None = None,
    ) -> ModelTurn:
        client = await made_off_loop(self._client, self._sdk)
        import anthropic

        request: dict[str, Any] = {
            "model": model,
            "max_tokens": max_tokens,
            "messages": _cache_last(messages),
        }
        if system:
            request["system"] = [{"type": "text", "text": system, "cache_control": _CACHE}]
        if tools:
            request["tools"] = [*tools[:-1], {**tools[-1], "cache_control": _CACHE}]
        turn = _Turn(preview)
        try:
            # The raw event stream, folded here: the SDK's `MessageStream` helper re-builds a typed snapshot
            # of the whole message at every event, which cost a millisecond a turn for nothing we use.
            stream = await client.messages.create(**request, stream=True)
            async with stream:
                async for event in stream:
                    turn.add(event)
        except anthropic.APIStatusError as exc:
            raise _status_error(exc, model) from exc
        except (anthropic.APIConnectionError, httpx2.TransportError) as exc:  # a dropped stream is the latter
            raise ModelError("model_request_failed_error", f"could not reach the model endpoint: {exc}") from exc
        except ValueError as exc:  # a tool_use block whose input is not JSON
            raise ModelError("model_request_failed_error", f"the model's answer could not be read: {exc}") from exc
        if turn.stop_reason is None:  # the stream ended cleanly but early
            raise ModelError("model_request_failed_error", "the model's answer ended before it was complete")
        return ModelTurn(content=turn.blocks(), stop_reason=turn.stop_reason, usage=turn.usage())


class _Turn:
    """Folds a message's stream events into its text and tool_use blocks, stop reason and usage."""

    def __init__(self, preview: TurnPreview | None = None) -> None:
        self._preview = preview
        self._blocks: dict[int, dict[str, Any]] = {}
        self._json: dict[int, list[str]] = {}  # a tool_use block's input, as it streams in
        self.stop_reason: str | None = None
        self._usage: dict[str, int] = {}

    def add(self, event: Any) -> None:
        """Takes one event."""
        kind = event.type
        if kind == "content_block_delta":
            delta = event.delta
            if delta.type == "text_delta" and event.index in self._blocks:
                self._blocks[event.index]["text"] += delta.text
                if self._preview is not None:
                    self._preview.text(event.index, delta.text)
            if delta.type == "input_json_delta" and event.index in self._json:
                self._json[event.index].append(delta.partial_json)
        elif kind == "content_block_start":
            block = event.content_block
            if self._preview is not None and block.type in ("text", "thinking"):
                self._preview.block_started(event.index, block.type)
            if block.type == "text":
                self._blocks[event.index] = {"type": "text", "text": block.text}
            if block.type == "thinking":  # only that it happened: the loop records it as an agent.thinking
                self._blocks[event.index] = {"type": "thinking"}
            if block.type == "tool_use":
                self._blocks[event.index] = {"type": "tool_use", "id": block.id, "name": block.name, "input": {}}
                self._json[event.index] = []
        elif kind == "message_start":
            self._count(event.message.usage)
        elif kind == "message_delta":
            self.stop_reason = event.delta.stop_reason
            self._count(event.usage)

    def _count(self, usage: Any) -> None:
        """Later counts replace earlier ones: `message_delta` carries running totals."""
        for name in ("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens"):
            value = getattr(usage, name, None)
            if value is not None:
                self._usage[name] = int(value)

    def blocks(self) -> list[dict[str, JsonValue]]:
        for index, parts in self._json.items():
            text = "".join(parts)
            self._blocks[index]["input"] = json.loads(text) if text else {}
        return [self._blocks[index] for index in sorted(self._blocks)]

    def usage(self) -> TokenUsage:
        return TokenUsage(**self._usage)


def _cache_last(messages: Sequence[dict[str, JsonValue]]) -> list[dict[str, JsonValue]]:
    """The messages, with a cache breakpoint on the newest block."""
    copied = [dict(m) for m in messages]
    if copied and isinstance(copied[-1].get("content"), list):
        content = list(copied[-1]["content"])  # type: ignore[arg-type]
        if content and isinstance(content[-1], dict):
            content[-1] = {**content[-1], "cache_control": _CACHE}
            copied[-1]["content"] = content
    return copied


_STATUS_OF_ERROR_TYPE = {"overloaded_error": 529, "rate_limit_error": 429, "api_error": 500}


def _status_error(exc: anthropic.APIStatusError, model: str) -> ModelError:
    status = exc.status_code
    if status == 200:  # an `error` event inside a stream: its type says what it was
        status = _STATUS_OF_ERROR_TYPE.get(str(getattr(exc, "type", "")), 500)
    detail = _message(exc)
    wait = retry_after_s(exc.response.headers.get("retry-after"))
    if status == 529:
        return ModelError("model_overloaded_error", f"the model is overloaded: {detail}", retry_after_s=wait)
    if status == 429:
        return ModelError("model_rate_limited_error", f"rate limited: {detail}", retry_after_s=wait)
    if status >= 500:
        return ModelError(
            "model_request_failed_error", f"the model endpoint failed ({status}): {detail}", retry_after_s=wait
        )
    if status in (401, 403):
        return ModelError(
            "authentication_error",
            f"the model endpoint refused the credentials ({status}): {detail}; check ANTHROPIC_API_KEY",
        )
    if status == 404:
        return ModelError(
            "model_not_found_error",
            f"model {model!r} was not found: {detail}; "
            "use a model the endpoint serves (set it on the agent or MANAGED_SESSIONS_MODEL)",
        )
    return ModelError("invalid_request_error", f"the model endpoint rejected the request ({status}): {detail}")


def _message(exc: anthropic.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
    return str(exc.message)
