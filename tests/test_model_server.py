"""The scripted model server, driven by the real `anthropic` SDK: the double must speak the wire format the SDK
parses, or every test built on it proves nothing."""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anthropic
import anyio
import httpx2
import pytest
from anthropic.types import MessageParam, TextBlock, TextBlockParam, ThinkingBlock, ToolParam, ToolUseBlock
from model_server import (
    Hang,
    ModelServer,
    RecordedRequest,
    Usage,
    conversation_problems,
    drop,
    error,
    hang,
    reply,
    thinking,
    tool_use,
)

MODEL = "claude-test-model"
HELLO: list[MessageParam] = [{"role": "user", "content": "hello"}]
BASH: ToolParam = {
    "name": "bash",
    "description": "Runs a command.",
    "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}},
}


@pytest.fixture
def model_server() -> Iterator[ModelServer]:
    with ModelServer() as server:
        yield server


@pytest.fixture
def sdk(model_server: ModelServer) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=model_server.base_url, api_key="test-key", max_retries=0) as client:
        yield client


@pytest.fixture
async def async_sdk(model_server: ModelServer) -> AsyncIterator[anthropic.AsyncAnthropic]:
    async with anthropic.AsyncAnthropic(base_url=model_server.base_url, api_key="test-key", max_retries=0) as client:
        yield client


def post_raw(server: ModelServer, body: dict[str, Any]) -> tuple[int, str, str]:
    """POSTs without the SDK, to see the bytes on the wire; returns status, content type and decoded body."""
    host, port = server.base_url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        connection.request("POST", "/v1/messages", json.dumps(body), {"content-type": "application/json"})
        response = connection.getresponse()
        return response.status, response.getheader("content-type", ""), response.read().decode()
    finally:
        connection.close()


def ask(sdk: anthropic.Anthropic, *, streamed: bool) -> None:
    """One request for a hello, streamed or not, read to the end."""
    if streamed:
        with sdk.messages.stream(model=MODEL, max_tokens=64, messages=HELLO) as stream:
            stream.get_final_message()
    else:
        sdk.messages.create(model=MODEL, max_tokens=64, messages=HELLO)


def release_once_started(stalled: Hang) -> None:
    stalled.wait_started()
    stalled.release()


def close_once_started(server: ModelServer, stalled: Hang) -> None:
    stalled.wait_started()
    server.close()


# --- answers ---------------------------------------------------------------------------------------------------


def test_a_plain_request_gets_the_scripted_message_with_its_usage(
    model_server: ModelServer, sdk: anthropic.Anthropic
) -> None:
    model_server.enqueue(reply("Hello there.", usage=Usage(input_tokens=12, output_tokens=3)))

    message = sdk.messages.create(model=MODEL, max_tokens=64, messages=HELLO)

    assert [(b.type, getattr(b, "text", None)) for b in message.content] == [("text", "Hello there.")]
    assert (message.model, message.role, message.stop_reason) == (MODEL, "assistant", "end_turn")
    assert message.id.startswith("msg_")
    assert (message.usage.input_tokens, message.usage.output_tokens) == (12, 3)
    assert model_server.violations == []


def test_a_stream_arrives_as_several_text_deltas_and_ends_with_stop_reason_and_usage(
    model_server: ModelServer, sdk: anthropic.Anthropic
) -> None:
    usage = Usage(input_tokens=100, output_tokens=20, cache_read_input_tokens=30, cache_creation_input_tokens=40)
    model_server.enqueue(reply("Streaming works fine.", stop_reason="max_tokens", usage=usage))

    with sdk.messages.stream(model=MODEL, max_tokens=64, messages=HELLO) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()

    assert len(pieces) > 1
    assert "".join(pieces) == "Streaming works fine."
    assert final.stop_reason == "max_tokens"
    assert (
        final.usage.input_tokens,
        final.usage.output_tokens,
        final.usage.cache_read_input_tokens,
        final.usage.cache_creation_input_tokens,
    ) == (100, 20, 30, 40)


