"""The scripted Chat Completions server, driven by the real `openai` SDK: the double must speak the wire format the
SDK parses, and refuse what the real API refuses, or every test built on it proves nothing."""

from __future__ import annotations

import json
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import httpx2
import openai
import pytest
from chat_model_server import (
    ChatModelServer,
    Hang,
    RecordedRequest,
    Usage,
    drop,
    error,
    hang,
    reply,
    tool_call,
)
from chat_request_checks import Problem, chat_request_problems
from openai.types.chat import ChatCompletionMessageParam, ChatCompletionToolParam

MODEL = "gpt-test-model"
HELLO: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hello"}]
BASH: ChatCompletionToolParam = {
    "type": "function",
    "function": {
        "name": "bash",
        "description": "Runs a command.",
        "parameters": {"type": "object", "properties": {"command": {"type": "string"}}},
    },
}


@pytest.fixture
def chat_server() -> Iterator[ChatModelServer]:
    with ChatModelServer() as server:
        yield server


@pytest.fixture
def sdk(chat_server: ChatModelServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=chat_server.base_url, api_key="test-key", max_retries=0) as client:
        yield client


@pytest.fixture
async def async_sdk(chat_server: ChatModelServer) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(base_url=chat_server.base_url, api_key="test-key", max_retries=0) as client:
        yield client


def post_raw(server: ChatModelServer, body: dict[str, Any]) -> httpx2.Response:
    """POSTs without the SDK, to send what it would not and see the bytes on the wire."""
    return httpx2.post(f"{server.base_url}/chat/completions", json=body, timeout=5)


def sse_payloads(body: str) -> list[str]:
    """The `data:` payloads of an event stream, checking that every frame is exactly one `data:` line."""
    frames = [frame for frame in body.split("\n\n") if frame]
    assert all(frame.startswith("data: ") and "\n" not in frame for frame in frames), frames
    return [frame.removeprefix("data: ") for frame in frames]


def ask(sdk: openai.OpenAI, *, streamed: bool) -> None:
    """One request for a hello, streamed or not, read to the end."""
    if streamed:
        for _ in sdk.chat.completions.create(model=MODEL, messages=HELLO, stream=True):
            pass
    else:
        sdk.chat.completions.create(model=MODEL, messages=HELLO)


def read_texts_into(sdk: openai.OpenAI, texts: list[str]) -> None:
    """Streams a hello, noting each chunk's text as it arrives, until the stream ends."""
    for chunk in sdk.chat.completions.create(model=MODEL, messages=HELLO, stream=True):
        texts.append(chunk.choices[0].delta.content or "")


def release_once_started(stalled: Hang) -> None:
    stalled.wait_started()
    stalled.release()


def close_once_started(server: ChatModelServer, stalled: Hang) -> None:
    stalled.wait_started()
    server.close()


# --- answers ---------------------------------------------------------------------------------------------------


def test_a_plain_request_gets_the_scripted_completion_with_its_usage(
    chat_server: ChatModelServer, sdk: openai.OpenAI
) -> None:
    chat_server.enqueue(reply("Hello there.", usage=Usage(prompt_tokens=12, completion_tokens=3, cached_tokens=8)))

    completion = sdk.chat.completions.create(model=MODEL, messages=HELLO)

    (choice,) = completion.choices
    assert (choice.message.role, choice.message.content, choice.finish_reason) == ("assistant", "Hello there.", "stop")
    assert (completion.object, completion.model) == ("chat.completion", MODEL)
    assert completion.id.startswith("chatcmpl-")
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens, completion.usage.total_tokens) == (
        12,
        3,
        15,
    )
    assert completion.usage.prompt_tokens_details is not None
    assert completion.usage.prompt_tokens_details.cached_tokens == 8
    assert chat_server.violations == []


def test_a_non_streamed_tool_call_reply_has_null_content_the_calls_and_the_reasoning(
    chat_server: ChatModelServer, sdk: openai.OpenAI
) -> None:
    chat_server.enqueue(reply(tool_call("bash", {"command": "ls"}, id="call_1"), reasoning="Look first."))

    completion = sdk.chat.completions.create(model=MODEL, messages=HELLO, tools=[BASH])

    (choice,) = completion.choices
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    assert choice.message.tool_calls is not None
    (call,) = choice.message.tool_calls
    assert call.type == "function"
    assert (call.id, call.function.name, json.loads(call.function.arguments)) == ("call_1", "bash", {"command": "ls"})
    assert choice.message.model_extra == {"reasoning_content": "Look first."}


