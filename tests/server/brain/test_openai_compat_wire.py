"""The OpenAI-compatible client over the wire: the real `openai` SDK against the scripted Chat Completions server.

The twin of `test_anthropic_model.py`: streamed turns folded into blocks, what the preview is told, each failure
sorted into retryable or not, which key goes to which endpoint, and what the request carries (the token limit's
name, attachments or notes in their place, never a `cache_control`). The server refuses what the real API
refuses, so `server.violations == []` says the request was one the API takes."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import anyio
import pytest
from chat_model_server import ChatModelServer, ErrorReply, Usage, drop, error, hang, reply, tool_call

from server.brain.model import ModelError, ModelTurn
from server.brain.providers.openai_compat import OpenAICompatModel
from server.core.models import Endpoint

pytestmark = pytest.mark.anyio

OPENAI = Endpoint("openai", key_present=True)  # OPENAI_BASE_URL and OPENAI_API_KEY come from `chat_model`
USER: list[dict[str, Any]] = [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]
BASH = {"name": "bash", "description": "Run a command.", "input_schema": {"type": "object", "properties": {}}}
LOCAL_KEY = "sk-local-0123456789"
OPENAI_KEY = "sk-openai-0123456789"
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgYGD4DwABBAEAwS2OUAAAAABJRU5ErkJggg=="
PDF = "JVBERi0xLjQKJcOkw7zDtsOfCjEgMCBvYmoKPDwvVHlwZS9DYXRhbG9nPj4KZW5kb2JqCg=="
CACHE = {"type": "ephemeral"}


@dataclass
class Preview:
    """Records what the client says while the answer streams; `until` is set once that much text has arrived."""

    until: str | None = None
    seen: list[tuple[str, int, str]] = field(default_factory=list[tuple[str, int, str]])
    arrived: anyio.Event = field(default_factory=anyio.Event)

    def block_started(self, index: int, kind: Literal["text", "thinking"]) -> None:
        self.seen.append(("start", index, kind))

    def text(self, index: int, text: str) -> None:
        self.seen.append(("text", index, text))
        if self.until is not None and self.texts() == self.until:
            self.arrived.set()

    def texts(self) -> str:
        return "".join(text for what, _, text in self.seen if what == "text")


def local(server: ChatModelServer, **fields: Any) -> Endpoint:
    """A declared endpoint at the scripted server (fields: its key, its variable, vision)."""
    return Endpoint("local", base_url=server.base_url, **fields)


async def turn(
    endpoint: Endpoint,
    *,
    model: str = "gpt-test",
    messages: Sequence[dict[str, Any]] = USER,
    tools: Sequence[dict[str, Any]] = (BASH,),
    preview: Preview | None = None,
) -> ModelTurn:
    """One turn on a fresh client, closed afterwards."""
    client = OpenAICompatModel(endpoint)
    try:
        return await client.turn(
            model=model, system="Be brief.", messages=messages, tools=tools, max_tokens=100, preview=preview
        )
    finally:
        await client.aclose()


async def failure(endpoint: Endpoint, **options: Any) -> ModelError:
    with pytest.raises(ModelError) as raised:
        await turn(endpoint, **options)
    return raised.value


@pytest.fixture
def server() -> Iterator[ChatModelServer]:
    """A scripted server reached as a declared endpoint; the requests it saw must be ones the API takes."""
    with ChatModelServer() as chat_server:
        yield chat_server
        assert chat_server.violations == []


# --- streamed turns --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("interleave", "reasoning_field"), [(True, "reasoning_content"), (False, "reasoning")], ids=["vllm", "ollama"]
)
async def test_a_streamed_turn_folds_reasoning_text_fragmented_tool_calls_and_cached_usage(
    interleave: bool, reasoning_field: str
) -> None:
    calls = [
        tool_call("bash", {"command": "ls -la", "timeout": 5}, id="call_a"),
        tool_call("read", {"path": "a b/é.txt", "range": [1, 20]}, id="call_b"),
        tool_call("bash", {"command": "printf '%s' \"{}\""}, id="call_c"),
    ]
    answer = reply("Let me look.", *calls, reasoning="They want a listing.", usage=Usage(120, 30, cached_tokens=100))
    with ChatModelServer(answer, interleave_tool_calls=interleave, reasoning_field=reasoning_field) as chat_server:
        result = await turn(local(chat_server))
        assert chat_server.violations == []
    assert result.content == [
        {"type": "thinking"},
        {"type": "text", "text": "Let me look."},
        *({"type": "tool_use", "id": c.id, "name": c.name, "input": json.loads(c.arguments)} for c in calls),
    ]
    assert result.stop_reason == "tool_use"
    assert (result.usage.input_tokens, result.usage.output_tokens, result.usage.cache_read_input_tokens) == (
        20,
        30,
        100,
    )
    [request] = chat_server.requests
    assert request.stream
    assert request.include_usage
    assert request.messages[0] == {"role": "system", "content": "Be brief."}
    assert request.tool_names == ["bash"]


@pytest.mark.parametrize(
    ("finish_reason", "stop_reason"),
    [("stop", "end_turn"), ("length", "max_tokens"), ("content_filter", "refusal")],
)
async def test_each_finish_reason_becomes_its_stop_reason(
    server: ChatModelServer, finish_reason: Literal["stop", "length", "content_filter"], stop_reason: str
) -> None:
    server.enqueue(reply("I can only say this much", finish_reason=finish_reason))
    result = await turn(local(server))
    assert result.stop_reason == stop_reason
    assert result.content == [{"type": "text", "text": "I can only say this much"}]


async def test_a_tool_call_cut_off_by_the_token_limit_says_to_raise_the_limit(server: ChatModelServer) -> None:
    server.enqueue(reply(tool_call("bash", '{"command": "ec'), finish_reason="length"))
    failed = await failure(local(server))
    assert (failed.kind, failed.retryable) == ("invalid_request_error", False)
    assert "max_output_tokens" in str(failed)


async def test_the_preview_hears_each_block_start_and_every_text_piece_in_order(server: ChatModelServer) -> None:
    server.enqueue(reply("Here is the answer.", tool_call("bash", {"command": "ls"}), reasoning="Think first."))
    preview = Preview()
    result = await turn(local(server), preview=preview)
    starts = [(index, kind) for what, index, kind in preview.seen if what == "start"]
    assert starts == [(0, "thinking"), (1, "text")]  # a tool call is no preview block
    assert {index for what, index, _ in preview.seen if what == "text"} == {1}
    assert preview.texts() == "Here is the answer."
    assert len([what for what, _, _ in preview.seen if what == "text"]) > 1  # streamed in pieces
    assert [block["type"] for block in result.content] == ["thinking", "text", "tool_use"]


# --- failures --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "kind"),
    [
        (error(400), "invalid_request_error"),
        (error(401), "authentication_error"),
        (error(403), "authentication_error"),
        (error(404), "model_not_found_error"),
        (error(422, "invalid_request_error", "field required"), "invalid_request_error"),
    ],
)
async def test_a_refusal_is_not_retried(chat_model: ChatModelServer, answer: ErrorReply, kind: str) -> None:
    chat_model.enqueue(answer)
    failed = await failure(OPENAI)
    assert (failed.kind, failed.retryable) == (kind, False)
    assert answer.message in str(failed)


@pytest.mark.parametrize(
    ("answer", "kind", "retry_after_s"),
    [
        (error(429, retry_after=3), "model_rate_limited_error", 3),
        (error(429), "model_rate_limited_error", None),
        (error(500), "model_request_failed_error", None),
        (error(503, retry_after=1.5), "model_request_failed_error", 1.5),
    ],
)
async def test_a_transient_failure_is_retried_after_what_it_asks(
    chat_model: ChatModelServer, answer: ErrorReply, kind: str, retry_after_s: float | None
) -> None:
    chat_model.enqueue(answer)
    failed = await failure(OPENAI)
    assert (failed.kind, failed.retryable, failed.retry_after_s) == (kind, True, retry_after_s)


async def test_an_account_out_of_quota_is_a_billing_error_that_says_to_check_billing(
    chat_model: ChatModelServer,
) -> None:
    chat_model.enqueue(error(429, "insufficient_quota", "You exceeded your current quota.", code="insufficient_quota"))
    failed = await failure(OPENAI)
    assert (failed.kind, failed.retryable) == ("billing_error", False)
    assert "out of quota" in str(failed)
    assert "billing" in str(failed)
    assert len(chat_model.requests) == 1


@pytest.mark.parametrize(
    ("answer", "kind", "retryable"),
    [
        (error(500, in_stream=True, partial_text="Let me"), "model_request_failed_error", True),
        (error(429, in_stream=True, partial_text="Let me"), "model_rate_limited_error", True),
        (error(429, "insufficient_quota", code="insufficient_quota", in_stream=True), "billing_error", False),
        (error(400, in_stream=True), "invalid_request_error", False),
    ],
)
async def test_an_error_inside_the_stream_is_sorted_after_the_text_before_it(
    server: ChatModelServer, answer: ErrorReply, kind: str, retryable: bool
) -> None:
    server.enqueue(answer)
    preview = Preview()
    failed = await failure(local(server), preview=preview)
    assert (failed.kind, failed.retryable) == (kind, retryable)
    assert preview.texts() == (answer.partial_text or "")


@pytest.mark.parametrize("partial_text", [None, "Let me"], ids=["after-role", "mid-text"])
async def test_a_dropped_stream_is_a_retryable_failure_and_the_client_recovers(
    server: ChatModelServer, partial_text: str | None
) -> None:
    server.enqueue(drop(partial_text), reply("Back."))
    client = OpenAICompatModel(local(server))
    with pytest.raises(ModelError) as raised:
        await client.turn(model="gpt-test", system=None, messages=USER, tools=[], max_tokens=10)
    after = await client.turn(model="gpt-test", system=None, messages=USER, tools=[], max_tokens=10)
    await client.aclose()
    assert (raised.value.kind, raised.value.retryable) == ("model_request_failed_error", True)
    assert "'local'" in str(raised.value)
    assert after.content == [{"type": "text", "text": "Back."}]


async def test_a_hung_stream_finishes_the_turn_once_released(server: ChatModelServer) -> None:
    stalled = hang("Working", then=reply(" done.", tool_call("bash", {"command": "ls"})))
    server.enqueue(stalled)
    preview = Preview(until="Working")
    results: list[ModelTurn] = []

    async def run() -> None:
        results.append(await turn(local(server), preview=preview))

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(run)
            await preview.arrived.wait()
            assert (stalled.outcome, results) == (None, [])
            stalled.release()
    [result] = results
    assert result.content[0] == {"type": "text", "text": "Working done."}
    assert result.stop_reason == "tool_use"
    assert stalled.outcome == "released"


async def test_a_turn_cancelled_mid_stream_hangs_up_on_the_endpoint(server: ChatModelServer) -> None:
    stalled = hang("Working")
    server.enqueue(stalled)
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(turn, local(server))
            await anyio.to_thread.run_sync(stalled.wait_started)
            tg.cancel_scope.cancel()
        assert await anyio.to_thread.run_sync(stalled.wait_ended) == "disconnected"


async def test_a_model_the_endpoint_does_not_serve_is_named_with_the_endpoint() -> None:
    with ChatModelServer(models=["llama3"]) as chat_server:
        failed = await failure(local(chat_server), model="llama4")
        assert chat_server.violations == []
    assert (failed.kind, failed.retryable) == ("model_not_found_error", False)
    assert "'llama4'" in str(failed)
    assert "'local'" in str(failed)
    assert "local/<model>" in str(failed)


async def test_a_model_without_tool_calls_gets_the_clear_message_and_still_answers_without_tools() -> None:
    with ChatModelServer(reply("Plain."), tools_supported=False) as chat_server:
        failed = await failure(local(chat_server))
        plain = await turn(local(chat_server), tools=())
        assert chat_server.violations == []
    assert (failed.kind, failed.retryable) == ("invalid_request_error", False)
    assert "does not support tool calls" in str(failed)
    assert "pick a model with tool calling" in str(failed)
    assert plain.content == [{"type": "text", "text": "Plain."}]


# --- keys ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "hint"),
    [
        (None, "check OPENAI_API_KEY"),
        ({"api_key_env": "LOCAL_KEY", "api_key": "sk-wrong-0123456789", "key_present": True}, "check LOCAL_KEY"),
        ({}, "set api_key_env in [endpoints.local]"),
    ],
    ids=["openai", "declared-wrong-key", "declared-without-key"],
)
async def test_a_refused_key_names_the_variable_to_check(
    monkeypatch: pytest.MonkeyPatch, fields: dict[str, Any] | None, hint: str
) -> None:
    with ChatModelServer(api_key="sk-right-0123456789") as chat_server:
        monkeypatch.setenv("OPENAI_BASE_URL", chat_server.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-wrong-0123456789")
        failed = await failure(OPENAI if fields is None else local(chat_server, **fields))
    assert (failed.kind, failed.retryable) == ("authentication_error", False)
    assert hint in str(failed)
    assert "sk-wrong-0123456789" not in str(failed)


async def test_a_declared_endpoint_sends_its_own_key_and_no_openai_account(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
    monkeypatch.setenv("OPENAI_ORG_ID", "org-mine")
    monkeypatch.setenv("OPENAI_PROJECT_ID", "proj-mine")
    with ChatModelServer(reply("Hello."), api_key=LOCAL_KEY) as chat_server:
        result = await turn(local(chat_server, api_key_env="LOCAL_KEY", api_key=LOCAL_KEY, key_present=True))
        assert chat_server.violations == []
    assert result.content == [{"type": "text", "text": "Hello."}]  # the server takes LOCAL_KEY only
    [request] = chat_server.requests
    assert request.headers["authorization"] == "<redacted>"
    assert not {"openai-organization", "openai-project"} & set(request.headers)


async def test_a_declared_endpoint_without_a_key_never_gets_openai_api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
    with ChatModelServer(api_key=OPENAI_KEY) as chat_server:  # it would take OPENAI_API_KEY, were it sent
        failed = await failure(local(chat_server))
    assert failed.kind == "authentication_error"
    assert OPENAI_KEY not in str(failed)
    [request] = chat_server.requests
    assert request.has_credentials  # a placeholder: the SDK insists on some key


# --- what the request carries ----------------------------------------------------------------------------------


async def test_openai_gets_max_completion_tokens_and_a_declared_endpoint_max_tokens(
    chat_model: ChatModelServer, server: ChatModelServer
) -> None:
    chat_model.enqueue(reply("A."))
    server.enqueue(reply("B."))
    await turn(OPENAI)
    await turn(local(server))
    [to_openai], [to_local] = chat_model.requests, server.requests
    assert (to_openai.body.get("max_completion_tokens"), to_openai.body.get("max_tokens")) == (100, None)
    assert (to_local.body.get("max_tokens"), to_local.body.get("max_completion_tokens")) == (100, None)


def attachments() -> list[dict[str, Any]]:
    """A conversation with an image and a PDF from the user and an image from a tool, cache markers throughout."""
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}
    pdf = {
        "type": "document",
        "title": "spec.pdf",
        "source": {"type": "base64", "media_type": "application/pdf", "data": PDF},
    }
    return [
        {"role": "user", "content": [{"type": "text", "text": "What is this?", "cache_control": CACHE}, image, pdf]},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "A screenshot first."},
                {
                    "type": "tool_use",
                    "id": "toolu_1",
                    "name": "bash",
                    "input": {"command": "shot"},
                    "cache_control": CACHE,
                },
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_1",
                    "content": [{"type": "text", "text": "saved"}, {**image, "cache_control": CACHE}],
                    "cache_control": CACHE,
                }
            ],
        },
    ]


async def test_images_and_pdfs_reach_a_vision_endpoint_and_no_cache_control_does(server: ChatModelServer) -> None:
    server.enqueue(reply("A cat."))
    result = await turn(local(server), messages=attachments(), tools=[{**BASH, "cache_control": CACHE}])
    assert result.content == [{"type": "text", "text": "A cat."}]  # the server took it (it refuses cache_control)
    [request] = server.requests
    assert "cache_control" not in json.dumps(request.body)
    _, asked, answered, tool, returned = request.messages
    assert [part["type"] for part in asked["content"]] == ["text", "image_url", "file"]
    assert asked["content"][1]["image_url"]["url"] == f"data:image/png;base64,{PNG}"
    assert asked["content"][2]["file"]["file_data"] == f"data:application/pdf;base64,{PDF}"
    assert answered["tool_calls"][0]["id"] == "toolu_1"
    assert tool == {"role": "tool", "tool_call_id": "toolu_1", "content": "saved"}
    assert returned["role"] == "user"
    assert [part["type"] for part in returned["content"]] == ["text", "image_url"]
    assert "toolu_1" in returned["content"][0]["text"]


async def test_a_text_only_endpoint_gets_notes_in_place_of_images_and_pdfs(server: ChatModelServer) -> None:
    server.enqueue(reply("I cannot see it."))
    await turn(local(server, vision=False), messages=attachments())
    [request] = server.requests
    body = json.dumps(request.body)
    assert "image_url" not in body
    assert PNG not in body
    assert PDF not in body
    _, asked, _, tool = request.messages  # the tool's image is a note in its text: no user message follows
    assert isinstance(asked["content"], str)  # text only: one string, which every server takes
    assert "an image was left out" in asked["content"]
    assert "a PDF document 'spec.pdf' was left out" in asked["content"]
    assert tool["content"].startswith("saved\n[an image was left out")


async def test_list_models_gives_what_the_endpoint_serves(server: ChatModelServer) -> None:
    with ChatModelServer(models=["llama3", "qwen3"]) as chat_server:
        client = OpenAICompatModel(local(chat_server))
        assert await client.list_models() == ["llama3", "qwen3"]
        await client.aclose()
    client = OpenAICompatModel(local(server))  # a server that names no models lists none
    assert await client.list_models() == []
    await client.aclose()


async def test_a_base_url_without_its_api_root_is_pointed_at() -> None:
    with ChatModelServer() as chat_server:
        endpoint = Endpoint("local", base_url=chat_server.base_url.removesuffix("/v1"))
        client = OpenAICompatModel(endpoint)
        with pytest.raises(ModelError) as raised:
            await client.list_models()
        await client.aclose()
        [violation] = chat_server.violations  # the scripted server records the unknown path
    assert "GET /models" in violation
    assert raised.value.kind == "model_not_found_error"
    assert "check its base_url" in str(raised.value)
