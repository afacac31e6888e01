"""The model client against the scripted Messages API: turns, usage, prompt caching, and each kind of failure."""

from __future__ import annotations

import pytest
from model_server import ModelServer, Usage, error, reply, tool_use

from server.brain.model import ModelError
from server.brain.providers.anthropic import AnthropicModel

pytestmark = pytest.mark.anyio

USER = [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]
BASH = {"name": "bash", "description": "Run a command.", "input_schema": {"type": "object", "properties": {}}}


async def turn(client: AnthropicModel) -> object:
    return await client.turn(model="claude-test", system="Be brief.", messages=USER, tools=[BASH], max_tokens=100)


async def test_a_streamed_turn_gives_blocks_stop_reason_and_usage_and_caches_the_prefix(model: ModelServer) -> None:
    model.enqueue(reply("Sure.", tool_use("bash", {"command": "ls"}), usage=Usage(12, 7, 3, 2)))
    client = AnthropicModel(api_key_present=True)
    result = await turn(client)
    await client.aclose()
    assert result.stop_reason == "tool_use"  # type: ignore[attr-defined]
    assert [b["type"] for b in result.content] == ["text", "tool_use"]  # type: ignore[attr-defined]
    assert result.usage.cache_read_input_tokens == 3  # type: ignore[attr-defined]
    [request] = model.requests
    assert request.stream
    assert request.system[0]["cache_control"] == {"type": "ephemeral"}  # type: ignore[index]
    assert request.tools[-1]["cache_control"] == {"type": "ephemeral"}
    assert request.messages[-1]["content"][-1]["cache_control"] == {"type": "ephemeral"}


async def test_streamed_text_and_tool_input_are_pieced_together(model: ModelServer) -> None:
    tool_input = {"command": "printf '%s' \"é ü\"", "timeout": 5, "nested": {"a": [1, 2, 3]}}
    model.enqueue(reply("Let me look at that.", tool_use("bash", tool_input), usage=Usage(40, 9, 0, 30)))
    client = AnthropicModel(api_key_present=True)
    result = await client.turn(model="claude-test", system=None, messages=USER, tools=[BASH], max_tokens=100)
    await client.aclose()
    assert result.content == [
        {"type": "text", "text": "Let me look at that."},
        {"type": "tool_use", "id": result.content[1]["id"], "name": "bash", "input": tool_input},
    ]
    assert (result.usage.input_tokens, result.usage.output_tokens) == (40, 9)
    assert result.usage.cache_creation_input_tokens == 30


@pytest.mark.parametrize(
    ("answer", "kind", "retryable"),
    [
        (error(529, "overloaded_error"), "model_overloaded_error", True),
        (error(429, "rate_limit_error", retry_after=3), "model_rate_limited_error", True),
        (error(500, "api_error"), "model_request_failed_error", True),
        (error(200, "overloaded_error", in_stream=True), "model_overloaded_error", True),
        (error(401, "authentication_error"), "authentication_error", False),
        (error(404, "not_found_error"), "model_not_found_error", False),
        (error(400, "invalid_request_error"), "invalid_request_error", False),
    ],
)
async def test_failures_are_sorted_into_retryable_or_not(
    model: ModelServer, answer: object, kind: str, retryable: bool
) -> None:
    model.enqueue(answer)  # type: ignore[arg-type]
    client = AnthropicModel(api_key_present=True)
    with pytest.raises(ModelError) as raised:
        await turn(client)
    await client.aclose()
    assert raised.value.kind == kind
    assert raised.value.retryable is retryable


async def test_a_rate_limit_carries_its_retry_after(model: ModelServer) -> None:
    model.enqueue(error(429, "rate_limit_error", retry_after=3))
    client = AnthropicModel(api_key_present=True)
    with pytest.raises(ModelError) as raised:
        await turn(client)
    await client.aclose()
    assert raised.value.retry_after_s == 3


async def test_without_credentials_it_says_what_to_set() -> None:
    with pytest.raises(ModelError) as raised:
        await turn(AnthropicModel(api_key_present=False))
    assert raised.value.kind == "configuration_error"
    assert "ANTHROPIC_API_KEY" in str(raised.value)