def test_a_stream_arrives_as_several_text_deltas_after_a_role_chunk_and_ends_with_finish_reason(
    chat_server: ChatModelServer, sdk: openai.OpenAI
) -> None:
    chat_server.enqueue(reply("Streaming works fine.", finish_reason="length"))

    chunks = list(sdk.chat.completions.create(model=MODEL, messages=HELLO, stream=True))

    deltas = [c.choices[0].delta for c in chunks]
    pieces = [d.content for d in deltas if d.content]
    assert deltas[0].role == "assistant"
    assert len(pieces) >= 3
    assert "".join(pieces) == "Streaming works fine."
    assert [c.choices[0].finish_reason for c in chunks] == [None] * (len(chunks) - 1) + ["length"]
    assert {c.id for c in chunks} == {chunks[0].id}
    assert all(c.usage is None for c in chunks)


def test_a_stream_asked_for_usage_ends_with_a_choiceless_usage_chunk(
    chat_server: ChatModelServer, sdk: openai.OpenAI
) -> None:
    chat_server.enqueue(reply("Hi.", usage=Usage(prompt_tokens=100, completion_tokens=20, cached_tokens=30)))

    chunks = list(
        sdk.chat.completions.create(model=MODEL, messages=HELLO, stream=True, stream_options={"include_usage": True})
    )

    *content, last = chunks
    assert last.choices == []
    assert last.usage is not None
    assert (last.usage.prompt_tokens, last.usage.completion_tokens, last.usage.total_tokens) == (100, 20, 120)
    assert last.usage.prompt_tokens_details is not None
    assert last.usage.prompt_tokens_details.cached_tokens == 30
    assert all(c.usage is None for c in content)
    assert content[-1].choices[0].finish_reason == "stop"


def test_streamed_tool_calls_are_reassembled_by_the_sdks_stream_helper(
    chat_server: ChatModelServer, sdk: openai.OpenAI
) -> None:
    first = {"command": "ls -la /tmp", "env": {"LANG": "C.UTF-8"}, "args": [1, None, "é"]}
    second = {"path": "notes.txt"}
    chat_server.enqueue(
        reply("Let me look.", tool_call("bash", first, id="call_a"), tool_call("read", second, id="call_b"))
    )

    with sdk.chat.completions.stream(model=MODEL, messages=HELLO, tools=[BASH]) as stream:
        final = stream.get_final_completion()

    message = final.choices[0].message
    assert message.content == "Let me look."
    assert message.tool_calls is not None
    calls = [(c.id, c.function.name, json.loads(c.function.arguments)) for c in message.tool_calls]
    assert calls == [("call_a", "bash", first), ("call_b", "read", second)]
    assert final.choices[0].finish_reason == "tool_calls"


@pytest.mark.anyio
async def test_streamed_tool_call_fragments_interleave_and_join_by_index(
    chat_server: ChatModelServer, async_sdk: openai.AsyncOpenAI
) -> None:
    chat_server.enqueue(reply(tool_call("bash", {"command": "echo hi"}), tool_call("bash", {"command": "pwd"})))
    names: dict[int, str] = {}
    fragments: dict[int, list[str]] = {}
    order: list[int] = []

    stream = await async_sdk.chat.completions.create(model=MODEL, messages=HELLO, tools=[BASH], stream=True)
    async for chunk in stream:
        for delta in chunk.choices[0].delta.tool_calls or []:
            order.append(delta.index)
            if delta.id is not None:
                assert delta.function is not None
                assert (delta.type, delta.function.arguments) == ("function", "")
                names[delta.index] = str(delta.function.name)
            else:
                assert delta.function is not None
                assert delta.function.name is None
            fragments.setdefault(delta.index, []).append(str(delta.function.arguments))

    assert names == {0: "bash", 1: "bash"}
    assert [json.loads("".join(fragments[i])) for i in (0, 1)] == [{"command": "echo hi"}, {"command": "pwd"}]
    assert all(len(pieces) >= 4 for pieces in fragments.values())  # the opening "" and three fragments
    assert order[:4] == [0, 1, 0, 1]


