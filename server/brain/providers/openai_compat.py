"""`ModelClient` over the `openai` SDK: any OpenAI Chat Completions endpoint (OpenAI, gateways, local servers).

One client per endpoint. The built-in `openai` endpoint is configured as the SDK configures itself
(`OPENAI_API_KEY`, `OPENAI_BASE_URL`); a declared endpoint is always given its own `base_url` and key (a
placeholder when it needs none), so `OPENAI_API_KEY` is never sent anywhere else. The SDK's retries are off
(`max_retries=0`) because the loop retries with events the client can see. Content is translated in
`chat_completions`; SDK errors are translated here, once, into `ModelError`, and no message holds a key.
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx2
import pydantic
from pydantic import JsonValue

from server.brain.model import ModelError, ModelTurn, TurnPreview
from server.brain.providers.chat_completions import TurnFold, request_messages, request_tools
from server.brain.providers.http_errors import retry_after_s
from server.core.blocking import made_off_loop
from server.core.heap import settle_heap
from server.core.models import Endpoint

if TYPE_CHECKING:
    import openai
    from openai.types.chat import ChatCompletionChunk

__all__ = ["OpenAICompatModel", "RequestTarget", "translate_error"]

REQUEST_TIMEOUT_S = 600.0
NO_KEY = "no-key"
"""Sent to a declared endpoint that declares no key variable: the SDK insists on some key, a local server
ignores it, and `OPENAI_API_KEY` must not stand in for it."""


_DRY_RUN_CHUNK: dict[str, Any] = {
    "id": "chatcmpl-dry-run",
    "object": "chat.completion.chunk",
    "created": 0,
    "model": "dry-run",
    "choices": [{"index": 0, "delta": {"role": "assistant", "content": "ok"}, "finish_reason": None}],
}


class OpenAICompatModel:
    """Streams turns from one Chat Completions endpoint. The SDK is imported on first use (in a worker thread, so
    the event loop goes on meanwhile) or by `warm` (it is slow to import)."""

    def __init__(self, endpoint: Endpoint) -> None:
        self._endpoint = endpoint
        self._client: openai.AsyncOpenAI | None = None
        self._making = threading.Lock()  # `warm` makes the client in a thread while a turn may ask for it

    def warm(self) -> None:
        """Imports the SDK and makes the client now (blocking: for a background thread), so the first turn
        costs what later ones do. A client that cannot be set up is left to the turn, which says what to fix."""
        import openai  # noqa: F401 - the slow part, done once per process

        with contextlib.suppress(ModelError):
            self._sdk()
        _chunk(_DRY_RUN_CHUNK)  # pydantic builds the chunk type's validator on first use (a few ms)

    def _sdk(self) -> openai.AsyncOpenAI:
        with self._making:
            if self._client is None:
                self._client = self._new_client()
                settle_heap("the openai SDK's import")  # most of the heap, for good: out of full collections
            return self._client

    def _new_client(self) -> openai.AsyncOpenAI:
        import openai

        base_url, api_key = self._settings()
        try:
            client = openai.AsyncOpenAI(base_url=base_url, api_key=api_key, max_retries=0, timeout=REQUEST_TIMEOUT_S)
        except openai.OpenAIError as exc:  # e.g. OPENAI_API_KEY unset after all
            raise ModelError("configuration_error", f"the OpenAI client could not be set up: {exc}") from exc
        if base_url is not None:  # OpenAI account ids (OPENAI_ORG_ID, OPENAI_PROJECT_ID) are OpenAI's alone
            client.organization = client.project = None
        return client

    def _settings(self) -> tuple[str | None, str | None]:
        """The client's base URL and key (None: the SDK's variables), or `configuration_error` naming what to set."""
        endpoint = self._endpoint
        if endpoint.base_url is None:
            if not endpoint.key_present:
                raise ModelError(
                    "configuration_error",
                    "no OpenAI credentials: set OPENAI_API_KEY in the server's environment (and OPENAI_BASE_URL "
                    "for another endpoint), then send the message again",
                )
            return None, None  # the SDK reads OPENAI_BASE_URL and OPENAI_API_KEY itself
        if endpoint.api_key_env and not endpoint.api_key:
            raise ModelError(
                "configuration_error",
                f"endpoint {endpoint.name!r} takes its key from {endpoint.api_key_env}, which is not set; set it in "
                "the server's environment, then send the message again",
            )
        return endpoint.base_url, endpoint.api_key or NO_KEY

    async def aclose(self) -> None:
        """Closes the HTTP client (its connections belong to the event loop that made them)."""
        if self._client is not None:
            client, self._client = self._client, None
            await client.close()

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
        # OpenAI's own API wants `max_completion_tokens` (its reasoning models refuse `max_tokens`); the servers
        # behind declared endpoints know only `max_tokens`.
        limit = "max_completion_tokens" if self._endpoint.base_url is None else "max_tokens"
        request: dict[str, Any] = {
            "model": model,
            "messages": request_messages(system, messages, vision=self._endpoint.vision),
            limit: max_tokens,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if tools:
            request["tools"] = request_tools(tools)
        fold = TurnFold(preview)
        async with self._errors(client, model):
            stream = await _post_stream(client, request)
            async with stream:
                async for data in stream:
                    fold.add(_chunk(data))
        return fold.turn()

    async def list_models(self) -> list[str]:
        """The model names the endpoint serves: a cheap check that it answers and takes the key (for `doctor`)."""
        client = await made_off_loop(self._client, self._sdk)
        async with self._errors(client, None):
            return [model.id async for model in client.models.list()]

    @contextlib.asynccontextmanager
    async def _errors(self, client: openai.AsyncOpenAI, model: str | None) -> AsyncIterator[None]:
        """What the SDK raises inside, as a `ModelError` (`raise ... from` the original)."""
        import openai

        try:
            yield
        except (openai.OpenAIError, httpx2.TransportError, ValueError) as exc:
            target = RequestTarget(self._endpoint, str(client.base_url), client.api_key, model)
            raise translate_error(exc, target) from exc


async def _post_stream(client: openai.AsyncOpenAI, request: dict[str, Any]) -> openai.AsyncStream[object]:
    """`chat.completions.create(**request)` with the chunks left as JSON, less its first step: that walks the whole
    body against the SDK's request types, which change nothing in a Chat Completions body (no field is renamed
    or reformatted), at a cost that grows with the conversation: about 0.25 ms a message on every turn, 25 ms
    at 100 messages (see benchmarks/bench_providers.py)."""
    import openai
    from openai.types.chat import ChatCompletion

    return await client.post(
        "/chat/completions",
        body=request,
        cast_to=ChatCompletion,
        stream=True,
        stream_cls=openai.AsyncStream[object],
        options={"security": {"bearer_auth": True}},  # as `create` sends it: the API key, no admin key
    )


def _chunk(data: object) -> ChatCompletionChunk:
    """A chunk's JSON as the SDK's type. The SDK builds each chunk field by field in Python (50 µs a chunk);
    pydantic's validator takes a tenth of that. A chunk it refuses (some compatible servers leave fields out)
    is built the SDK's lenient way."""
    from openai.types.chat import ChatCompletionChunk

    try:
        return ChatCompletionChunk.model_validate(data)
    except pydantic.ValidationError:
        if not isinstance(data, dict):
            raise ValueError(f"a streamed chunk is not a JSON object: {data!r:.200}") from None
        return ChatCompletionChunk.construct(**data)