def test_a_stream_is_framed_as_named_server_sent_events_in_the_api_order(model_server: ModelServer) -> None:
    model_server.enqueue(reply("Hi."))

    status, content_type, body = post_raw(
        model_server, {"model": MODEL, "max_tokens": 8, "messages": HELLO, "stream": True}
    )

    frames = [frame.split("\n") for frame in body.split("\n\n") if frame]
    names = [event.removeprefix("event: ") for event, _ in frames]
    payloads = [json.loads(data.removeprefix("data: ")) for _, data in frames]
    assert (status, content_type) == (200, "text/event-stream; charset=utf-8")
    assert [p["type"] for p in payloads] == names
    assert names == [
        "message_start",
        "ping",
        "content_block_start",
        *["content_block_delta"] * 3,  # "H", "i", ".": the client must reassemble the text
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert payloads[0]["message"]["stop_reason"] is None
    assert payloads[0]["message"]["content"] == []
    assert payloads[-2]["delta"]["stop_reason"] == "end_turn"


def test_a_streamed_tool_call_is_reassembled_by_the_sdk_into_its_input_dict(
    model_server: ModelServer, sdk: anthropic.Anthropic
) -> None:
    call_input = {"command": "ls -la /tmp", "env": {"LANG": "C.UTF-8"}, "args": [1, None, "é"]}
    model_server.enqueue(reply(thinking("Listing first."), "Let me look.", tool_use("bash", call_input)))

    with sdk.messages.stream(model=MODEL, max_tokens=64, messages=HELLO, tools=[BASH]) as stream:
        final = stream.get_final_message()

    thought, said, call = final.content
    assert isinstance(thought, ThinkingBlock)
    assert isinstance(said, TextBlock)
    assert isinstance(call, ToolUseBlock)
    assert (thought.thinking, said.text, call.name, call.input) == (
        "Listing first.",
        "Let me look.",
        "bash",
        call_input,
    )
    assert thought.signature
    assert call.id.startswith("toolu_")
    assert final.stop_reason == "tool_use"


def test_a_refusal_arrives_with_its_stop_details(model_server: ModelServer, sdk: anthropic.Anthropic) -> None:
    details = {"type": "refusal", "category": "cyber", "explanation": "no"}
    model_server.enqueue(reply("I can't help with that.", stop_reason="refusal", stop_details=details))

    with sdk.messages.stream(model=MODEL, max_tokens=64, messages=HELLO) as stream:
        final = stream.get_final_message()

    assert final.stop_reason == "refusal"
    assert final.stop_details is not None
    assert final.stop_details.category == "cyber"


@pytest.mark.anyio
async def test_a_tool_round_trip_can_be_answered_from_the_conversation(
    model_server: ModelServer, async_sdk: anthropic.AsyncAnthropic
) -> None:
    def echo_the_result(request: RecordedRequest) -> Any:
        (result,) = request.tool_results().values()
        return reply(f"The tool said: {result['content']}")

    model_server.enqueue(reply(tool_use("bash", {"command": "echo hi"}, id="toolu_01")), echo_the_result)
    messages = list(HELLO)

    async with async_sdk.messages.stream(model=MODEL, max_tokens=64, messages=messages, tools=[BASH]) as stream:
        first = await stream.get_final_message()
    messages += [
        {"role": "assistant", "content": first.content},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_01", "content": "hi"}]},
    ]
    async with async_sdk.messages.stream(model=MODEL, max_tokens=64, messages=messages, tools=[BASH]) as stream:
        second = await stream.get_final_text()

    assert second == "The tool said: hi"
    assert model_server.requests[1].messages[1]["content"][0]["input"] == {"command": "echo hi"}
    assert model_server.violations == []
    assert model_server.remaining == 0


# --- errors ----------------------------------------------------------------------------------------------------

STATUS_ERRORS = [
    (400, "invalid_request_error", anthropic.BadRequestError),
    (401, "authentication_error", anthropic.AuthenticationError),
    (404, "not_found_error", anthropic.NotFoundError),
    (429, "rate_limit_error", anthropic.RateLimitError),
    (500, "api_error", anthropic.InternalServerError),
    (529, "overloaded_error", anthropic.OverloadedError),
]


@pytest.mark.parametrize(("status", "kind", "exception"), STATUS_ERRORS)
@pytest.mark.parametrize("streamed", [False, True], ids=["create", "stream"])
def test_an_error_status_surfaces_as_the_sdk_exception_for_it(
    model_server: ModelServer,
    sdk: anthropic.Anthropic,
    status: int,
    kind: str,
    exception: type[anthropic.APIStatusError],
    streamed: bool,
) -> None:
    model_server.enqueue(error(status, kind, "scripted failure"))

    with pytest.raises(anthropic.APIStatusError) as raised:
        ask(sdk, streamed=streamed)

    assert type(raised.value) is exception
    assert (raised.value.status_code, raised.value.type) == (status, kind)
    assert raised.value.body == {"type": "error", "error": {"type": kind, "message": "scripted failure"}}


def test_an_overloaded_error_is_an_internal_server_error_to_the_sdk() -> None:
    assert issubclass(anthropic.OverloadedError, anthropic.InternalServerError)


def test_a_rate_limit_carries_its_retry_after_header(model_server: ModelServer, sdk: anthropic.Anthropic) -> None:
    model_server.enqueue(error(429, "rate_limit_error", retry_after=7))

    with pytest.raises(anthropic.RateLimitError) as raised:
        sdk.messages.create(model=MODEL, max_tokens=64, messages=HELLO)

    assert raised.value.response.headers["retry-after"] == "7"


def test_an_error_inside_a_stream_is_a_plain_api_status_error_with_status_200(
    model_server: ModelServer, sdk: anthropic.Anthropic
) -> None:
    """The SDK maps an `event: error` by the HTTP status, which was 200: neither 529 nor a subclass."""
    model_server.enqueue(error(529, "overloaded_error", in_stream=True))

    with (
        pytest.raises(anthropic.APIStatusError) as raised,
        sdk.messages.stream(model=MODEL, max_tokens=64, messages=HELLO) as stream,
    ):
        stream.get_final_message()

    assert type(raised.value) is anthropic.APIStatusError
    assert (raised.value.status_code, raised.value.type) == (200, "overloaded_error")


def test_an_exhausted_script_answers_500_once_and_is_recorded(model_server: ModelServer) -> None:
    """`x-should-retry: false` keeps a retrying client from hiding the exhausted script."""
    with (
        anthropic.Anthropic(base_url=model_server.base_url, api_key="test-key", max_retries=2) as retrying,
        pytest.raises(anthropic.InternalServerError, match="script ran out"),
    ):
        retrying.messages.create(model=MODEL, max_tokens=64, messages=HELLO)

    assert len(model_server.requests) == 1
    assert len(model_server.violations) == 1
    assert "script ran out" in model_server.violations[0]


def test_a_failing_turn_callable_answers_500_and_is_recorded(
    model_server: ModelServer, sdk: anthropic.Anthropic
) -> None:
    def broken(request: RecordedRequest) -> Any:
        raise KeyError("no such tool result")

    model_server.enqueue(broken)

    with pytest.raises(anthropic.InternalServerError, match="no such tool result"):
        sdk.messages.create(model=MODEL, max_tokens=64, messages=HELLO)

    assert "KeyError" in model_server.violations[0]


def test_a_delayed_reply_can_outlast_the_client_timeout(model_server: ModelServer, sdk: anthropic.Anthropic) -> None:
    model_server.enqueue(reply("too late", delay_s=30))

    with pytest.raises(anthropic.APITimeoutError):
        sdk.with_options(timeout=0.2).messages.create(model=MODEL, max_tokens=64, messages=HELLO)


def test_an_unknown_path_is_not_found_and_recorded(model_server: ModelServer, sdk: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.NotFoundError):  # `GET /v1/models` is served now: `doctor` asks it
        sdk.beta.files.list()

    assert model_server.violations == ["request #0 (GET /v1/files): GET /v1/files is not served by the scripted model"]


# --- drops -----------------------------------------------------------------------------------------------------


def test_a_dropped_request_gets_no_response_and_the_sdk_raises_a_connection_error(
    model_server: ModelServer, sdk: anthropic.Anthropic
) -> None:
    model_server.enqueue(drop(), reply("still serving"))

    with pytest.raises(anthropic.APIConnectionError) as raised:
        sdk.messages.create(model=MODEL, max_tokens=64, messages=HELLO)
    after = sdk.messages.create(model=MODEL, max_tokens=64, messages=HELLO)

    assert isinstance(raised.value.__cause__, httpx2.RemoteProtocolError)
    assert "without sending a response" in str(raised.value.__cause__)
    assert [getattr(b, "text", None) for b in after.content] == ["still serving"]
    assert model_server.violations == []


def read_stream_into(sdk: anthropic.Anthropic, seen: list[str], texts: list[str]) -> None:
    """Streams a hello, noting each event's type and each text delta as it arrives, until the stream ends."""
    with sdk.messages.stream(model=MODEL, max_tokens=64, messages=HELLO) as stream:
        for event in stream:
            seen.append(event.type)
            if event.type == "text":
                texts.append(event.text)


@pytest.mark.parametrize(
    ("partial_text", "expected_events"),
    [
        (None, ["message_start"]),
        ("Let me", ["message_start", "content_block_start", *["content_block_delta", "text"] * 3]),
    ],
    ids=["after-message-start", "mid-text"],
)
def test_a_dropped_stream_ends_without_message_stop_in_a_transport_error_the_sdk_does_not_wrap(
    model_server: ModelServer, sdk: anthropic.Anthropic, partial_text: str | None, expected_events: list[str]
) -> None:
    """The SDK wraps only the request in `APIConnectionError`; a body that breaks off raises httpx's own error."""
    model_server.enqueue(drop(partial_text))
    seen: list[str] = []
    texts: list[str] = []

    with pytest.raises(httpx2.RemoteProtocolError, match="incomplete chunked read") as raised:
        read_stream_into(sdk, seen, texts)

    assert not isinstance(raised.value, anthropic.AnthropicError)
    assert seen == expected_events
    assert "".join(texts) == (partial_text or "")
    assert model_server.violations == []


# --- request checks --------------------------------------------------------------------------------------------


def test_a_tool_use_without_its_tool_result_is_rejected_recorded_and_leaves_the_script(
    model_server: ModelServer, sdk: anthropic.Anthropic
) -> None:
    model_server.enqueue(reply("unused"))
    messages: list[MessageParam] = [
        *HELLO,
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_9", "name": "bash", "input": {}}]},
        {"role": "user", "content": "what happened?"},
    ]

    with pytest.raises(anthropic.BadRequestError, match="toolu_9") as raised:
        sdk.messages.create(model=MODEL, max_tokens=64, messages=messages)

    assert raised.value.type == "invalid_request_error"
    assert len(model_server.violations) == 1
    assert "toolu_9" in model_server.violations[0]
    assert model_server.remaining == 1


def _use(tool_use_id: str) -> dict[str, Any]:
    return {"role": "assistant", "content": [{"type": "tool_use", "id": tool_use_id, "name": "bash", "input": {}}]}


def _results(*tool_use_ids: str, text_first: bool = False) -> dict[str, Any]:
    blocks: list[dict[str, Any]] = [{"type": "tool_result", "tool_use_id": i, "content": "ok"} for i in tool_use_ids]
    if text_first:
        blocks.insert(0, {"type": "text", "text": "here:"})
    return {"role": "user", "content": blocks}


USER = {"role": "user", "content": "go"}
ASSISTANT = {"role": "assistant", "content": "ok"}
BAD_CONVERSATIONS = {
    "first message from the assistant": ([ASSISTANT, USER], "first message"),
    "two user messages in a row": ([USER, USER], "roles must alternate"),
    "a tool_use left unanswered": ([USER, _use("toolu_1"), USER], "without `tool_result`"),
    "a tool_use answered twice": ([USER, _use("toolu_1"), _results("toolu_1", "toolu_1")], "more than once"),
    "a tool_result for an unknown id": ([USER, _use("toolu_1"), _results("toolu_1", "toolu_2")], "unexpected"),
    "a tool_result after text": ([USER, _use("toolu_1"), _results("toolu_1", text_first=True)], "come first"),
    "a tool_use id reused": (
        [USER, _use("toolu_1"), _results("toolu_1"), _use("toolu_1"), _results("toolu_1")],
        "must be unique",
    ),
    "an empty text block": ([{"role": "user", "content": [{"type": "text", "text": ""}]}], "non-empty"),
    "an empty user message": ([{"role": "user", "content": []}], "non-empty content"),
    "no messages": ([], "at least one message"),
}


@pytest.mark.parametrize(("messages", "expected"), BAD_CONVERSATIONS.values(), ids=BAD_CONVERSATIONS.keys())
def test_a_bad_conversation_is_named_by_the_checks(messages: list[dict[str, Any]], expected: str) -> None:
    problems = conversation_problems({"model": MODEL, "max_tokens": 8, "messages": messages})

    assert len(problems) == 1
    assert expected in problems[0]


def test_a_well_formed_tool_conversation_passes_the_checks() -> None:
    messages = [USER, _use("toolu_1"), _results("toolu_1"), {"role": "assistant", "content": []}]
    body = {"model": MODEL, "max_tokens": 8, "messages": messages, "tools": [BASH], "stream": True}

    assert conversation_problems(body) == []


def test_bad_request_fields_and_tool_definitions_are_named_by_the_checks() -> None:
    tools = [BASH, BASH, {"name": "no_schema"}]
    body = {"model": "", "max_tokens": 0, "messages": [USER], "tools": tools, "stream": "yes"}

    problems = conversation_problems(body)

    assert [p.split(":")[0] for p in problems] == ["model", "max_tokens", "stream", "tools", "tools.2"]


# --- hangs -----------------------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_hang_holds_the_stream_after_its_partial_text_until_the_test_releases_it(
    model_server: ModelServer, async_sdk: anthropic.AsyncAnthropic
) -> None:
    stalled = hang("Working", then=reply(" done."))
    model_server.enqueue(stalled)
    pieces: list[str] = []
    partial_arrived = anyio.Event()

    async def read() -> None:
        async with async_sdk.messages.stream(model=MODEL, max_tokens=64, messages=HELLO) as stream:
            async for piece in stream.text_stream:
                pieces.append(piece)
                if "".join(pieces) == "Working":
                    partial_arrived.set()
            final = await stream.get_final_message()
        assert [b.text for b in final.content if b.type == "text"] == ["Working", " done."]

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(read)
            await partial_arrived.wait()
            assert stalled.outcome is None
            stalled.release()

    assert stalled.outcome == "released"