def test_a_server_told_not_to_interleave_sends_one_tool_call_after_the_other() -> None:
    with ChatModelServer(interleave_tool_calls=False) as server:
        server.enqueue(reply(tool_call("bash", {"command": "a"}), tool_call("bash", {"command": "b"})))
        body = {"model": MODEL, "messages": HELLO, "tools": [BASH], "stream": True}

        payloads = sse_payloads(post_raw(server, body).text)

    calls = [json.loads(p)["choices"][0]["delta"].get("tool_calls") for p in payloads[:-1]]
    order = [call[0]["index"] for call in calls if call]
    assert order == sorted(order)


def test_a_stream_is_framed_as_one_data_line_per_chunk_and_ends_with_done(chat_server: ChatModelServer) -> None:
    chat_server.enqueue(reply("Hi.", reasoning="hmm"))

    response = post_raw(
        chat_server, {"model": MODEL, "messages": HELLO, "stream": True, "stream_options": {"include_usage": True}}
    )

    payloads = sse_payloads(response.text)
    chunks = [json.loads(p) for p in payloads[:-1]]
    assert (response.status_code, response.headers["content-type"]) == (200, "text/event-stream; charset=utf-8")
    assert payloads[-1] == "[DONE]"
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert [list(c["choices"][0]["delta"]) if c["choices"] else None for c in chunks] == [
        ["role", "content", "refusal"],
        *[["reasoning_content"]] * 3,
        *[["content"]] * 3,  # "H", "i", ".": the client must reassemble the text
        [],
        None,
    ]


def test_reasoning_goes_out_under_the_configured_field() -> None:
    with ChatModelServer(reasoning_field="reasoning") as server:
        server.enqueue(reply("ok", reasoning="Because."))
        with openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0) as client:
            completion = client.chat.completions.create(model=MODEL, messages=HELLO)

    assert completion.choices[0].message.model_extra == {"reasoning": "Because."}


@pytest.mark.anyio
async def test_a_tool_round_trip_can_be_answered_from_the_conversation(
    chat_server: ChatModelServer, async_sdk: openai.AsyncOpenAI
) -> None:
    def echo_the_result(request: RecordedRequest) -> Any:
        (result,) = request.tool_results().values()
        return reply(f"The tool said: {result['content']}")

    chat_server.enqueue(
        reply(tool_call("bash", {"command": "echo hi"}, id="call_01"), reasoning="Run it."), echo_the_result
    )
    messages: list[Any] = list(HELLO)

    async with async_sdk.chat.completions.stream(model=MODEL, messages=messages, tools=[BASH]) as stream:
        first = (await stream.get_final_completion()).choices[0].message
    assert first.tool_calls is not None
    assert (first.model_extra or {}).get("reasoning_content") == "Run it."  # the stream's pieces, joined
    call = first.tool_calls[0]
    assistant: dict[str, Any] = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": call.id, "type": "function", "function": call.function.model_dump(include={"name", "arguments"})}
        ],
        "reasoning_content": "Run it.",  # a compatible server takes its reasoning back
    }
    messages += [assistant, {"role": "tool", "tool_call_id": "call_01", "content": "hi"}]
    second = await async_sdk.chat.completions.create(model=MODEL, messages=messages, tools=[BASH])

    assert second.choices[0].message.content == "The tool said: hi"
    assert list(chat_server.requests[1].tool_results()) == ["call_01"]
    assert chat_server.violations == []
    assert chat_server.remaining == 0


# --- errors ----------------------------------------------------------------------------------------------------

STATUS_ERRORS = [
    (400, openai.BadRequestError),
    (401, openai.AuthenticationError),
    (403, openai.PermissionDeniedError),
    (404, openai.NotFoundError),
    (429, openai.RateLimitError),
    (500, openai.InternalServerError),
    (503, openai.InternalServerError),
]


@pytest.mark.parametrize(("status", "exception"), STATUS_ERRORS)
@pytest.mark.parametrize("streamed", [False, True], ids=["create", "stream"])
def test_an_error_status_surfaces_as_the_sdk_exception_for_it(
    chat_server: ChatModelServer,
    sdk: openai.OpenAI,
    status: int,
    exception: type[openai.APIStatusError],
    streamed: bool,
) -> None:
    chat_server.enqueue(error(status, "scripted_type", "scripted failure", param="model", code="scripted_code"))

    with pytest.raises(openai.APIStatusError) as raised:
        ask(sdk, streamed=streamed)

    assert type(raised.value) is exception
    assert (raised.value.status_code, raised.value.type, raised.value.code, raised.value.param) == (
        status,
        "scripted_type",
        "scripted_code",
        "model",
    )
    assert raised.value.body == {
        "message": "scripted failure",
        "type": "scripted_type",
        "param": "model",
        "code": "scripted_code",
    }


