"""A scripted Anthropic Messages API on loopback HTTP: the one part of the system tests replace.

The real `anthropic` client and the real agent loop run unchanged against it; only the model's answers come
from a script. Each `POST /v1/messages` consumes the next scripted turn:

- a `Reply` (text, tool_use and thinking blocks, a stop_reason, usage), answered as one Message JSON, or as
  Server-Sent Events when the request says `"stream": true`;
- an `ErrorReply` (an HTTP status with the API's error body, or an `event: error` inside a stream);
- a `Hang`, which stops mid-answer until the test releases it, the client hangs up, or its cap passes;
- a `Drop`, which closes the connection mid-answer (a stream after `message_start`), as a network failure does;
- a callable, which receives the `RecordedRequest` and returns one of the above.

Wire format (anthropic SDK 2.x `types/`): a stream is `message_start` (a Message with empty content and
`stop_reason: null`), `ping`, then per block `content_block_start` / `content_block_delta`* /
`content_block_stop`, then `message_delta` (stop_reason and cumulative usage) and `message_stop`. Each event
is framed `event: <type>\\ndata: <json>\\n\\n`, sent as its own HTTP chunk. Errors are
`{"type": "error", "error": {"type": ..., "message": ...}}`.

Requests are checked like the real API checks them, where that catches loop bugs cheaply (`conversation_problems`):
a violation is answered 400 `invalid_request_error` and recorded in `ModelServer.violations`, and so are an
exhausted script, an unknown path and a hang that hit its cap, so `assert server.violations == []` catches them all.
One rule is stricter than the API: it merges consecutive same-role messages, this server rejects them.

The HTTP plumbing (server thread, connections, hand-written responses, hangs, recorded requests) lives in
`scripted_http.py`, shared with `chat_model_server.py`: this module keeps its API's wire format, script and checks.

Trust: it binds 127.0.0.1 only, and records credential headers as present, never their values.
"""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from scripted_http import HANG_CAP_S, Exchange, Handler, JsonObject, ScriptedHang, ScriptedServer
from scripted_http import POLL_S as POLL_S  # still importable from here, as before the plumbing moved
from scripted_http import HangOutcome as HangOutcome
from typing_extensions import override

__all__ = [
    "HANG_CAP_S",
    "Drop",
    "ErrorReply",
    "Hang",
    "ModelServer",
    "RecordedRequest",
    "Reply",
    "Text",
    "Thinking",
    "ToolUse",
    "Usage",
    "conversation_problems",
    "drop",
    "error",
    "error_json",
    "hang",
    "message_json",
    "reply",
    "stream_events",
    "text",
    "thinking",
    "tool_use",
]

SECRET_HEADERS = frozenset({"x-api-key", "authorization"})
DEFAULT_ERROR_MESSAGES = {
    "invalid_request_error": "Invalid request",
    "authentication_error": "invalid x-api-key",
    "permission_error": "Your API key does not have permission to use the specified resource.",
    "not_found_error": "Not found",
    "rate_limit_error": "Number of requests has exceeded your rate limit",
    "api_error": "Internal server error",
    "overloaded_error": "Overloaded",
}

StopReason = Literal[
    "end_turn", "max_tokens", "stop_sequence", "tool_use", "pause_turn", "refusal", "model_context_window_exceeded"
]


@dataclass(frozen=True)
class Text:
    text: str


@dataclass(frozen=True)
class ToolUse:
    name: str
    input: JsonObject
    id: str


@dataclass(frozen=True)
class Thinking:
    thinking: str
    signature: str = "sig_scripted"


Block = Text | ToolUse | Thinking


@dataclass(frozen=True)
class Usage:
    input_tokens: int = 10
    output_tokens: int = 5
    cache_read_input_tokens: int = 0
    cache_creation_input_tokens: int = 0


@dataclass(frozen=True)
class Reply:
    """What the model says to one request. `delay_s` waits before the answer's first byte."""

    blocks: tuple[Block, ...]
    stop_reason: StopReason
    usage: Usage = Usage()
    delay_s: float = 0.0
    stop_details: JsonObject | None = None


