"""A scripted OpenAI Chat Completions API on loopback HTTP: `model_server.py`'s twin for OpenAI-compatible models.

The real `openai` client runs unchanged against it (`OPENAI_BASE_URL` takes `base_url`, which ends in `/v1`);
only the model's answers come from a script. Each `POST /v1/chat/completions` consumes the next scripted turn:

- a `Reply` (text, tool calls, optional reasoning, a finish_reason, usage), answered as one `chat.completion`
  object, or as Server-Sent Events when the request says `"stream": true`;
- an `ErrorReply` (an HTTP status with the API's error body, or a `data: {"error": ...}` chunk inside a stream);
- a `Hang`, which stops mid-answer until the test releases it, the client hangs up, or its cap passes;
- a `Drop`, which closes the connection mid-answer, as a network failure does;
- a callable, which receives the `RecordedRequest` and returns one of the above.

Wire format (openai SDK 3.x `types/chat/` and `_streaming.py`): a stream is `data: <chat.completion.chunk>\\n\\n`
frames, each its own HTTP chunk, ending in `data: [DONE]\\n\\n`. The first chunk's delta has the role; text and
reasoning arrive in several pieces; each tool call opens with a chunk carrying `index`, `id`, `type` and
`function.name` with empty `arguments`, then chunks of only `index` and argument fragments cut mid-token, the
calls interleaved by `index`; a chunk with an empty delta carries `finish_reason`. With `stream_options:
{"include_usage": true}` every chunk has `usage: null` and a last chunk with `choices: []` carries the usage.
Errors are `{"error": {"message", "type", "param", "code"}}`. Reasoning, which the official API never returns
here, goes out under a compatible server's field (`reasoning_content`, as vLLM and DeepSeek; `reasoning_field=`).

Requests are checked as the real API checks them (`chat_request_checks`): a refusal is answered 400
`invalid_request_error` and recorded in `ChatModelServer.violations`, and so are an exhausted script, an unknown
path and a hang that hit its cap, so `assert server.violations == []` catches them all. What the server is told
to refuse (a wrong key, an unknown model, tools on a model without them) is answered as the provider would and
is not a violation: a test provokes it on purpose.

The HTTP plumbing (server thread, connections, hand-written responses, hangs, recorded requests) lives in
`scripted_http.py`, shared with `model_server.py`: this module keeps its API's wire format, script and checks.

Trust: it binds 127.0.0.1 only, and records credential headers as present, never their values.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from chat_request_checks import Problem, chat_request_problems
from scripted_http import HANG_CAP_S, Exchange, Handler, JsonObject, ScriptedHang, ScriptedServer
from scripted_http import POLL_S as POLL_S  # still importable from here, as before the plumbing moved
from scripted_http import HangOutcome as HangOutcome
from typing_extensions import override

__all__ = [
    "HANG_CAP_S",
    "ChatModelServer",
    "Drop",
    "ErrorReply",
    "Hang",
    "RecordedRequest",
    "Reply",
    "ToolCall",
    "Usage",
    "completion_json",
    "drop",
    "error",
    "error_json",
    "hang",
    "reply",
    "stream_chunks",
    "tool_call",
]

SECRET_HEADERS = frozenset({"authorization", "api-key"})  # the SDK's Bearer header; Azure-style endpoints' key
DEFAULT_REASONING_FIELD = "reasoning_content"
DEFAULT_ERRORS: dict[int, tuple[str, str | None, str]] = {  # status -> type, code, message, as the API words them
    400: ("invalid_request_error", None, "Invalid request"),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
    403: ("permission_error", None, "You are not allowed to sample from this model."),
    404: ("invalid_request_error", "model_not_found", "The model does not exist or you do not have access to it."),
    429: ("requests", "rate_limit_exceeded", "Rate limit reached for requests. Please try again later."),
    500: ("server_error", None, "The server had an error while processing your request. Sorry about that!"),
    503: ("server_error", None, "The engine is currently overloaded, please try again later."),
}

FinishReason = Literal["stop", "length", "tool_calls", "content_filter", "function_call"]


@dataclass(frozen=True)
class ToolCall:
    """A function call the model makes; `arguments` is the JSON text the API sends, which may be malformed."""

    name: str
    arguments: str
    id: str


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 10
    completion_tokens: int = 5
    cached_tokens: int = 0
    reasoning_tokens: int = 0


@dataclass(frozen=True)
class Reply:
    """What the model says to one request. `delay_s` waits before the answer's first byte."""

    text: str
    tool_calls: tuple[ToolCall, ...]
    finish_reason: FinishReason
    reasoning: str | None = None
    usage: Usage = Usage()
    delay_s: float = 0.0