def test_an_error_turn_defaults_to_the_apis_own_type_and_code(chat_server: ChatModelServer, sdk: openai.OpenAI) -> None:
    chat_server.enqueue(error(404), error(500))

    with pytest.raises(openai.NotFoundError) as not_found:
        ask(sdk, streamed=False)
    with pytest.raises(openai.InternalServerError) as failed:
        ask(sdk, streamed=False)

    assert (not_found.value.type, not_found.value.code) == ("invalid_request_error", "model_not_found")
    assert (failed.value.type, failed.value.code) == ("server_error", None)


def test_a_rate_limit_carries_its_retry_after_header(chat_server: ChatModelServer, sdk: openai.OpenAI) -> None:
    chat_server.enqueue(error(429, retry_after=7))

    with pytest.raises(openai.RateLimitError) as raised:
        sdk.chat.completions.create(model=MODEL, messages=HELLO)

    assert raised.value.response.headers["retry-after"] == "7"
    assert raised.value.code == "rate_limit_exceeded"


@pytest.mark.parametrize("partial_text", [None, "Let me"], ids=["after-role", "mid-text"])
def test_an_error_inside_a_stream_raises_from_the_sdks_iterator_after_the_content_before_it(
    chat_server: ChatModelServer, sdk: openai.OpenAI, partial_text: str | None
) -> None:
    """The SDK raises a plain `APIError` (no status: the response was a 200) for a `data: {"error": ...}` chunk."""
    chat_server.enqueue(error(500, message="The model crashed.", in_stream=True, partial_text=partial_text))
    texts: list[str] = []

    with pytest.raises(openai.APIError, match=r"The model crashed\.") as raised:
        read_texts_into(sdk, texts)

    assert type(raised.value) is openai.APIError
    assert raised.value.body == {"message": "The model crashed.", "type": "server_error", "param": None, "code": None}
    assert "".join(texts) == (partial_text or "")


def test_an_exhausted_script_answers_500_once_and_is_recorded(chat_server: ChatModelServer) -> None:
    """`x-should-retry: false` keeps a retrying client from hiding the exhausted script."""
    with (
        openai.OpenAI(base_url=chat_server.base_url, api_key="test-key", max_retries=2) as retrying,
        pytest.raises(openai.InternalServerError, match="script ran out"),
    ):
        retrying.chat.completions.create(model=MODEL, messages=HELLO)

    assert len(chat_server.requests) == 1
    assert len(chat_server.violations) == 1
    assert "script ran out" in chat_server.violations[0]


def test_a_failing_turn_callable_answers_500_and_is_recorded(chat_server: ChatModelServer, sdk: openai.OpenAI) -> None:
    def broken(request: RecordedRequest) -> Any:
        raise KeyError("no such tool result")

    chat_server.enqueue(broken)

    with pytest.raises(openai.InternalServerError, match="no such tool result"):
        sdk.chat.completions.create(model=MODEL, messages=HELLO)

    assert "KeyError" in chat_server.violations[0]


def test_a_delayed_reply_can_outlast_the_client_timeout(chat_server: ChatModelServer, sdk: openai.OpenAI) -> None:
    chat_server.enqueue(reply("too late", delay_s=30))

    with pytest.raises(openai.APITimeoutError):
        sdk.with_options(timeout=0.2).chat.completions.create(model=MODEL, messages=HELLO)


def test_an_unknown_path_is_not_found_and_recorded(chat_server: ChatModelServer, sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError):
        sdk.embeddings.create(model=MODEL, input="hi")

    assert chat_server.violations == [
        "request #0 (POST /v1/embeddings): Invalid URL (POST /v1/embeddings): not served by the scripted model"
    ]


# --- drops -----------------------------------------------------------------------------------------------------