@dataclass(frozen=True)
class ErrorReply:
    """An API error. `in_stream` sends it as an `event: error` after `message_start`, when the request streams."""

    status: int
    type: str
    message: str
    retry_after: float | None = None
    should_retry: bool | None = None
    in_stream: bool = False


class Hang(ScriptedHang):
    """A turn that stalls mid-answer until `release()`, the client hangs up, or `cap_s` passes.

    A stream first sends `message_start`, a ping and, with `partial_text`, a text block's deltas; the rest of
    `reply` follows a release. A non-streamed request gets nothing until the release. Use each `Hang` once.
    """

    def __init__(self, reply: Reply, *, partial: bool, cap_s: float, released: threading.Event) -> None:
        super().__init__(cap_s=cap_s, released=released)
        self.reply = reply
        self.partial = partial


@dataclass(frozen=True)
class Drop:
    """A turn whose connection is closed mid-answer, with no error and no end: a network failure.

    A stream sends `message_start`, a ping and, with `partial_text`, a text block's start and deltas (no
    `content_block_stop`); then the connection closes without `message_stop` or the chunked body's end. A
    non-streamed request gets no response at all. Either way the server closes the connection (FIN, not RST).
    """

    partial_text: str | None = None


Answer = Reply | ErrorReply | Hang | Drop
Turn = Answer | Callable[["RecordedRequest"], Answer]


def text(value: str) -> Text:
    return Text(value)


def thinking(value: str, signature: str = "sig_scripted") -> Thinking:
    return Thinking(value, signature)


def tool_use(name: str, input: JsonObject | None = None, id: str | None = None) -> ToolUse:
    return ToolUse(name, input or {}, id or f"toolu_{secrets.token_hex(12)}")


def reply(
    *blocks: Block | str,
    stop_reason: StopReason | None = None,
    usage: Usage | None = None,
    delay_s: float = 0.0,
    stop_details: JsonObject | None = None,
) -> Reply:
    """A turn; a `str` is a text block. The stop_reason defaults to `tool_use` if a block is one, else `end_turn`."""
    parts = tuple(Text(b) if isinstance(b, str) else b for b in blocks)
    if stop_reason is None:
        stop_reason = "tool_use" if any(isinstance(b, ToolUse) for b in parts) else "end_turn"
    return Reply(parts, stop_reason, usage or Usage(), delay_s, stop_details)


def error(
    status: int,
    type: str,
    message: str | None = None,
    *,
    retry_after: float | None = None,
    should_retry: bool | None = None,
    in_stream: bool = False,
) -> ErrorReply:
    """An error turn, e.g. `error(529, "overloaded_error")` or `error(429, "rate_limit_error", retry_after=3)`."""
    return ErrorReply(
        status, type, message or DEFAULT_ERROR_MESSAGES.get(type, type), retry_after, should_retry, in_stream
    )


def hang(
    partial_text: str | None = None,
    *,
    then: Reply | None = None,
    release: threading.Event | None = None,
    cap_s: float = HANG_CAP_S,
) -> Hang:
    """A stalled turn: after a release it answers `[Text(partial_text), *then.blocks]` with `then`'s stop_reason.

    `then.delay_s` is ignored: the hang is the delay. Pass your own `release` event to share one between turns.
    """
    rest = then or reply()
    head: tuple[Block, ...] = (Text(partial_text),) if partial_text else ()
    full = Reply((*head, *rest.blocks), rest.stop_reason, rest.usage, stop_details=rest.stop_details)
    return Hang(full, partial=bool(partial_text), cap_s=cap_s, released=release or threading.Event())