@dataclass(frozen=True)
class ErrorReply:
    """An API error. `in_stream` sends it as a `data: {"error": ...}` chunk after the role chunk and `partial_text`,
    when the request streams."""

    status: int
    type: str
    message: str
    param: str | None = None
    code: str | None = None
    retry_after: float | None = None
    should_retry: bool | None = None
    in_stream: bool = False
    partial_text: str | None = None


class Hang(ScriptedHang):
    """A turn that stalls mid-answer until `release()`, the client hangs up, or `cap_s` passes.

    A stream first sends the role chunk and, with `partial_text`, that text's chunks; the rest of the reply
    follows a release. A non-streamed request gets nothing until the release. Use each `Hang` once.
    """

    def __init__(self, partial_text: str | None, then: Reply, *, cap_s: float, released: threading.Event) -> None:
        super().__init__(cap_s=cap_s, released=released)
        self.partial_text = partial_text
        self.then = then

    @property
    def reply(self) -> Reply:
        """The whole answer a released hang gives: the partial text, then `then`."""
        head = self.partial_text or ""
        return Reply(head + self.then.text, self.then.tool_calls, self.then.finish_reason, usage=self.then.usage)


@dataclass(frozen=True)
class Drop:
    """A turn whose connection is closed mid-answer, with no error and no end: a network failure.

    A stream sends the role chunk and, with `partial_text`, that text's chunks; then the connection closes without
    `finish_reason`, `[DONE]` or the chunked body's end. A non-streamed request gets no response at all.
    """

    partial_text: str | None = None


Answer = Reply | ErrorReply | Hang | Drop
Turn = Answer | Callable[["RecordedRequest"], Answer]


def tool_call(name: str, arguments: JsonObject | str | None = None, id: str | None = None) -> ToolCall:
    """A tool call; `arguments` as a dict is sent as its JSON, as a `str` verbatim (to script malformed JSON)."""
    text = arguments if isinstance(arguments, str) else json.dumps(arguments or {})
    return ToolCall(name, text, id or f"call_{secrets.token_hex(12)}")


def reply(
    *parts: str | ToolCall,
    reasoning: str | None = None,
    finish_reason: FinishReason | None = None,
    usage: Usage | None = None,
    delay_s: float = 0.0,
) -> Reply:
    """A turn: its `str` parts make the message's text, its `ToolCall`s its tool calls. The finish_reason defaults
    to `tool_calls` if there is one, else `stop`."""
    text = "".join(p for p in parts if isinstance(p, str))
    calls = tuple(p for p in parts if isinstance(p, ToolCall))
    if finish_reason is None:
        finish_reason = "tool_calls" if calls else "stop"
    return Reply(text, calls, finish_reason, reasoning, usage or Usage(), delay_s)


def error(
    status: int,
    type: str | None = None,
    message: str | None = None,
    *,
    param: str | None = None,
    code: str | None = None,
    retry_after: float | None = None,
    should_retry: bool | None = None,
    in_stream: bool = False,
    partial_text: str | None = None,
) -> ErrorReply:
    """An error turn, e.g. `error(429, retry_after=3)` or `error(500, in_stream=True, partial_text="Let me")`.

    `type`, `code` and `message` default to what the API sends for `status` (`DEFAULT_ERRORS`)."""
    default_type, default_code, default_message = DEFAULT_ERRORS.get(status, ("server_error", None, "Error"))
    if type is None:  # the default code belongs to the default type only
        type, code = default_type, code or default_code
    return ErrorReply(
        status, type, message or default_message, param, code, retry_after, should_retry, in_stream, partial_text
    )