def test_a_dropped_request_gets_no_response_and_the_sdk_raises_a_connection_error(
    chat_server: ChatModelServer, sdk: openai.OpenAI
) -> None:
    chat_server.enqueue(drop(), reply("still serving"))

    with pytest.raises(openai.APIConnectionError) as raised:
        sdk.chat.completions.create(model=MODEL, messages=HELLO)
    after = sdk.chat.completions.create(model=MODEL, messages=HELLO)

    assert isinstance(raised.value.__cause__, httpx2.RemoteProtocolError)
    assert after.choices[0].message.content == "still serving"
    assert chat_server.violations == []


@pytest.mark.parametrize("partial_text", [None, "Let me"], ids=["after-role", "mid-text"])
def test_a_dropped_stream_breaks_the_sdks_iterator_with_a_connection_error(
    chat_server: ChatModelServer, sdk: openai.OpenAI, partial_text: str | None
) -> None:
    """Unlike the anthropic SDK, the openai SDK wraps a body that breaks off in `APIConnectionError`."""
    chat_server.enqueue(drop(partial_text))
    texts: list[str] = []

    with pytest.raises(openai.APIConnectionError) as raised:
        read_texts_into(sdk, texts)

    assert isinstance(raised.value.__cause__, httpx2.RemoteProtocolError)
    assert "".join(texts) == (partial_text or "")
    assert chat_server.violations == []


# --- hangs -----------------------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_hang_holds_the_stream_after_its_partial_text_until_the_test_releases_it(
    chat_server: ChatModelServer, async_sdk: openai.AsyncOpenAI
) -> None:
    stalled = hang("Working", then=reply(" done.", tool_call("bash", {"command": "ls"})))
    chat_server.enqueue(stalled)
    partial_arrived = anyio.Event()

    async def read() -> None:
        text = ""
        async with async_sdk.chat.completions.stream(model=MODEL, messages=HELLO, tools=[BASH]) as stream:
            async for event in stream:
                if event.type == "content.delta":
                    text += event.delta
                    if text == "Working":
                        partial_arrived.set()
            final = (await stream.get_final_completion()).choices[0]
        assert (final.message.content, final.finish_reason) == ("Working done.", "tool_calls")
        assert final.message.tool_calls is not None
        assert final.message.tool_calls[0].function.arguments == '{"command": "ls"}'

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(read)
            await partial_arrived.wait()
            assert stalled.outcome is None
            stalled.release()

    assert stalled.outcome == "released"


def test_a_hang_ends_when_the_client_hangs_up(chat_server: ChatModelServer, sdk: openai.OpenAI) -> None:
    stalled = hang("Working")
    chat_server.enqueue(stalled)

    with sdk.chat.completions.create(model=MODEL, messages=HELLO, stream=True) as stream:
        assert next(iter(stream)).choices[0].delta.role == "assistant"

    assert stalled.wait_ended() == "disconnected"


@pytest.mark.anyio
async def test_a_hang_ends_when_the_clients_task_is_cancelled(
    chat_server: ChatModelServer, async_sdk: openai.AsyncOpenAI
) -> None:
    stalled = hang()
    chat_server.enqueue(stalled)

    async def read() -> None:
        async with async_sdk.chat.completions.stream(model=MODEL, messages=HELLO) as stream:
            await stream.get_final_completion()

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(read)
            await anyio.to_thread.run_sync(stalled.wait_started)
            tg.cancel_scope.cancel()
        assert await anyio.to_thread.run_sync(stalled.wait_ended) == "disconnected"


def test_a_non_streamed_hang_answers_the_whole_reply_once_released(
    chat_server: ChatModelServer, sdk: openai.OpenAI
) -> None:
    stalled = hang("Partial", then=reply(" rest"))
    chat_server.enqueue(stalled)
    threading.Thread(target=release_once_started, args=(stalled,), daemon=True).start()

    completion = sdk.chat.completions.create(model=MODEL, messages=HELLO)

    assert completion.choices[0].message.content == "Partial rest"


def test_a_hang_never_released_hits_its_cap_and_is_recorded(chat_server: ChatModelServer, sdk: openai.OpenAI) -> None:
    stalled = hang(cap_s=0.1)
    chat_server.enqueue(stalled)

    with pytest.raises(openai.InternalServerError, match="cap"):
        sdk.chat.completions.create(model=MODEL, messages=HELLO)

    assert stalled.outcome == "capped"
    assert "cap" in chat_server.violations[0]