def drop(partial_text: str | None = None) -> Drop:
    """A turn cut off by the network: `drop()` right after `message_start`, `drop("Let me")` after some text."""
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
        """Whether a key was sent: SDK 2.11 sends `api_key` as `Authorization: Bearer`, older ones as `x-api-key`."""
        return not SECRET_HEADERS.isdisjoint(self.headers)

    @property
    def model(self) -> str | None:
        return self.body.get("model")

    @property
    def system(self) -> str | list[JsonObject] | None:
        return self.body.get("system")

    @property
    def system_text(self) -> str:
        """The system prompt as one string, whether it was sent as a string or as text blocks."""
        system = self.system
        if isinstance(system, list):
            return "".join(block.get("text", "") for block in system)
        return system or ""

    @property
    def messages(self) -> list[JsonObject]:
        return self.body.get("messages") or []

    @property
    def tools(self) -> list[JsonObject]:
        return self.body.get("tools") or []

    @property
    def tool_names(self) -> list[str]:
        return [tool.get("name", "") for tool in self.tools]

    @property
    def stream(self) -> bool:
        return self.body.get("stream") is True

    @property
    def max_tokens(self) -> int | None:
        return self.body.get("max_tokens")

    def tool_results(self) -> dict[str, JsonObject]:
        """The `tool_result` blocks of the last message, by `tool_use_id`."""
        if not self.messages:
            return {}
        return {b["tool_use_id"]: b for b in _blocks(self.messages[-1]) if b.get("type") == "tool_result"}


# --- validation ----------------------------------------------------------------------------------------------


def conversation_problems(body: JsonObject, *, needs_max_tokens: bool = True) -> list[str]:
    """What the real API would reject in a request body (a cheap subset), as messages naming the place."""
    problems: list[str] = []
    if not isinstance(body.get("model"), str) or not body["model"]:
        problems.append("model: Field required")
    max_tokens = body.get("max_tokens")
    if needs_max_tokens and (not isinstance(max_tokens, int) or max_tokens < 1):
        problems.append(f"max_tokens: must be a positive integer, got {max_tokens!r}")
    if "stream" in body and not isinstance(body["stream"], bool):
        problems.append(f"stream: must be a boolean, got {body['stream']!r}")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return [*problems, "messages: at least one message is required"]
    shape = _shape_problems(messages)
    if shape:
        return problems + shape
    return problems + _role_problems(messages) + _tool_problems(messages) + _tool_definition_problems(body)


def _blocks(message: JsonObject) -> list[JsonObject]:
    content = message.get("content")
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return [b for b in content if isinstance(b, dict)] if isinstance(content, list) else []


def _shape_problems(messages: list[Any]) -> list[str]:
    problems: list[str] = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
            problems.append(f"messages.{i}: must be an object with role 'user' or 'assistant'")
        elif not isinstance(message.get("content"), str | list):
            problems.append(f"messages.{i}.content: must be a string or a list of content blocks")
    return problems


def _role_problems(messages: list[JsonObject]) -> list[str]:
    problems: list[str] = []
    if messages[0]["role"] != "user":
        problems.append("messages.0: the first message must use the 'user' role")
    for i in range(1, len(messages)):
        if messages[i]["role"] == messages[i - 1]["role"]:
            role = messages[i]["role"]
            problems.append(
                f"messages.{i}: roles must alternate, but messages.{i - 1} and messages.{i} are both {role!r}"
            )
    last = len(messages) - 1
    for i, message in enumerate(messages):
        blocks = _blocks(message)
        if not blocks and not (i == last and message["role"] == "assistant"):
            problems.append(f"messages.{i}: all messages must have non-empty content except the final assistant one")
        for j, block in enumerate(blocks):
            if block.get("type") == "text" and not block.get("text"):
                problems.append(f"messages.{i}.content.{j}: text content blocks must be non-empty")
    return problems


