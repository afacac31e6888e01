"""Chat Completions translation, both ways: each neutral block kind into a request, each chunk kind into a turn.

Chunks are the SDK's own `ChatCompletionChunk`s, built from the JSON an endpoint streams."""

from __future__ import annotations

import json
from typing import Any, Literal

import pytest
from openai.types.chat import ChatCompletionChunk

from server.brain.model import ModelError, ModelTurn, TokenUsage
from server.brain.providers.chat_completions import TurnFold, request_messages, request_tools

PNG = {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}
PDF = {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0xLjQ="}
CACHE = {"type": "ephemeral"}


def user(*blocks: Any) -> dict[str, Any]:
    return {"role": "user", "content": list(blocks)}


def assistant(*blocks: Any) -> dict[str, Any]:
    return {"role": "assistant", "content": list(blocks)}


def text(value: str, **extra: Any) -> dict[str, Any]:
    return {"type": "text", "text": value, **extra}


def tool_use(use_id: str, name: str, tool_input: dict[str, Any]) -> dict[str, Any]:
    return {"type": "tool_use", "id": use_id, "name": name, "input": tool_input}


def tool_result(use_id: str, *content: Any, is_error: bool = False) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": use_id, "content": list(content)}
    if is_error:
        block["is_error"] = True
    return block


def translate(*messages: dict[str, Any], system: str | None = None, vision: bool = True) -> list[dict[str, Any]]:
    return request_messages(system, messages, vision=vision)


# --- requests ---


def test_the_system_prompt_comes_first_and_plain_text_is_a_string() -> None:
    assert translate(user(text("hi"), text("there")), system="Be brief.") == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hi\n\nthere"},
    ]


def test_no_system_message_without_a_system_prompt() -> None:
    assert translate(user(text("hi"))) == [{"role": "user", "content": "hi"}]


def test_a_bare_string_content_is_text() -> None:
    assert translate({"role": "user", "content": "hi"}) == [{"role": "user", "content": "hi"}]


def test_an_assistant_message_holds_its_text_and_every_tool_call() -> None:
    answer = assistant(
        text("Let me look."), tool_use("sevt_1", "bash", {"command": "ls"}), tool_use("sevt_2", "read", {"p": "é"})
    )
    [message] = translate(answer)
    assert message == {
        "role": "assistant",
        "content": "Let me look.",
        "tool_calls": [
            {"id": "sevt_1", "type": "function", "function": {"name": "bash", "arguments": '{"command": "ls"}'}},
            {"id": "sevt_2", "type": "function", "function": {"name": "read", "arguments": '{"p": "é"}'}},
        ],
    }


def test_an_assistant_message_of_tool_calls_only_has_no_content() -> None:
    [message] = translate(assistant(tool_use("sevt_1", "bash", {})))
    assert message["content"] is None
    assert json.loads(message["tool_calls"][0]["function"]["arguments"]) == {}


def test_an_empty_assistant_message_is_left_out() -> None:
    assert translate(user(text("hi")), assistant(text("")), user(text("again"))) == [
        {"role": "user", "content": "hi"},
        {"role": "user", "content": "again"},
    ]


def test_tool_results_become_tool_messages_in_order_before_the_users_other_text() -> None:
    messages = translate(
        assistant(tool_use("sevt_1", "bash", {}), tool_use("sevt_2", "bash", {})),
        user(text("also this"), tool_result("sevt_1", text("one"), text("two")), tool_result("sevt_2", text("3"))),
    )
    assert messages[1:] == [
        {"role": "tool", "tool_call_id": "sevt_1", "content": "one\ntwo"},
        {"role": "tool", "tool_call_id": "sevt_2", "content": "3"},
        {"role": "user", "content": "also this"},
    ]


def test_a_failed_tool_call_says_so_in_its_text() -> None:
    [message] = translate(user(tool_result("sevt_1", text("no such file"), is_error=True)))
    assert message == {"role": "tool", "tool_call_id": "sevt_1", "content": "Error: no such file"}


def test_an_empty_tool_result_still_has_content() -> None:
    [message] = translate(user(tool_result("sevt_1")))
    assert message["content"]


def test_a_string_tool_result_is_its_text() -> None:
    block = {"type": "tool_result", "tool_use_id": "sevt_1", "content": "done"}
    assert translate(user(block)) == [{"role": "tool", "tool_call_id": "sevt_1", "content": "done"}]


def test_images_a_tool_returned_follow_in_a_user_message_that_names_the_call() -> None:
    messages = translate(user(tool_result("sevt_1", text("a chart"), {"type": "image", "source": PNG}), text("ok?")))
    assert messages == [
        {"role": "tool", "tool_call_id": "sevt_1", "content": "a chart"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Images returned by tool call sevt_1:"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                {"type": "text", "text": "ok?"},
            ],
        },
    ]