@dataclass(frozen=True)
class RequestTarget:
    """What an error message names (the endpoint, its URL, the model) and the key it must never show."""

    endpoint: Endpoint
    base_url: str
    api_key: str = field(repr=False)
    model: str | None = None


def translate_error(exc: Exception, target: RequestTarget) -> ModelError:
    """An SDK error (or a dropped stream) as a `ModelError`: retryable or not, what to fix, and never the key."""
    error = _error(exc, target)
    if len(target.api_key) < 8 or target.api_key not in str(error):
        return error
    return ModelError(error.kind, str(error).replace(target.api_key, "********"), retry_after_s=error.retry_after_s)


def _error(exc: Exception, target: RequestTarget) -> ModelError:
    import openai

    endpoint, model = target.endpoint, target.model
    if isinstance(exc, openai.APIError) and _QUOTA in (exc.code, exc.type):
        return ModelError(
            "billing_error",
            f"the account behind endpoint {endpoint.name!r} is out of quota: {_detail(exc)}; check its plan and "
            "billing details, then send the message again",
        )
    if isinstance(exc, openai.APIStatusError):
        wait = retry_after_s(exc.response.headers.get("retry-after"))
        return _status_error(exc.status_code, _detail(exc), endpoint, model, retry_after=wait)
    if isinstance(exc, openai.APIConnectionError | httpx2.TransportError):  # a dropped stream is the latter
        return ModelError(
            "model_request_failed_error",
            f"the connection to endpoint {endpoint.name!r} at {target.base_url} failed: {_cause(exc)}; "
            "if it is a local server, check that it is running",
        )
    if isinstance(exc, openai.APIError):  # an error object inside the stream
        return _status_error(_status_of(exc.code, exc.type), _detail(exc), endpoint, model)
    return ModelError("model_request_failed_error", f"the model's answer could not be read: {exc}")