def _tool_problems(messages: list[JsonObject]) -> list[str]:
    problems: list[str] = []
    seen: set[str] = set()
    for i, message in enumerate(messages):
        blocks = _blocks(message)
        uses = [b.get("id") for b in blocks if b.get("type") == "tool_use"]
        problems += [f"messages.{i}: `tool_use` ids must be unique, {u!r} repeats" for u in uses if u in seen]
        seen.update(u for u in uses if isinstance(u, str))
        if message["role"] == "user":
            previous = messages[i - 1] if i > 0 and messages[i - 1]["role"] == "assistant" else None
            problems += _result_problems(i, blocks, previous)
        if uses and message["role"] == "assistant":
            following = messages[i + 1] if i + 1 < len(messages) and messages[i + 1]["role"] == "user" else None
            answered = [b.get("tool_use_id") for b in _blocks(following or {}) if b.get("type") == "tool_result"]
            missing = [u for u in uses if u not in answered]
            if missing:
                problems.append(
                    f"messages.{i}: `tool_use` ids were found without `tool_result` blocks immediately after: "
                    f"{', '.join(map(str, missing))}. Each `tool_use` block must have a corresponding "
                    "`tool_result` block in the next message."
                )
    return problems


def _result_problems(i: int, blocks: list[JsonObject], previous: JsonObject | None) -> list[str]:
    asked = {b.get("id") for b in _blocks(previous or {}) if b.get("type") == "tool_use"}
    kinds = [b.get("type") for b in blocks]
    results = [b.get("tool_use_id") for b in blocks if b.get("type") == "tool_result"]
    problems = [
        f"messages.{i}: unexpected `tool_use_id` found in `tool_result` blocks: {r!r}. Each `tool_result` block "
        "must have a corresponding `tool_use` block in the previous message."
        for r in results
        if r not in asked
    ]
    problems += [
        f"messages.{i}: `tool_result` for {r!r} appears more than once"
        for r in dict.fromkeys(results)
        if results.count(r) > 1
    ]
    if results and kinds[: len(results)] != ["tool_result"] * len(results):
        problems.append(f"messages.{i}: `tool_result` blocks must come first in the content, before any other block")
    return problems


def _tool_definition_problems(body: JsonObject) -> list[str]:
    tools = body.get("tools") or []
    if not isinstance(tools, list):
        return ["tools: must be a list"]
    problems: list[str] = []
    names: list[Any] = [t.get("name") for t in tools if isinstance(t, dict)]
    problems += [f"tools: tool names must be unique, {n!r} repeats" for n in dict.fromkeys(names) if names.count(n) > 1]
    for i, tool in enumerate(tools):
        custom = isinstance(tool, dict) and tool.get("type") in (None, "custom")
        if custom and (not tool.get("name") or not isinstance(tool.get("input_schema"), dict)):
            problems.append(f"tools.{i}: a custom tool needs a `name` and an `input_schema` object")
    return problems


# --- wire format -----------------------------------------------------------------------------------------------