def hang(
    partial_text: str | None = None,
    *,
    then: Reply | None = None,
    release: threading.Event | None = None,
    cap_s: float = HANG_CAP_S,
) -> Hang:
    """A stalled turn: after a release it answers `partial_text + then.text` and `then`'s tool calls.

    `then.delay_s` and `then.reasoning` are ignored: the hang is the delay. Pass your own `release` event to share
    one between turns.
    """
    rest = dataclasses.replace(then or reply(), reasoning=None, delay_s=0.0)
    return Hang(partial_text, rest, cap_s=cap_s, released=release or threading.Event())


def drop(partial_text: str | None = None) -> Drop:
    """A turn cut off by the network: `drop()` right after the role chunk, `drop("Let me")` after some text."""
    return Drop(partial_text)


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the server saw it. Credential headers keep their name; the value is `<redacted>`."""

    index: int
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: JsonObject = field(default_factory=dict[str, Any])

    @property
    def has_credentials(self) -> bool:
        return not SECRET_HEADERS.isdisjoint(self.headers)

    @property
    def model(self) -> str | None:
        return self.body.get("model")

    @property
    def messages(self) -> list[JsonObject]:
        return self.body.get("messages") or []

    @property
    def system_text(self) -> str:
        """The `system` and `developer` messages' text as one string, whether sent as strings or text parts."""
        return "".join(_text_of(m) for m in self.messages if m.get("role") in ("system", "developer"))

    @property
    def tools(self) -> list[JsonObject]:
        return self.body.get("tools") or []

    @property
    def tool_names(self) -> list[str]:
        return [(tool.get("function") or {}).get("name", "") for tool in self.tools]

    @property
    def stream(self) -> bool:
        return self.body.get("stream") is True

    @property
    def include_usage(self) -> bool:
        options = self.body.get("stream_options")
        return self.stream and isinstance(options, dict) and options.get("include_usage") is True

    @property
    def max_tokens(self) -> int | None:
        """`max_completion_tokens`, or the older `max_tokens` that compatible servers still read."""
        return self.body.get("max_completion_tokens") or self.body.get("max_tokens")

    def tool_results(self) -> dict[str, JsonObject]:
        """The `tool` messages that end the conversation (the answers to the last tool calls), by `tool_call_id`."""
        results: dict[str, JsonObject] = {}
        for message in reversed(self.messages):
            if message.get("role") != "tool":
                break
            results[message.get("tool_call_id", "")] = message
        return dict(reversed(results.items()))


def _text_of(message: JsonObject) -> str:
    content = message.get("content")
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return content if isinstance(content, str) else ""


# --- wire format -----------------------------------------------------------------------------------------------


def _pieces(value: str, parts: int = 3) -> list[str]:
    """Splits a string into `parts` pieces (fewer only if it is shorter), cutting words and JSON tokens apart, so
    the client has to reassemble it as it does with the real API's deltas."""
    count = max(1, min(parts, len(value)))
    bounds = [len(value) * k // count for k in range(count + 1)]
    return [value[bounds[k] : bounds[k + 1]] for k in range(count)]


def _usage_json(usage: Usage) -> JsonObject:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.prompt_tokens + usage.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_tokens, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": usage.reasoning_tokens,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _tool_call_json(call: ToolCall) -> JsonObject:
    return {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}


def completion_json(
    answer: Reply, *, model: str, completion_id: str, reasoning_field: str = DEFAULT_REASONING_FIELD
) -> JsonObject:
    """The whole `chat.completion` a non-streamed request gets."""
    message: JsonObject = {"role": "assistant", "content": answer.text or None, "refusal": None}
    if not answer.tool_calls:
        message["content"] = answer.text
    else:
        message["tool_calls"] = [_tool_call_json(c) for c in answer.tool_calls]
    if answer.reasoning is not None:
        message[reasoning_field] = answer.reasoning
    choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": answer.finish_reason}
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [choice],
        "usage": _usage_json(answer.usage),
        "service_tier": "default",
        "system_fingerprint": None,
    }