def test_a_hang_ends_when_the_client_hangs_up(model_server: ModelServer, sdk: anthropic.Anthropic) -> None:
    stalled = hang("Working")
    model_server.enqueue(stalled)

    with sdk.messages.stream(model=MODEL, max_tokens=64, messages=HELLO) as stream:
        assert next(iter(stream.text_stream))

    assert stalled.wait_ended() == "disconnected"


@pytest.mark.anyio
async def test_a_hang_ends_when_the_clients_task_is_cancelled(
    model_server: ModelServer, async_sdk: anthropic.AsyncAnthropic
) -> None:
    stalled = hang()
    model_server.enqueue(stalled)

    async def read() -> None:
        async with async_sdk.messages.stream(model=MODEL, max_tokens=64, messages=HELLO) as stream:
            await stream.get_final_message()

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(read)
            await anyio.to_thread.run_sync(stalled.wait_started)
            tg.cancel_scope.cancel()
        assert await anyio.to_thread.run_sync(stalled.wait_ended) == "disconnected"


def test_a_non_streamed_hang_answers_the_whole_reply_once_released(
    model_server: ModelServer, sdk: anthropic.Anthropic
) -> None:
    stalled = hang("Partial", then=reply("rest"))
    model_server.enqueue(stalled)
    threading.Thread(target=release_once_started, args=(stalled,), daemon=True).start()

    message = sdk.messages.create(model=MODEL, max_tokens=64, messages=HELLO)

    assert [b.text for b in message.content if b.type == "text"] == ["Partial", "rest"]


