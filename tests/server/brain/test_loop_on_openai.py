"""The agent loop on the OpenAI-compatible provider, in process: the real `openai` SDK against the scripted Chat
Completions server, the real store and services, and in-memory sandboxes. The Docker end-to-end scenarios are
in `tests/e2e/test_openai_over_stdio.py`."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest
from chat_model_server import ChatModelServer, Usage, error, reply, tool_call
from fake_sandboxes import FakeSandboxes
from scenario import call_ok
from serving import connected

from server.core.config import DEFAULT_IMAGE, ServerConfig
from server.core.models import parse_providers

pytestmark = pytest.mark.anyio


@pytest.fixture
def openai_config(data_dir: Path, chat_model: ChatModelServer) -> ServerConfig:
    return ServerConfig(
        data_dir=data_dir,
        image=DEFAULT_IMAGE,
        model="openai/gpt-test",
        model_retry_delays_s=(0.01, 0.01),
        providers=parse_providers({}, os.environ),  # OPENAI_API_KEY and OPENAI_BASE_URL from the fixture
    )


async def test_a_tool_turn_runs_and_its_events_and_usage_look_as_on_anthropic(
    openai_config: ServerConfig, chat_model: ChatModelServer
) -> None:
    sandboxes = FakeSandboxes()
    sandboxes.outputs["ls"] = "a.txt"
    chat_model.enqueue(
        reply("Looking.", tool_call("bash", {"command": "ls"}), usage=Usage(100, 10, 40)),
        reply("There is a.txt.", usage=Usage(130, 5, 100)),
    )
    async with connected(openai_config, sandboxes=sandboxes) as client:
        session = await call_ok(client, "create_session", {"system": "Be brief."})
        outcome = await call_ok(client, "send_message", {"session_id": session["id"], "text": "what is here?"})
        assert outcome["reply"] == "There is a.txt."
        types = [e["type"] for e in outcome["events"]]
        assert "agent.tool_use" in types
        assert "agent.tool_result" in types
        got = await call_ok(client, "get_session", {"session_id": session["id"]})
        assert got["usage"]["input_tokens"] == 60 + 30
        assert got["usage"]["cache_read_input_tokens"] == 140
        assert got["usage"]["output_tokens"] == 15
    first, second = chat_model.requests
    assert first.model == "gpt-test"  # the bare name
    assert first.messages[0] == {"role": "system", "content": "Be brief."}
    assert first.stream
    [use] = [e for e in outcome["events"] if e["type"] == "agent.tool_use"]
    assert second.tool_results()[use["id"]]["content"] == "a.txt"


async def test_an_authentication_failure_is_not_retried_and_says_what_to_set(
    openai_config: ServerConfig, chat_model: ChatModelServer
) -> None:
    chat_model.enqueue(error(401))
    async with connected(openai_config, sandboxes=FakeSandboxes()) as client:
        session = await call_ok(client, "create_session", {})
        outcome = await call_ok(client, "send_message", {"session_id": session["id"], "text": "hi"})
    assert outcome["stop_reason"]["type"] == "retries_exhausted"
    [failure] = [e["error"] for e in outcome["events"] if e["type"] == "session.error"]
    assert failure["type"] == "authentication_error"
    assert "OPENAI_API_KEY" in failure["message"]
    assert len(chat_model.requests) == 1


async def test_a_conversation_past_the_models_window_is_trimmed_on_this_provider_too(
    openai_config: ServerConfig, chat_model: ChatModelServer
) -> None:
    windows = {"models": {"openai/gpt-small": {"context_tokens": 4_000}}}
    config = dataclasses.replace(openai_config, providers=parse_providers(windows, os.environ))
    sandboxes = FakeSandboxes()
    big = "head -c 2000 /dev/zero | tr '\\0' x"
    sandboxes.outputs[big] = "x" * 2000
    chat_model.enqueue(*[reply(tool_call("bash", {"command": big})) for _ in range(6)], reply("Done."))
    async with connected(config, sandboxes=sandboxes) as client:
        session = await call_ok(client, "create_session", {"model": "openai/gpt-small"})
        outcome = await call_ok(client, "send_message", {"session_id": session["id"], "text": "print a lot"})
        assert outcome["reply"] == "Done."
        page = await call_ok(
            client, "get_events", {"session_id": session["id"], "types": ["agent.thread_context_compacted"]}
        )
        assert page["events"]
    last = chat_model.requests[-1]
    results = [m["content"] for m in last.messages if m["role"] == "tool"]
    assert len(results) == 6
    assert "trimmed" in results[0]
    assert results[-1] == "x" * 2000  # the newest result is whole
    assert {r.max_tokens for r in chat_model.requests} == {1_000}  # a quarter of the declared window