_QUOTA = "insufficient_quota"
"""OpenAI's code (and type) for an account out of credit: sent with a 429, yet waiting does not help."""

_STATUS_OF_ERROR_TYPE = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "invalid_api_key": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "model_not_found": 404,
    "rate_limit_error": 429,
    "rate_limit_exceeded": 429,
}
_TOOLS_UNSUPPORTED = re.compile(r"tool.*(support|enable|requires|--jinja)|(support|enable).*tool", re.I | re.S)


def _status_of(code: str | None, error_type: str | None) -> int:
    """The HTTP status an in-stream error stands for: a numeric code is one; else its code or type; else a 500."""
    if code and code.isdigit() and 400 <= int(code) < 600:
        return int(code)
    return _STATUS_OF_ERROR_TYPE.get(code or "") or _STATUS_OF_ERROR_TYPE.get(error_type or "", 500)


def _status_error(
    status: int, detail: str, endpoint: Endpoint, model: str | None, retry_after: float | None = None
) -> ModelError:
    """What an HTTP status (or an in-stream error standing for one) means for the loop, and what to fix."""
    if status == 429:
        return ModelError("model_rate_limited_error", f"rate limited: {detail}", retry_after_s=retry_after)
    if status >= 500:
        return ModelError(
            "model_request_failed_error", f"the model endpoint failed ({status}): {detail}", retry_after_s=retry_after
        )
    where = f"endpoint {endpoint.name!r}"
    if status in (401, 403):
        return ModelError(
            "authentication_error", f"{where} refused the credentials ({status}): {detail}; {_key_hint(endpoint)}"
        )
    if status == 404 and model is None:
        return ModelError(
            "model_not_found_error", f"{where} has no model list ({detail}); check its base_url (most end in /v1)"
        )
    if status == 404:
        return ModelError(
            "model_not_found_error",
            f"model {model!r} was not found on {where}: {detail}; use a model the endpoint serves "
            f"({endpoint.name}/<model> on the agent or in MANAGED_SESSIONS_MODEL)",
        )
    if status == 400 and _TOOLS_UNSUPPORTED.search(detail):
        return ModelError(
            "invalid_request_error",
            f"model {model!r} on {where} does not support tool calls ({detail}); pick a model with tool calling, "
            "or start the server with tool calling on (vLLM: --enable-auto-tool-choice and --tool-call-parser; "
            "llama.cpp: --jinja)",
        )
    return ModelError("invalid_request_error", f"{where} rejected the request ({status}): {detail}")


def _key_hint(endpoint: Endpoint) -> str:
    if endpoint.base_url is None:
        return "check OPENAI_API_KEY"
    if endpoint.api_key_env:
        return f"check {endpoint.api_key_env}"
    return f"it declares no key: set api_key_env in [endpoints.{endpoint.name}] to the variable that holds its key"


def _detail(exc: openai.APIError) -> str:
    """The endpoint's own words: `message` (OpenAI and most servers), `detail` (some), or the body itself."""
    body = exc.body
    if isinstance(body, dict):
        for key in ("message", "detail", "error"):
            if isinstance(body.get(key), str) and body[key]:
                return str(body[key])
    if isinstance(body, str) and body:
        return body
    return str(exc.message)


def _cause(exc: Exception) -> str:
    """The SDK's connection errors say only "Connection error."; what lies beneath says why."""
    cause = exc.__cause__
    return f"{exc} ({cause})" if cause is not None and str(cause) else str(exc)