@dataclass(frozen=True)
class _ChunkFrame:
    """What every chunk of one stream repeats (its id, creation time and model) and how the stream is shaped."""

    completion_id: str
    model: str
    include_usage: bool
    interleave: bool = True
    created: int = field(default_factory=lambda: int(time.time()))

    def chunk(self, delta: JsonObject, finish_reason: FinishReason | None = None) -> JsonObject:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return self._envelope([choice]) | ({"usage": None} if self.include_usage else {})

    def usage_chunk(self, usage: Usage) -> JsonObject:
        return self._envelope([]) | {"usage": _usage_json(usage)}

    def _envelope(self, choices: list[JsonObject]) -> JsonObject:
        head = {"id": self.completion_id, "object": "chat.completion.chunk", "created": self.created}
        return head | {"model": self.model, "system_fingerprint": None, "choices": choices}


def _opening_chunks(frame: _ChunkFrame, partial_text: str | None) -> list[JsonObject]:
    """The role chunk, then `partial_text`'s pieces: what a stream has sent before it hangs, drops or fails."""
    opening = frame.chunk({"role": "assistant", "content": "", "refusal": None})
    return [opening, *(frame.chunk({"content": p}) for p in _pieces(partial_text or "") if p)]


def _tool_call_chunks(frame: _ChunkFrame, calls: Sequence[ToolCall]) -> list[JsonObject]:
    """Each call's opening delta, then its argument fragments. With `frame.interleave` the calls take turns, so
    only `index` tells them apart; OpenAI itself sends one call after the other."""
    per_call = [
        [
            {"index": index, "id": call.id, "type": "function", "function": {"name": call.name, "arguments": ""}},
            *({"index": index, "function": {"arguments": piece}} for piece in _pieces(call.arguments) if piece),
        ]
        for index, call in enumerate(calls)
    ]
    ordered = itertools.zip_longest(*per_call) if frame.interleave else per_call
    return [frame.chunk({"tool_calls": [delta]}) for delta in itertools.chain.from_iterable(ordered) if delta]


def _closing_chunks(frame: _ChunkFrame, answer: Reply, reasoning_field: str) -> list[JsonObject]:
    """Everything after the opening: reasoning, text, tool calls, the finish_reason and the usage."""
    chunks = [frame.chunk({reasoning_field: p}) for p in _pieces(answer.reasoning or "") if p]
    chunks += [frame.chunk({"content": p}) for p in _pieces(answer.text) if p]
    chunks += _tool_call_chunks(frame, answer.tool_calls)
    chunks.append(frame.chunk({}, answer.finish_reason))
    if frame.include_usage:
        chunks.append(frame.usage_chunk(answer.usage))
    return chunks


def stream_chunks(
    answer: Reply,
    *,
    model: str,
    completion_id: str,
    include_usage: bool,
    interleave_tool_calls: bool = True,
    reasoning_field: str = DEFAULT_REASONING_FIELD,
) -> list[JsonObject]:
    """The `data:` payloads of a streamed answer, in order, without the closing `[DONE]`."""
    frame = _ChunkFrame(completion_id, model, include_usage, interleave_tool_calls)
    return [*_opening_chunks(frame, None), *_closing_chunks(frame, answer, reasoning_field)]


def error_json(message: str, type: str, param: str | None = None, code: str | None = None) -> JsonObject:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def _problems_json(problems: list[Problem]) -> JsonObject:
    first = problems[0]
    return error_json("; ".join(p.message for p in problems), "invalid_request_error", first.param, first.code)


# --- HTTP ------------------------------------------------------------------------------------------------------


class _Exchange(Exchange):
    request_id_header = "x-request-id"

    def send_chunks(self, chunks: list[JsonObject]) -> None:
        for chunk in chunks:
            self.send_frame(json.dumps(chunk))

    @override
    def end_stream(self, *, done: bool = True) -> None:
        """Ends the body; `done` first sends `data: [DONE]`, which a failed stream does not get."""
        if done:
            self.send_frame("[DONE]")
        super().end_stream()