def _chunks(value: str, parts: int = 3) -> list[str]:
    """Splits a string so that the client has to reassemble it, as it does with the real API's deltas."""
    size = max(1, -(-len(value) // parts))
    return [value[i : i + size] for i in range(0, len(value), size)] or [""]


def _block_json(block: Block) -> JsonObject:
    match block:
        case Text():
            return {"type": "text", "text": block.text}
        case ToolUse():
            return {"type": "tool_use", "id": block.id, "name": block.name, "input": block.input}
        case Thinking():
            return {"type": "thinking", "thinking": block.thinking, "signature": block.signature}


def _usage_json(usage: Usage) -> JsonObject:
    return {
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "cache_read_input_tokens": usage.cache_read_input_tokens,
        "cache_creation_input_tokens": usage.cache_creation_input_tokens,
    }


def message_json(answer: Reply, *, model: str, message_id: str) -> JsonObject:
    """The full Message a non-streamed request gets."""
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [_block_json(b) for b in answer.blocks],
        "stop_reason": answer.stop_reason,
        "stop_sequence": None,
        "stop_details": answer.stop_details,
        "usage": _usage_json(answer.usage),
    }


def _block_events(index: int, block: Block) -> list[JsonObject]:
    match block:
        case Text():
            start: JsonObject = {"type": "text", "text": ""}
            deltas = [{"type": "text_delta", "text": c} for c in _chunks(block.text)]
        case ToolUse():
            start = {"type": "tool_use", "id": block.id, "name": block.name, "input": {}}
            pieces = ["", *_chunks(json.dumps(block.input))]  # the API opens with an empty partial_json
            deltas = [{"type": "input_json_delta", "partial_json": p} for p in pieces]
        case Thinking():
            start = {"type": "thinking", "thinking": "", "signature": ""}
            deltas = [{"type": "thinking_delta", "thinking": c} for c in _chunks(block.thinking)]
            deltas.append({"type": "signature_delta", "signature": block.signature})
    return [
        {"type": "content_block_start", "index": index, "content_block": start},
        *({"type": "content_block_delta", "index": index, "delta": d} for d in deltas),
        {"type": "content_block_stop", "index": index},
    ]


def stream_events(answer: Reply, *, model: str, message_id: str) -> list[JsonObject]:
    """The SSE payloads of a streamed answer, in order; each payload's `type` is also its event name."""
    start = message_json(answer, model=model, message_id=message_id) | {"content": [], "stop_reason": None}
    start["stop_details"] = None
    start["usage"] = _usage_json(answer.usage) | {"output_tokens": min(1, answer.usage.output_tokens)}
    events: list[JsonObject] = [{"type": "message_start", "message": start}, {"type": "ping"}]
    for index, block in enumerate(answer.blocks):
        events += _block_events(index, block)
    delta = {"stop_reason": answer.stop_reason, "stop_sequence": None, "stop_details": answer.stop_details}
    events.append({"type": "message_delta", "delta": delta, "usage": _usage_json(answer.usage)})
    events.append({"type": "message_stop"})
    return events


def error_json(kind: str, message: str) -> JsonObject:
    return {"type": "error", "error": {"type": kind, "message": message}}


def _pause_index(events: list[JsonObject], partial: bool) -> int:
    """Where a hang stops: after the partial text block's deltas, or right after message_start and ping."""
    if not partial:
        return 2
    return next(i for i, e in enumerate(events) if e["type"] == "content_block_stop")


# --- HTTP ------------------------------------------------------------------------------------------------------


class _Exchange(Exchange):
    request_id_header = "request-id"

    def send_events(self, events: list[JsonObject]) -> None:
        """Each event as its own frame, named by its `type`."""
        for event in events:
            self.send_frame(json.dumps(event), event=event["type"])


class ModelServer(ScriptedServer[RecordedRequest, Answer]):
    """The scripted Messages API, serving on 127.0.0.1 in a background thread while the context is open.

    Example:
        with ModelServer() as server:
            server.enqueue(  # a tool call, then an answer built from the conversation
                reply(tool_use("bash", {"command": "ls"})), lambda request: reply(repr(request.tool_results()))
            )
            client = anthropic.Anthropic(base_url=server.base_url, api_key="test-key", max_retries=0)
            ...
            assert server.violations == []
    """

    _name = "model server"
    _secret_headers = SECRET_HEADERS
    _not_json = "request body is not valid JSON"
    _not_an_object = "request body must be a JSON object"

    def __init__(self, *turns: Turn) -> None:
        super().__init__(turns, RecordedRequest)

    # --- serving, on the handler threads ---

    @override
    def _serve(self, handler: Handler) -> None:
        exchange = _Exchange(handler)
        request, problem = self._record(handler)
        if problem is not None:
            self._violate(request, problem)
            exchange.send_json(400, error_json("invalid_request_error", problem))
        elif request.method == "POST" and request.path == "/v1/messages":
            self._answer_messages(request, exchange)
        elif request.method == "POST" and request.path == "/v1/messages/count_tokens":
            self._answer_count_tokens(request, exchange)
        elif request.method == "GET" and request.path == "/v1/models":  # what `doctor` asks
            info = {"type": "model", "id": "claude-test-model", "display_name": "claude-test-model"}
            page = {"data": [info | {"created_at": "2025-01-01T00:00:00Z"}], "has_more": False}
            exchange.send_json(200, page | {"first_id": "claude-test-model", "last_id": "claude-test-model"})
        elif request.method == "GET" and request.path.startswith("/v1/models/"):
            model_id = request.path.removeprefix("/v1/models/")
            info = {"type": "model", "id": model_id, "display_name": model_id, "created_at": "2025-01-01T00:00:00Z"}
            exchange.send_json(200, info | {"lifecycle": "active"})
        else:
            message = f"{request.method} {request.path} is not served by the scripted model"
            self._violate(request, message)
            exchange.send_json(404, error_json("not_found_error", message))

    def _answer_count_tokens(self, request: RecordedRequest, exchange: _Exchange) -> None:
        problems = conversation_problems(request.body, needs_max_tokens=False)
        if problems:
            self._violate(request, "; ".join(problems))
            exchange.send_json(400, error_json("invalid_request_error", "; ".join(problems)))
            return
        parts = (request.body.get(k) for k in ("system", "messages", "tools"))
        exchange.send_json(200, {"input_tokens": sum(len(json.dumps(p)) for p in parts if p) // 4})

    def _answer_messages(self, request: RecordedRequest, exchange: _Exchange) -> None:
        problems = conversation_problems(request.body)
        if problems:
            self._violate(request, "; ".join(problems))
            exchange.send_json(400, error_json("invalid_request_error", "; ".join(problems)))
            return
        answer = self._next_answer(request)
        if isinstance(answer, ErrorReply):
            self._send_error(request, answer, exchange)
        elif isinstance(answer, Hang):
            self._send_hang(request, answer, exchange)
        elif isinstance(answer, Drop):
            self._send_drop(request, answer, exchange)
        else:
            if answer.delay_s and self._closing.wait(answer.delay_s):
                return
            self._send_reply(request, answer, exchange)

    @override
    def _server_error(self, message: str) -> ErrorReply:
        return ErrorReply(500, "api_error", message, should_retry=False)

    def _send_reply(self, request: RecordedRequest, answer: Reply, exchange: _Exchange) -> None:
        message_id = f"msg_{secrets.token_hex(12)}"
        if not request.stream:
            exchange.send_json(200, message_json(answer, model=str(request.model), message_id=message_id))
            return
        exchange.start_stream()
        exchange.send_events(stream_events(answer, model=str(request.model), message_id=message_id))
        exchange.end_stream()

    def _send_error(self, request: RecordedRequest, answer: ErrorReply, exchange: _Exchange) -> None:
        if not (answer.in_stream and request.stream):
            exchange.send_error(answer, error_json(answer.type, answer.message))
            return
        events = stream_events(reply(), model=str(request.model), message_id=f"msg_{secrets.token_hex(12)}")
        exchange.start_stream()
        exchange.send_events([*events[:2], error_json(answer.type, answer.message)])
        exchange.end_stream()

    def _send_drop(self, request: RecordedRequest, answer: Drop, exchange: _Exchange) -> None:
        if request.stream:
            head = reply(answer.partial_text) if answer.partial_text else reply()
            events = stream_events(head, model=str(request.model), message_id=f"msg_{secrets.token_hex(12)}")
            cut = next(i for i, e in enumerate(events) if e["type"] in ("content_block_stop", "message_delta"))
            exchange.start_stream()
            exchange.send_events(events[:cut])
        exchange.drop()

    def _send_hang(self, request: RecordedRequest, job: Hang, exchange: _Exchange) -> None:
        events = stream_events(job.reply, model=str(request.model), message_id=f"msg_{secrets.token_hex(12)}")
        pause = _pause_index(events, job.partial)
        if request.stream:
            exchange.start_stream()
            exchange.send_events(events[:pause])
        outcome = exchange.wait(job, self._closing)
        if outcome == "capped":
            self._violate(request, f"a hang reached its {job.cap_s} s cap without a release or a client hang-up")
            capped = self._server_error("the scripted hang reached its cap")
            if request.stream:
                exchange.send_events([error_json(capped.type, capped.message)])
                exchange.end_stream()
            else:
                exchange.send_error(capped, error_json(capped.type, capped.message))
        elif outcome == "released" and request.stream:
            exchange.send_events(events[pause:])
            exchange.end_stream()
        elif outcome == "released":
            self._send_reply(request, job.reply, exchange)
        else:
            exchange.handler.close_connection = True