def test_a_tool_result_of_only_an_image_points_at_it() -> None:
    tool_message, follow = translate(user(tool_result("sevt_1", {"type": "image", "source": PNG})))
    assert "next message" in tool_message["content"]
    assert follow["content"][1]["type"] == "image_url"


def test_a_pdf_a_tool_returned_is_a_file_part() -> None:
    document = {"type": "document", "source": PDF, "title": "report.pdf"}
    _, follow = translate(user(tool_result("sevt_1", document)))
    assert follow["content"][0] == {"type": "text", "text": "Files returned by tool call sevt_1:"}
    assert follow["content"][1]["file"]["filename"] == "report.pdf"


def test_without_vision_a_tools_image_is_a_note_in_its_tool_message() -> None:
    messages = translate(user(tool_result("sevt_1", text("a chart"), {"type": "image", "source": PNG})), vision=False)
    [message] = messages
    assert message["role"] == "tool"
    assert message["content"].startswith("a chart\n[an image was left out")


def test_user_images_are_data_urls_or_the_url_itself() -> None:
    url = {"type": "url", "url": "https://example.com/cat.png"}
    [message] = translate(
        user(text("what is this?"), {"type": "image", "source": PNG}, {"type": "image", "source": url})
    )
    assert message["content"] == [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
    ]


def test_a_pdf_is_a_file_part_named_by_its_title_or_a_default() -> None:
    titled = {"type": "document", "source": PDF, "title": "q3.pdf", "context": "the quarterly report"}
    [message] = translate(user({"type": "document", "source": PDF}, titled))
    assert message["content"] == [
        {"type": "file", "file": {"filename": "document.pdf", "file_data": "data:application/pdf;base64,JVBERi0xLjQ="}},
        {"type": "text", "text": "Context for the document 'q3.pdf': the quarterly report"},
        {"type": "file", "file": {"filename": "q3.pdf", "file_data": "data:application/pdf;base64,JVBERi0xLjQ="}},
    ]


def test_a_plain_text_document_is_text_with_its_title_and_context() -> None:
    source = {"type": "text", "media_type": "text/plain", "data": "line one"}
    block = {"type": "document", "source": source, "title": "notes", "context": "from the meeting"}
    [message] = translate(user(block))
    assert message["content"] == "Context for the document 'notes': from the meeting\n\nDocument 'notes':\nline one"


def test_a_document_url_is_a_note_with_the_url() -> None:
    block = {"type": "document", "source": {"type": "url", "url": "https://example.com/a.pdf"}}
    [message] = translate(user(block))
    assert "https://example.com/a.pdf" in message["content"]


def test_without_vision_every_image_and_pdf_is_a_note() -> None:
    blocks = [{"type": "image", "source": PNG}, {"type": "document", "source": PDF, "title": "q3.pdf"}]
    [message] = translate(user(text("look"), *blocks), vision=False)
    assert isinstance(message["content"], str)
    assert "takes no images" in message["content"]
    assert "takes no PDFs" in message["content"]
    assert "base64" not in message["content"]


def test_a_block_it_cannot_send_is_a_note() -> None:
    file_image = {"type": "image", "source": {"type": "file", "file_id": "file_1"}}
    [message] = translate(user(file_image, {"type": "container_upload"}))
    assert "'file'" in message["content"]
    assert "'container_upload'" in message["content"]


def test_a_user_message_of_empty_text_is_left_out() -> None:
    assert translate(user(text(""))) == []


def test_cache_control_markers_are_dropped_everywhere() -> None:
    messages = translate(
        assistant(text("a", cache_control=CACHE), {**tool_use("sevt_1", "bash", {}), "cache_control": CACHE}),
        user(
            {**tool_result("sevt_1", text("out", cache_control=CACHE)), "cache_control": CACHE},
            {"type": "image", "source": PNG, "cache_control": CACHE},
            {"type": "document", "source": PDF, "cache_control": CACHE},
            text("b", cache_control=CACHE),
        ),
        system="s",
    )
    tools = request_tools([{"name": "bash", "input_schema": {"type": "object"}, "cache_control": CACHE}])
    assert "cache_control" not in json.dumps([messages, tools])


def test_tools_are_function_tools() -> None:
    schema = {"type": "object", "properties": {"command": {"type": "string"}}}
    assert request_tools([{"name": "bash", "description": "Run it.", "input_schema": schema}, {"name": "noop"}]) == [
        {"type": "function", "function": {"name": "bash", "parameters": schema, "description": "Run it."}},
        {"type": "function", "function": {"name": "noop", "parameters": {"type": "object"}}},
    ]