def _error_reply_json(answer: ErrorReply) -> JsonObject:
    return error_json(answer.message, answer.type, answer.param, answer.code)


class ChatModelServer(ScriptedServer[RecordedRequest, Answer]):
    """The scripted Chat Completions API, serving on 127.0.0.1 in a background thread while the context is open.

    Args:
        turns: the script's first turns; `enqueue` adds more.
        api_key: when set, a request without `Authorization: Bearer <api_key>` gets 401, as the API answers it.
        models: when set, the models served (listed by `GET /v1/models`); another model gets 404
            `model_not_found`. Unset, any model is served and the list is empty.
        tools_supported: False answers a request with `tools` 400 "<model> does not support tools", as Ollama
            does for a model without tool calling.
        reasoning_field: the message and delta field that carries a reply's reasoning, and that an assistant
            message may carry back.
        interleave_tool_calls: whether a stream's tool calls take turns chunk by chunk (a client must go by
            `index`; the SDK's `tool_calls.function.arguments.done` events then fire early) or follow one
            another, as OpenAI sends them.

    Example:
        with ChatModelServer() as server:
            server.enqueue(  # a tool call, then an answer built from the conversation
                reply(tool_call("bash", {"command": "ls"})), lambda request: reply(repr(request.tool_results()))
            )
            client = openai.OpenAI(base_url=server.base_url, api_key="test-key", max_retries=0)
            ...
            assert server.violations == []
    """

    _name = "chat model server"
    _secret_headers = SECRET_HEADERS
    _not_json = "We could not parse the JSON body of your request"
    _not_an_object = "the request body must be a JSON object"

    def __init__(
        self,
        *turns: Turn,
        api_key: str | None = None,
        models: Sequence[str] | None = None,
        tools_supported: bool = True,
        reasoning_field: str = DEFAULT_REASONING_FIELD,
        interleave_tool_calls: bool = True,
    ) -> None:
        super().__init__(turns, RecordedRequest)
        self._interleave_tool_calls = interleave_tool_calls
        self._api_key = api_key
        self._models = tuple(models) if models is not None else None
        self._tools_supported = tools_supported
        self._reasoning_field = reasoning_field

    @property
    @override
    def base_url(self) -> str:
        """The API root the `openai` SDK takes as `base_url` (or `OPENAI_BASE_URL`): it ends in `/v1`."""
        return f"{super().base_url}/v1"

    # --- serving, on the handler threads ---

    @override
    def _serve(self, handler: Handler) -> None:
        exchange = _Exchange(handler)
        authorized = self._authorized(handler.headers.get("authorization"))
        request, problem = self._record(handler)
        if not authorized:
            message = "Incorrect API key provided." if request.has_credentials else "You didn't provide an API key."
            exchange.send_json(401, error_json(message, "invalid_request_error", None, "invalid_api_key"))
        elif problem is not None:
            self._violate(request, problem)
            exchange.send_json(400, error_json(problem, "invalid_request_error"))
        elif request.method == "POST" and request.path == "/v1/chat/completions":
            self._answer_chat(request, exchange)
        elif request.method == "GET" and request.path.startswith("/v1/models"):
            self._answer_models(request, exchange)
        else:
            message = f"Invalid URL ({request.method} {request.path}): not served by the scripted model"
            self._violate(request, message)
            exchange.send_json(404, error_json(message, "invalid_request_error"))

    def _authorized(self, authorization: str | None) -> bool:
        if self._api_key is None:
            return True
        expected = f"Bearer {self._api_key}".encode()
        return authorization is not None and secrets.compare_digest(authorization.encode(), expected)

    def _answer_models(self, request: RecordedRequest, exchange: _Exchange) -> None:
        def info(model_id: str) -> JsonObject:
            return {"id": model_id, "object": "model", "created": 1_700_000_000, "owned_by": "scripted"}

        model_id = request.path.removeprefix("/v1/models").removeprefix("/")
        if not model_id:
            exchange.send_json(200, {"object": "list", "data": [info(m) for m in self._models or ()]})
        elif self._serves(model_id):
            exchange.send_json(200, info(model_id))
        else:
            exchange.send_json(404, self._model_not_found(model_id))

    def _serves(self, model_id: str) -> bool:
        return self._models is None or model_id in self._models

    @staticmethod
    def _model_not_found(model_id: str) -> JsonObject:
        message = f"The model `{model_id}` does not exist or you do not have access to it."
        return error_json(message, "invalid_request_error", None, "model_not_found")

    def _answer_chat(self, request: RecordedRequest, exchange: _Exchange) -> None:
        problems = chat_request_problems(request.body, assistant_keys=frozenset({self._reasoning_field}))
        if problems:
            self._violate(request, "; ".join(p.message for p in problems))
            exchange.send_json(400, _problems_json(problems))
        elif not self._serves(str(request.model)):
            exchange.send_json(404, self._model_not_found(str(request.model)))
        elif request.tools and not self._tools_supported:
            exchange.send_json(400, error_json(f"{request.model} does not support tools", "api_error"))
        else:
            self._send_answer(request, self._next_answer(request), exchange)

    @override
    def _server_error(self, message: str) -> ErrorReply:
        return ErrorReply(500, "server_error", message, should_retry=False)

    def _send_answer(self, request: RecordedRequest, answer: Answer, exchange: _Exchange) -> None:
        if isinstance(answer, ErrorReply):
            self._send_error(request, answer, exchange)
        elif isinstance(answer, Hang):
            self._send_hang(request, answer, exchange)
        elif isinstance(answer, Drop):
            self._send_drop(request, answer, exchange)
        elif not (answer.delay_s and self._closing.wait(answer.delay_s)):
            self._send_reply(request, answer, exchange)

    def _frame(self, request: RecordedRequest) -> _ChunkFrame:
        completion_id = f"chatcmpl-{secrets.token_hex(12)}"
        return _ChunkFrame(completion_id, str(request.model), request.include_usage, self._interleave_tool_calls)

    def _send_reply(self, request: RecordedRequest, answer: Reply, exchange: _Exchange) -> None:
        frame = self._frame(request)
        if not request.stream:
            body = completion_json(
                answer, model=frame.model, completion_id=frame.completion_id, reasoning_field=self._reasoning_field
            )
            exchange.send_json(200, body)
            return
        exchange.start_stream()
        exchange.send_chunks(_opening_chunks(frame, None) + _closing_chunks(frame, answer, self._reasoning_field))
        exchange.end_stream()

    def _send_error(self, request: RecordedRequest, answer: ErrorReply, exchange: _Exchange) -> None:
        if not (answer.in_stream and request.stream):
            exchange.send_error(answer, _error_reply_json(answer))
            return
        exchange.start_stream()
        exchange.send_chunks([*_opening_chunks(self._frame(request), answer.partial_text), _error_reply_json(answer)])
        exchange.end_stream(done=False)

    def _send_drop(self, request: RecordedRequest, answer: Drop, exchange: _Exchange) -> None:
        if request.stream:
            exchange.start_stream()
            exchange.send_chunks(_opening_chunks(self._frame(request), answer.partial_text))
        exchange.drop()

    def _send_hang(self, request: RecordedRequest, job: Hang, exchange: _Exchange) -> None:
        frame = self._frame(request)
        if request.stream:
            exchange.start_stream()
            exchange.send_chunks(_opening_chunks(frame, job.partial_text))
        outcome = exchange.wait(job, self._closing)
        if outcome == "capped":
            self._violate(request, f"a hang reached its {job.cap_s} s cap without a release or a client hang-up")
            capped = self._server_error("the scripted hang reached its cap")
            if request.stream:
                exchange.send_chunks([_error_reply_json(capped)])
                exchange.end_stream(done=False)
            else:
                exchange.send_error(capped, _error_reply_json(capped))
        elif outcome == "released" and request.stream:
            exchange.send_chunks(_closing_chunks(frame, job.then, self._reasoning_field))
            exchange.end_stream()
        elif outcome == "released":
            self._send_reply(request, job.reply, exchange)
        else:
            exchange.handler.close_connection = True