def test_closing_the_server_ends_a_hang_and_the_stream_breaks_with_a_connection_error() -> None:
    with ChatModelServer() as server, openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0) as client:
        stalled = hang("Working")
        server.enqueue(stalled)
        threading.Thread(target=close_once_started, args=(server, stalled), daemon=True).start()

        with (
            pytest.raises(openai.APIConnectionError),
            client.chat.completions.stream(model=MODEL, messages=HELLO) as stream,
        ):
            stream.get_final_completion()

    assert stalled.outcome == "shutdown"


# --- what the server is told to refuse -------------------------------------------------------------------------


def test_a_server_with_a_key_refuses_a_missing_or_wrong_one_and_records_neither_value() -> None:
    with ChatModelServer(reply("welcome"), api_key="right-key") as server:
        clients = [
            openai.OpenAI(base_url=server.base_url, api_key=key, max_retries=0) for key in ("wrong-key", "right-key")
        ]
        with pytest.raises(openai.AuthenticationError) as wrong:
            clients[0].chat.completions.create(model=MODEL, messages=HELLO)
        answered = clients[1].chat.completions.create(model=MODEL, messages=HELLO)
        keyless = httpx2.post(f"{server.base_url}/chat/completions", json={"model": MODEL, "messages": HELLO})

        assert (wrong.value.type, wrong.value.code) == ("invalid_request_error", "invalid_api_key")
        assert answered.choices[0].message.content == "welcome"
        assert keyless.status_code == 401
        assert [r.has_credentials for r in server.requests] == [True, True, False]
        assert "-key" not in json.dumps([r.headers for r in server.requests])
        assert server.violations == []


def test_a_server_with_models_lists_them_and_refuses_another() -> None:
    with ChatModelServer(reply("ok"), models=["small", "large"]) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0)

        listed = [m.id for m in client.models.list()]
        found = client.models.retrieve("large")
        with pytest.raises(openai.NotFoundError) as unknown:
            client.chat.completions.create(model="huge", messages=HELLO)
        answered = client.chat.completions.create(model="small", messages=HELLO)

        assert (listed, found.id) == (["small", "large"], "large")
        assert unknown.value.code == "model_not_found"
        assert "huge" in unknown.value.message
        assert answered.choices[0].message.content == "ok"
        assert server.violations == []


def test_a_server_without_models_serves_any_and_lists_none(chat_server: ChatModelServer, sdk: openai.OpenAI) -> None:
    assert list(sdk.models.list()) == []
    assert sdk.models.retrieve("anything").id == "anything"
    assert chat_server.violations == []


def test_a_model_without_tools_refuses_a_request_that_offers_some_as_ollama_does() -> None:
    with ChatModelServer(reply("plain"), tools_supported=False) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0)

        with pytest.raises(openai.BadRequestError, match=f"{MODEL} does not support tools"):
            client.chat.completions.create(model=MODEL, messages=HELLO, tools=[BASH])
        answered = client.chat.completions.create(model=MODEL, messages=HELLO)

        assert answered.choices[0].message.content == "plain"
        assert server.violations == []


# --- refusals, as the real API's -------------------------------------------------------------------------------


def _calls(*call_ids: str) -> dict[str, Any]:
    calls = [{"id": i, "type": "function", "function": {"name": "bash", "arguments": "{}"}} for i in call_ids]
    return {"role": "assistant", "content": None, "tool_calls": calls}


def _answer(call_id: str, content: Any = "ok") -> dict[str, Any]:
    return {"role": "tool", "tool_call_id": call_id, "content": content}


def _tool(function: dict[str, Any]) -> dict[str, Any]:
    return {"type": "function", "function": function}