# --- responses ---


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None, usage: Any = None) -> ChatCompletionChunk:
    return ChatCompletionChunk.model_validate(chunk_json(delta, finish, usage))


def lax_chunk(delta: dict[str, Any] | None = None, finish: str | None = None) -> ChatCompletionChunk:
    """What a server streams that the schema does not allow, built as the SDK builds a stream's chunks (unchecked)."""
    return ChatCompletionChunk.model_construct(**chunk_json(delta, finish))


def chunk_json(delta: dict[str, Any] | None = None, finish: str | None = None, usage: Any = None) -> dict[str, Any]:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    return {
        "id": "c1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": choices,
        "usage": usage,
    }


def call(index: int, *, call_id: str | None = None, name: str | None = None, args: str | None = None) -> dict[str, Any]:
    delta: dict[str, Any] = {"index": index, "function": {}}
    if call_id is not None:
        delta |= {"id": call_id, "type": "function"}
    if name is not None:
        delta["function"]["name"] = name
    if args is not None:
        delta["function"]["arguments"] = args
    return {"tool_calls": [delta]}


class Preview:
    def __init__(self) -> None:
        self.seen: list[tuple[str, int, str]] = []

    def block_started(self, index: int, kind: Literal["text", "thinking"]) -> None:
        self.seen.append(("started", index, kind))

    def text(self, index: int, text: str) -> None:
        self.seen.append(("text", index, text))


def fold(*chunks: ChatCompletionChunk, preview: Preview | None = None) -> ModelTurn:
    turn = TurnFold(preview)
    for each in chunks:
        turn.add(each)
    return turn.turn()


def test_text_deltas_are_one_text_block_and_stream_to_the_preview() -> None:
    preview = Preview()
    turn = fold(
        chunk({"role": "assistant", "content": ""}),
        chunk({"content": "Hel"}),
        chunk({"content": "lo."}),
        chunk({}, finish="stop"),
        preview=preview,
    )
    assert turn.content == [{"type": "text", "text": "Hello."}]
    assert turn.stop_reason == "end_turn"
    assert preview.seen == [("started", 0, "text"), ("text", 0, "Hel"), ("text", 0, "lo.")]


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
def test_reasoning_is_a_bare_thinking_block_before_the_text(field: str) -> None:
    preview = Preview()
    turn = fold(
        chunk({field: "Let me think"}),
        chunk({field: " harder."}),
        chunk({"content": "42"}),
        chunk({}, finish="stop"),
        preview=preview,
    )
    assert turn.content == [{"type": "thinking"}, {"type": "text", "text": "42"}]
    assert preview.seen == [("started", 0, "thinking"), ("started", 1, "text"), ("text", 1, "42")]


def test_tool_arguments_in_fragments_are_pieced_together() -> None:
    tool_input = {"command": "printf '%s' \"é ü\"", "timeout": 5, "nested": {"a": [1, 2, 3]}}
    encoded = json.dumps(tool_input)
    fragments = [chunk(call(0, args=encoded[i : i + 3])) for i in range(0, len(encoded), 3)]
    turn = fold(chunk(call(0, call_id="call_a", name="bash", args="")), *fragments, chunk({}, finish="tool_calls"))
    assert turn.content == [{"type": "tool_use", "id": "call_a", "name": "bash", "input": tool_input}]
    assert turn.stop_reason == "tool_use"


def test_two_interleaved_tool_calls_after_text_keep_their_order() -> None:
    preview = Preview()
    turn = fold(
        chunk({"content": "Both."}),
        chunk(call(0, call_id="call_a", name="read", args='{"pa')),
        chunk(call(1, call_id="call_b", name="bash", args='{"comm')),
        chunk(call(0, args='th": "x"}')),
        chunk(call(1, args='and": "ls"}')),
        chunk({}, finish="tool_calls"),
        preview=preview,
    )
    assert turn.content == [
        {"type": "text", "text": "Both."},
        {"type": "tool_use", "id": "call_a", "name": "read", "input": {"path": "x"}},
        {"type": "tool_use", "id": "call_b", "name": "bash", "input": {"command": "ls"}},
    ]
    assert preview.seen == [("started", 0, "text"), ("text", 0, "Both.")]


def test_a_new_id_at_a_used_index_is_another_call() -> None:
    turn = fold(
        chunk(call(0, call_id="call_a", name="read", args='{"path": "a"}')),
        chunk(call(0, call_id="call_b", name="read", args='{"path": "b"}')),
        chunk({}, finish="tool_calls"),
    )
    assert [block["id"] for block in turn.content] == ["call_a", "call_b"]
    assert [block["input"] for block in turn.content] == [{"path": "a"}, {"path": "b"}]