def test_a_hang_never_released_hits_its_cap_and_is_recorded(
    model_server: ModelServer, sdk: anthropic.Anthropic
) -> None:
    stalled = hang(cap_s=0.1)
    model_server.enqueue(stalled)

    with pytest.raises(anthropic.InternalServerError, match="cap"):
        sdk.messages.create(model=MODEL, max_tokens=64, messages=HELLO)

    assert stalled.outcome == "capped"
    assert "cap" in model_server.violations[0]


def test_closing_the_server_ends_a_hang_and_the_stream_breaks_with_a_transport_error(sdk: anthropic.Anthropic) -> None:
    """The SDK does not wrap errors raised while reading a stream: a dropped connection is `httpx2`'s own."""
    with ModelServer() as server:
        stalled = hang("Working")
        server.enqueue(stalled)
        threading.Thread(target=close_once_started, args=(server, stalled), daemon=True).start()
        client = sdk.with_options(base_url=server.base_url)

        with (
            pytest.raises(httpx2.RemoteProtocolError),
            client.messages.stream(model=MODEL, max_tokens=64, messages=HELLO) as stream,
        ):
            stream.get_final_message()

    assert stalled.outcome == "shutdown"


# --- recording and side endpoints ------------------------------------------------------------------------------


def test_a_recorded_request_shows_system_tools_and_stream_flag_but_not_the_key(
    model_server: ModelServer, sdk: anthropic.Anthropic
) -> None:
    model_server.enqueue(reply("one"), reply("two"))
    system: list[TextBlockParam] = [{"type": "text", "text": "You are terse.", "cache_control": {"type": "ephemeral"}}]

    sdk.messages.create(model=MODEL, max_tokens=64, messages=HELLO, system="Be brief.")
    with sdk.messages.stream(model=MODEL, max_tokens=32, messages=HELLO, system=system, tools=[BASH]) as stream:
        stream.get_final_message()

    plain, streamed = model_server.wait_for_requests(2)
    assert (plain.path, plain.model, plain.stream, plain.max_tokens) == ("/v1/messages", MODEL, False, 64)
    assert (plain.system_text, plain.tool_names) == ("Be brief.", [])
    assert (streamed.stream, streamed.max_tokens, streamed.system_text) == (True, 32, "You are terse.")
    assert streamed.tools == [BASH]
    assert streamed.has_credentials
    assert "test-key" not in json.dumps([r.headers for r in model_server.requests])
    assert streamed.headers["anthropic-version"]


def test_counting_tokens_and_looking_up_a_model_leave_the_script_alone(
    model_server: ModelServer, sdk: anthropic.Anthropic
) -> None:
    model_server.enqueue(reply("unused"))

    counted = sdk.messages.count_tokens(model=MODEL, messages=HELLO, system="Be brief.")
    info = sdk.models.retrieve(MODEL)

    assert counted.input_tokens > 0
    assert info.id == MODEL
    assert model_server.remaining == 1
    assert model_server.violations == []


def test_waiting_for_requests_that_never_come_raises_with_what_arrived(model_server: ModelServer) -> None:
    with pytest.raises(TimeoutError, match="0 of 1 requests"):
        model_server.wait_for_requests(1, timeout_s=0.05)