USER = {"role": "user", "content": "go"}
NO_CACHE = {"role": "user", "content": [{"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}}]}
BAD_REQUESTS: dict[str, tuple[dict[str, Any], str]] = {
    "no model": ({"messages": [USER]}, "model"),
    "an empty model": ({"model": "", "messages": [USER]}, "model"),
    "no messages": ({"model": MODEL}, "messages"),
    "empty messages": ({"model": MODEL, "messages": []}, "messages"),
    "an unknown role": ({"model": MODEL, "messages": [{"role": "bot", "content": "hi"}]}, "messages[0].role"),
    "a tool answer with no tool call before it": (
        {"model": MODEL, "messages": [USER, _answer("call_1")]},
        "messages[1].tool_call_id",
    ),
    "a tool answer to another call id": (
        {"model": MODEL, "messages": [USER, _calls("call_1"), _answer("call_1"), _answer("call_2")]},
        "messages[3].tool_call_id",
    ),
    "a tool call answered twice": (
        {"model": MODEL, "messages": [USER, _calls("call_1"), _answer("call_1"), _answer("call_1")]},
        "messages[3].tool_call_id",
    ),
    "a tool call left unanswered before a user message": (
        {"model": MODEL, "messages": [USER, _calls("call_1", "call_2"), _answer("call_1"), USER]},
        "messages[1].role",
    ),
    "a tool call left unanswered at the end": (
        {"model": MODEL, "messages": [USER, _calls("call_1")]},
        "messages[1].role",
    ),
    "a tool message without content": (
        {"model": MODEL, "messages": [USER, _calls("c"), {"role": "tool", "tool_call_id": "c"}]},
        "messages[2].content",
    ),
    "a tool message with empty content": (
        {"model": MODEL, "messages": [USER, _calls("c"), _answer("c", "")]},
        "messages[2].content",
    ),
    "a tool message with no parts": (
        {"model": MODEL, "messages": [USER, _calls("c"), _answer("c", [])]},
        "messages[2].content",
    ),
    "cache_control on a content part": (
        {"model": MODEL, "messages": [NO_CACHE]},
        "messages[0].content[0].cache_control",
    ),
    "cache_control on a message": (
        {"model": MODEL, "messages": [USER | {"cache_control": {"type": "ephemeral"}}]},
        "messages[0].cache_control",
    ),
    "cache_control on a tool": (
        {"model": MODEL, "messages": [USER], "tools": [BASH | {"cache_control": {"type": "ephemeral"}}]},
        "tools[0].cache_control",
    ),
    "an unknown key in an image part": (
        {
            "model": MODEL,
            "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x", "size": 1}}]}],
        },
        "messages[0].content[0].image_url.size",
    ),
    "an Anthropic tool_result part": (
        {"model": MODEL, "messages": [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t"}]}]},
        "messages[0].content[0].type",
    ),
    "an image in a tool message": (
        {
            "model": MODEL,
            "messages": [USER, _calls("c"), _answer("c", [{"type": "image_url", "image_url": {"url": "x"}}])],
        },
        "messages[2].content[0].type",
    ),
    "a function name with a space": (
        {"model": MODEL, "messages": [USER], "tools": [_tool({"name": "run bash"})]},
        "tools[0].function.name",
    ),
    "a function name of 65 characters": (
        {"model": MODEL, "messages": [USER], "tools": [_tool({"name": "x" * 65})]},
        "tools[0].function.name",
    ),
    "parameters that are not an object schema": (
        {"model": MODEL, "messages": [USER], "tools": [_tool({"name": "f", "parameters": {"type": "string"}})]},
        "tools[0].function.parameters",
    ),
    "parameters that are not an object at all": (
        {"model": MODEL, "messages": [USER], "tools": [_tool({"name": "f", "parameters": "{}"})]},
        "tools[0].function.parameters",
    ),
    "tool call arguments sent as an object": (
        {
            "model": MODEL,
            "messages": [
                USER,
                {
                    "role": "assistant",
                    "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": {}}}],
                },
                _answer("c"),
            ],
        },
        "messages[1].tool_calls[0].function.arguments",
    ),
    "both max_tokens and max_completion_tokens": (
        {"model": MODEL, "messages": [USER], "max_tokens": 5, "max_completion_tokens": 5},
        "max_tokens",
    ),
    "stream_options without stream": (
        {"model": MODEL, "messages": [USER], "stream_options": {"include_usage": True}},
        "stream_options",
    ),
}


@pytest.mark.parametrize(("body", "param"), BAD_REQUESTS.values(), ids=BAD_REQUESTS.keys())
def test_a_request_the_real_api_refuses_is_answered_400_recorded_and_leaves_the_script(
    chat_server: ChatModelServer, body: dict[str, Any], param: str
) -> None:
    chat_server.enqueue(reply("unused"))

    response = post_raw(chat_server, body)

    error_body = response.json()["error"]
    assert (response.status_code, error_body["type"]) == (400, "invalid_request_error")
    assert error_body["param"] == param
    assert len(chat_server.violations) == 1
    assert chat_server.remaining == 1