def test_a_call_without_index_or_id_continues_the_newest_and_gets_an_id() -> None:
    first = lax_chunk({"tool_calls": [{"function": {"name": "bash", "arguments": '{"command"'}}]})
    rest = lax_chunk({"tool_calls": [{"function": {"arguments": ': "ls"}'}}]})
    [block] = fold(first, rest, chunk({}, finish="stop")).content
    assert block == {"type": "tool_use", "id": "call_0", "name": "bash", "input": {"command": "ls"}}


def test_the_deprecated_function_call_is_a_tool_call() -> None:
    turn = fold(chunk({"function_call": {"name": "bash", "arguments": "{}"}}), chunk({}, finish="function_call"))
    assert turn.content[0]["name"] == "bash"
    assert turn.stop_reason == "tool_use"


def test_empty_arguments_are_an_empty_input() -> None:
    turn = fold(chunk(call(0, call_id="call_a", name="now")), chunk({}, finish="tool_calls"))
    assert turn.content[0]["input"] == {}


def test_usage_leaves_cached_tokens_out_of_the_input() -> None:
    usage = {"prompt_tokens": 100, "completion_tokens": 7, "total_tokens": 107}
    details = {"prompt_tokens_details": {"cached_tokens": 60}}
    turn = fold(chunk({"content": "x"}, finish="stop"), chunk(usage=usage | details))
    assert turn.usage == TokenUsage(input_tokens=40, output_tokens=7, cache_read_input_tokens=60)


def test_usage_without_details_counts_all_input_and_reads_deepseeks_cache_hits() -> None:
    usage = {"prompt_tokens": 100, "completion_tokens": 7, "total_tokens": 107}
    assert fold(chunk({}, finish="stop"), chunk(usage=usage)).usage == TokenUsage(100, 7)
    deepseek = usage | {"prompt_cache_hit_tokens": 30, "prompt_cache_miss_tokens": 70}
    assert fold(chunk({}, finish="stop"), chunk(usage=deepseek)).usage == TokenUsage(70, 7, 30)


@pytest.mark.parametrize(
    ("finish", "stop_reason"),
    [
        ("stop", "end_turn"),
        ("tool_calls", "tool_use"),
        ("function_call", "tool_use"),
        ("length", "max_tokens"),
        ("content_filter", "refusal"),
        ("eos", "end_turn"),
    ],
)
def test_each_finish_reason_has_its_stop_reason(finish: str, stop_reason: str) -> None:
    assert fold(chunk({"content": "x"}), lax_chunk({}, finish=finish)).stop_reason == stop_reason


def test_tool_calls_mean_tool_use_even_when_the_server_says_stop() -> None:
    turn = fold(chunk(call(0, call_id="call_a", name="bash", args="{}")), chunk({}, finish="stop"))
    assert turn.stop_reason == "tool_use"


def test_a_refusal_is_text() -> None:
    turn = fold(chunk({"refusal": "I can't help with that."}), chunk({}, finish="stop"))
    assert turn.content == [{"type": "text", "text": "I can't help with that."}]


def test_other_choices_are_ignored() -> None:
    other = ChatCompletionChunk.model_validate(
        {
            "id": "c1",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "m",
            "choices": [{"index": 1, "delta": {"content": "other"}, "finish_reason": "length"}],
        }
    )
    turn = fold(chunk({"content": "mine"}), other, chunk({}, finish="stop"))
    assert turn.content == [{"type": "text", "text": "mine"}]
    assert turn.stop_reason == "end_turn"


def test_a_stream_without_a_finish_reason_is_a_retryable_failure() -> None:
    with pytest.raises(ModelError) as raised:
        fold(chunk({"content": "Hel"}))
    assert raised.value.kind == "model_request_failed_error"
    assert raised.value.retryable


def test_arguments_that_are_not_json_are_retried() -> None:
    with pytest.raises(ModelError) as raised:
        fold(chunk(call(0, call_id="call_a", name="bash", args='{"command": ')), chunk({}, finish="tool_calls"))
    assert raised.value.kind == "model_request_failed_error"
    assert raised.value.retryable


def test_arguments_that_are_not_an_object_are_retried() -> None:
    with pytest.raises(ModelError) as raised:
        fold(chunk(call(0, call_id="call_a", name="bash", args="[1]")), chunk({}, finish="tool_calls"))
    assert raised.value.retryable


def test_arguments_cut_off_by_the_token_limit_are_not_retried_and_say_why() -> None:
    with pytest.raises(ModelError) as raised:
        fold(chunk(call(0, call_id="call_a", name="write", args='{"content": "aaa')), chunk({}, finish="length"))
    assert not raised.value.retryable
    assert "token limit" in str(raised.value)
    assert "'write'" in str(raised.value)