def test_a_cache_control_found_by_two_rules_is_one_problem() -> None:
    problems = chat_request_problems({"model": MODEL, "messages": [NO_CACHE]})

    assert problems == [
        Problem(
            "Unknown parameter: 'messages[0].content[0].cache_control'.",
            "messages[0].content[0].cache_control",
            "unknown_parameter",
        )
    ]


def test_the_sdk_surfaces_a_refusal_with_the_apis_param_and_code(
    chat_server: ChatModelServer, sdk: openai.OpenAI
) -> None:
    messages: Any = [NO_CACHE]

    with pytest.raises(openai.BadRequestError) as raised:
        sdk.chat.completions.create(model=MODEL, messages=messages)

    assert (raised.value.param, raised.value.code) == ("messages[0].content[0].cache_control", "unknown_parameter")
    assert "Unknown parameter: 'messages[0].content[0].cache_control'." in raised.value.message


def test_extra_body_fields_reach_the_checks(chat_server: ChatModelServer, sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        sdk.chat.completions.create(model=MODEL, messages=HELLO, max_tokens=5, extra_body={"max_completion_tokens": 5})

    assert raised.value.param == "max_tokens"
    assert len(chat_server.violations) == 1


def test_a_well_formed_conversation_with_every_part_type_is_served(
    chat_server: ChatModelServer, sdk: openai.OpenAI
) -> None:
    chat_server.enqueue(reply("fine"))
    parts = [
        {"type": "text", "text": "look"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA", "detail": "low"}},
        {"type": "file", "file": {"file_data": "data:application/pdf;base64,AAAA", "filename": "a.pdf"}},
        {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}},
    ]
    messages: Any = [
        {"role": "system", "content": "Be brief."},
        {"role": "developer", "content": [{"type": "text", "text": " Use tools."}]},
        {"role": "user", "content": parts},
        _calls("call_1", "call_2"),
        _answer("call_2", [{"type": "text", "text": "two"}]),
        _answer("call_1"),
        {"role": "assistant", "content": "done"},
        {"role": "user", "content": "again"},
    ]

    completion = sdk.chat.completions.create(
        model=MODEL,
        messages=messages,
        tools=[BASH, _tool({"name": "no-params_1"})],
        max_completion_tokens=64,
    )

    assert completion.choices[0].message.content == "fine"
    assert chat_server.violations == []


# --- recording -------------------------------------------------------------------------------------------------


def test_a_recorded_request_shows_system_text_tools_stream_and_limits_but_not_the_key(
    chat_server: ChatModelServer, sdk: openai.OpenAI
) -> None:
    chat_server.enqueue(reply("one"), reply("two"))
    system: list[ChatCompletionMessageParam] = [
        {"role": "system", "content": "Be brief."},
        {"role": "developer", "content": [{"type": "text", "text": " Be kind."}]},
    ]

    sdk.chat.completions.create(model=MODEL, messages=HELLO, max_completion_tokens=64)
    for _ in sdk.chat.completions.create(
        model=MODEL, messages=[*system, *HELLO], tools=[BASH], stream=True, stream_options={"include_usage": True}
    ):
        pass

    plain, streamed = chat_server.wait_for_requests(2)
    assert (plain.path, plain.model, plain.stream, plain.include_usage, plain.max_tokens) == (
        "/v1/chat/completions",
        MODEL,
        False,
        False,
        64,
    )
    assert (plain.system_text, plain.tool_names, plain.tool_results()) == ("", [], {})
    assert (streamed.stream, streamed.include_usage, streamed.system_text) == (True, True, "Be brief. Be kind.")
    assert streamed.tools == [BASH]
    assert streamed.tool_names == ["bash"]
    assert streamed.messages[-1] == HELLO[0]
    assert streamed.has_credentials
    assert "test-key" not in json.dumps([r.headers for r in chat_server.requests])


def test_the_chat_model_fixture_is_reached_through_the_sdks_environment(chat_model: ChatModelServer) -> None:
    chat_model.enqueue(reply("from the environment"))

    with openai.OpenAI(max_retries=0) as client:
        completion = client.chat.completions.create(model=MODEL, messages=HELLO)

    assert completion.choices[0].message.content == "from the environment"
    assert chat_model.requests[0].has_credentials


def test_waiting_for_requests_that_never_come_raises_with_what_arrived(chat_server: ChatModelServer) -> None:
    with pytest.raises(TimeoutError, match="0 of 1 requests"):
        chat_server.wait_for_requests(1, timeout_s=0.05)
