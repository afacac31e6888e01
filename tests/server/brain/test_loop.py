"""The agent loop without a container: the real anthropic SDK against the scripted model, the real store and
services, and in-memory sandboxes (`tests/fake_sandboxes.py`) that answer tool calls from a script.

Retries, confirmations, custom tools, interrupts of a model stream, compaction and crashing tools are the loop's
business, not the sandbox's; `tests/server/session/test_agent_loop.py` runs the loop on real Docker sandboxes."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import anyio
import pytest
from fake_sandboxes import FakeSandboxes
from model_server import ModelServer, error, hang, reply, tool_use
from scenario import call_error, call_ok, wait_for_idle
from serving import connected

from server.core.config import DEFAULT_IMAGE, ServerConfig
from server.core.errors import ImageMissingError
from server.core.events import EVENT_TYPES

pytestmark = pytest.mark.anyio

HANG_GUARD_S = 120
"""Only stops a test that hangs; what a test checks is events and states, never how long something took."""


@pytest.fixture
def loop_config(scripted_loop_config: ServerConfig) -> ServerConfig:
    return scripted_loop_config


@pytest.fixture
def sandboxes() -> FakeSandboxes:
    return FakeSandboxes()


async def test_custom_tools_and_confirmations_wait_for_the_client(
    loop_config: ServerConfig, model: ModelServer, sandboxes: FakeSandboxes
) -> None:
    custom = {
        "type": "custom",
        "name": "lookup",
        "description": "Look a thing up.",
        "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}},
    }
    toolset = {
        "type": "agent_toolset_20260401",
        "configs": [{"name": "bash", "permission_policy": {"type": "always_ask"}}],
    }
    sandboxes.outputs["echo ran"] = "ran"
    model.enqueue(
        reply(tool_use("lookup", {"q": "x"})),
        lambda request: reply(
            tool_use("bash", {"command": "echo ran"}) if "found x" in str(request.tool_results()) else "wrong"
        ),
        lambda request: reply(f"result: {request.tool_results()}"),
        reply(tool_use("bash", {"command": "echo again"})),
        lambda request: reply(f"denied: {request.tool_results()}"),
    )
    async with connected(loop_config, sandboxes=sandboxes) as client:
        agent = await call_ok(client, "create_agent", {"name": "a", "tools": [toolset, custom]})
        session = await call_ok(client, "create_session", {"agent_id": agent["id"]})
        sid = session["id"]
        outcome = await call_ok(client, "send_message", {"session_id": sid, "text": "go"})
        assert outcome["stop_reason"]["type"] == "requires_action"
        [custom_use] = outcome["stop_reason"]["event_ids"]
        assert "not waiting" in await call_error(
            client, "confirm_tool_use", {"session_id": sid, "tool_use_id": "sevt_x", "allow": True}
        )
        assert "submit_tool_result" in await call_error(
            client, "confirm_tool_use", {"session_id": sid, "tool_use_id": custom_use, "allow": True}
        )
        mark = (await call_ok(client, "get_events", {"session_id": sid, "limit": 200}))["next_cursor"]
        await call_ok(
            client, "submit_tool_result", {"session_id": sid, "tool_use_id": custom_use, "content": "found x"}
        )
        page = await wait_for_idle(client, sid, mark)
        asked = page["events"][-1]["stop_reason"]
        assert asked["type"] == "requires_action"
        [bash_use] = asked["event_ids"]
        mark = (await call_ok(client, "get_events", {"session_id": sid, "limit": 200}))["next_cursor"]
        await call_ok(client, "confirm_tool_use", {"session_id": sid, "tool_use_id": bash_use, "allow": True})
        finished = await wait_for_idle(client, sid, mark)
        assert finished["events"][-1]["stop_reason"]["type"] == "end_turn"
        done = await call_ok(client, "send_message", {"session_id": sid, "text": "and again", "wait_seconds": 20})
        assert done["stop_reason"]["type"] == "requires_action"
        [second_bash] = done["stop_reason"]["event_ids"]
        mark = (await call_ok(client, "get_events", {"session_id": sid, "limit": 200}))["next_cursor"]
        await call_ok(
            client,
            "confirm_tool_use",
            {"session_id": sid, "tool_use_id": second_bash, "allow": False, "deny_message": "not now"},
        )
        assert "not waiting" in await call_error(
            client, "confirm_tool_use", {"session_id": sid, "tool_use_id": second_bash, "allow": True}
        )
        mark_after_deny = await wait_for_idle(client, sid, mark)
        assert mark_after_deny["events"][-1]["stop_reason"]["type"] == "end_turn"
        await call_ok(client, "delete_session", {"session_id": sid})
    assert "found x" in str(model.requests[1].tool_results())
    assert "ran" in str(model.requests[2].tool_results())
    denied = model.requests[4].tool_results()
    assert "not now" in str(denied)
    assert all(r.get("is_error") for r in denied.values())


async def test_retries_then_retries_exhausted(
    loop_config: ServerConfig, model: ModelServer, sandboxes: FakeSandboxes
) -> None:
    model.enqueue(*[error(529, "overloaded_error", "busy") for _ in range(3)])
    async with connected(loop_config, sandboxes=sandboxes) as client:
        session = await call_ok(client, "create_session", {})
        outcome = await call_ok(client, "send_message", {"session_id": session["id"], "text": "hi"})
        assert outcome["stop_reason"]["type"] == "retries_exhausted"
        errors = [e["error"]["retry_status"]["type"] for e in outcome["events"] if e["type"] == "session.error"]
        assert errors == ["retrying", "retrying", "exhausted"]


async def test_a_missing_key_idles_with_an_error_that_says_what_to_fix(
    data_dir: Path, sandboxes: FakeSandboxes
) -> None:
    config = ServerConfig(data_dir=data_dir, image=DEFAULT_IMAGE, model_key_present=False)
    async with connected(config, sandboxes=sandboxes) as client:
        session = await call_ok(client, "create_session", {})
        outcome = await call_ok(client, "send_message", {"session_id": session["id"], "text": "hi"})
        assert outcome["status"] == "idle"
        [failure] = [e for e in outcome["events"] if e["type"] == "session.error"]
        assert "ANTHROPIC_API_KEY" in failure["error"]["message"]


async def test_messages_to_archived_or_deleted_sessions_are_refused(
    loop_config: ServerConfig, model: ModelServer, sandboxes: FakeSandboxes
) -> None:
    async with connected(loop_config, sandboxes=sandboxes) as client:
        archived = await call_ok(client, "create_session", {})
        await call_ok(client, "archive_session", {"session_id": archived["id"]})
        assert "archived" in await call_error(client, "send_message", {"session_id": archived["id"], "text": "hi"})
        deleted = await call_ok(client, "create_session", {})
        await call_ok(client, "delete_session", {"session_id": deleted["id"]})
        assert "no session" in await call_error(client, "send_message", {"session_id": deleted["id"], "text": "hi"})
        assert "at most 500000" in await call_error(
            client, "send_message", {"session_id": archived["id"], "text": "x" * 1_000_000}
        )
    assert model.requests == []


async def test_a_conversation_that_outgrows_its_budget_trims_old_tool_results(
    data_dir: Path, loop_config: ServerConfig, model: ModelServer, sandboxes: FakeSandboxes
) -> None:
    config = dataclasses.replace(loop_config, context_budget_tokens=2_000)
    big = "head -c 3000 /dev/zero | tr '\\0' x"
    sandboxes.outputs[big] = "x" * 3000
    model.enqueue(*[reply(tool_use("bash", {"command": big})) for _ in range(5)], reply("All done."))
    async with connected(config, sandboxes=sandboxes) as client:
        session = await call_ok(client, "create_session", {})
        outcome = await call_ok(client, "send_message", {"session_id": session["id"], "text": "print a lot"})
        assert outcome["reply"] == "All done."
        page = await call_ok(
            client,
            "get_events",
            {"session_id": session["id"], "limit": 200, "types": ["agent.thread_context_compacted"]},
        )
        assert page["events"]
        await call_ok(client, "delete_session", {"session_id": session["id"]})
    last = model.requests[-1]
    results = [b for m in last.messages for b in m["content"] if b.get("type") == "tool_result"]
    assert len(results) == 5
    assert "trimmed" in str(results[0]["content"])
    assert "x" * 3000 in str(results[-1]["content"])  # the newest result is whole


async def test_an_interrupt_stops_a_model_answer_in_progress(
    loop_config: ServerConfig, model: ModelServer, sandboxes: FakeSandboxes
) -> None:
    stalled = hang("Let me think", cap_s=30)
    model.enqueue(stalled, reply("fresh answer"))
    async with connected(loop_config, sandboxes=sandboxes) as client:
        session = await call_ok(client, "create_session", {})
        sid = session["id"]
        await call_ok(client, "send_message", {"session_id": sid, "text": "ponder", "wait_seconds": 0})
        await anyio.to_thread.run_sync(stalled.wait_started)
        with anyio.fail_after(HANG_GUARD_S):
            stopped = await call_ok(client, "interrupt_session", {"session_id": sid})
        assert stopped["status"] == "idle"
        # The answer ended because the server hung up on it, not by reaching its cap or being released.
        assert await anyio.to_thread.run_sync(stalled.wait_ended) == "disconnected"
        again = await call_ok(client, "send_message", {"session_id": sid, "text": "now answer"})
        assert again["reply"] == "fresh answer"
        page = await call_ok(client, "get_events", {"session_id": sid, "limit": 200})
        assert [e["type"] for e in page["events"]].count("agent.message") == 1


async def test_results_for_unknown_or_answered_tool_uses_are_refused_and_change_nothing(
    loop_config: ServerConfig, model: ModelServer, sandboxes: FakeSandboxes
) -> None:
    custom = {"type": "custom", "name": "ask_human", "description": "Ask.", "input_schema": {"type": "object"}}
    model.enqueue(reply(tool_use("ask_human", {})), reply("thanks"))
    async with connected(loop_config, sandboxes=sandboxes) as client:
        agent = await call_ok(client, "create_agent", {"name": "a", "tools": [custom]})
        bad_schema = {**custom, "input_schema": {"type": "string"}}
        assert "type 'object'" in await call_error(client, "create_agent", {"name": "b", "tools": [bad_schema]})
        session = await call_ok(client, "create_session", {"agent_id": agent["id"]})
        sid = session["id"]
        outcome = await call_ok(client, "send_message", {"session_id": sid, "text": "go"})
        [use_id] = outcome["stop_reason"]["event_ids"]
        before = (await call_ok(client, "get_session", {"session_id": sid}))["stats"]["event_count"]
        assert "not waiting" in await call_error(
            client,
            "submit_tool_result",
            {"session_id": sid, "tool_use_id": "sevt_01M7YRRKASBN4YT0QKCZ9ZRK6T", "content": "x"},
        )
        assert (await call_ok(client, "get_session", {"session_id": sid}))["stats"]["event_count"] == before
        mark = (await call_ok(client, "get_events", {"session_id": sid, "limit": 200}))["next_cursor"]
        await call_ok(client, "submit_tool_result", {"session_id": sid, "tool_use_id": use_id, "content": "yes"})
        assert "not waiting" in await call_error(
            client, "submit_tool_result", {"session_id": sid, "tool_use_id": use_id, "content": "again"}
        )
        await wait_for_idle(client, sid, mark)
        page = await call_ok(
            client, "get_events", {"session_id": sid, "limit": 200, "types": ["user.custom_tool_result"]}
        )
        assert len(page["events"]) == 1


async def test_send_message_reports_progress_while_it_waits(
    loop_config: ServerConfig, model: ModelServer, sandboxes: FakeSandboxes
) -> None:
    sandboxes.outputs["echo hi"] = "hi"
    model.enqueue(reply(tool_use("bash", {"command": "echo hi"})), reply("done"))
    seen: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, total, message))

    async with connected(loop_config, sandboxes=sandboxes) as client:
        session = await call_ok(client, "create_session", {})
        result = await client.call_tool(
            "send_message", {"session_id": session["id"], "text": "go"}, progress_callback=on_progress
        )
        assert result.structured_content is not None
        assert result.structured_content["reply"] == "done"
    assert seen
    assert [p for p, _, _ in seen] == sorted(p for p, _, _ in seen)  # absolute and increasing
    assert all((m or "").split(" ")[0] in EVENT_TYPES for _, _, m in seen)  # each names the newest event


async def test_a_tool_that_crashes_gives_the_model_an_error_result_not_a_dead_session(
    loop_config: ServerConfig, model: ModelServer, sandboxes: FakeSandboxes
) -> None:
    """Fault injection: the toolset raising something nobody expected."""
    sandboxes.outputs["true"] = RuntimeError("boom")
    model.enqueue(reply(tool_use("bash", {"command": "true"})), lambda request: reply(str(request.tool_results())))
    async with connected(loop_config, sandboxes=sandboxes) as client:
        session = await call_ok(client, "create_session", {})
        outcome = await call_ok(client, "send_message", {"session_id": session["id"], "text": "go"})
        assert outcome["stop_reason"]["type"] == "end_turn"
        assert "failed unexpectedly" in outcome["reply"]
        assert "boom" not in outcome["reply"]


async def test_an_image_still_missing_after_its_build_ends_the_turn_instead_of_building_again(
    loop_config: ServerConfig, model: ModelServer, sandboxes: FakeSandboxes
) -> None:
    """A backend whose build "succeeds" without making the image: one build, then one error, no loop."""
    sandboxes.outputs["true"] = ImageMissingError(f"the sandbox image {DEFAULT_IMAGE!r} is gone", image=DEFAULT_IMAGE)
    model.enqueue(reply(tool_use("bash", {"command": "true"})))
    async with connected(loop_config, sandboxes=sandboxes) as client:
        session = await call_ok(client, "create_session", {})
        with anyio.fail_after(HANG_GUARD_S):
            outcome = await call_ok(client, "send_message", {"session_id": session["id"], "text": "go"})
    assert outcome["stop_reason"]["type"] == "retries_exhausted"
    errors = [e["error"] for e in outcome["events"] if e["type"] == "session.error"]
    assert [e["retry_status"]["type"] for e in errors] == ["retrying", "exhausted"]
    assert "yet it is still missing" in errors[1]["message"]
    assert sandboxes.built == [DEFAULT_IMAGE]
    assert len(model.requests) == 1


async def test_a_refused_answer_idles_the_session_with_stop_reason_refusal(
    loop_config: ServerConfig, model: ModelServer, sandboxes: FakeSandboxes
) -> None:
    """A classifier or content filter stopped the answer: what came is kept, and the session says why it stopped."""
    model.enqueue(reply("I can't help with", stop_reason="refusal"), reply("Here is a poem."))
    async with connected(loop_config, sandboxes=sandboxes) as client:
        session = await call_ok(client, "create_session", {})
        outcome = await call_ok(client, "send_message", {"session_id": session["id"], "text": "do it"})
        assert outcome["stop_reason"]["type"] == "refusal"
        [idle] = [e for e in outcome["events"] if e["type"] == "session.status_idle"]
        assert idle["stop_details"]["type"] == "refusal"
        assert "content filter" in idle["stop_details"]["explanation"]
        assert outcome["reply"] == "I can't help with"
        again = await call_ok(client, "send_message", {"session_id": session["id"], "text": "a poem then"})
        assert again["stop_reason"]["type"] == "end_turn"
        assert again["reply"] == "Here is a poem."
    assert [m["role"] for m in model.requests[-1].messages] == ["user", "assistant", "user"]


async def test_a_models_declared_window_sets_its_answer_length_and_trimming_budget(
    loop_config: ServerConfig, model: ModelServer, sandboxes: FakeSandboxes
) -> None:
    from server.core.models import parse_providers

    windows = {"models": {"anthropic/claude-small": {"context_tokens": 4_000}}}
    config = dataclasses.replace(loop_config, providers=parse_providers(windows, {}))
    big = "head -c 2000 /dev/zero | tr '\\0' x"
    sandboxes.outputs[big] = "x" * 2000
    model.enqueue(*[reply(tool_use("bash", {"command": big})) for _ in range(6)], reply("Done."), reply("Hi."))
    async with connected(config, sandboxes=sandboxes) as client:
        small = await call_ok(client, "create_session", {"model": "anthropic/claude-small"})
        outcome = await call_ok(client, "send_message", {"session_id": small["id"], "text": "print a lot"})
        assert outcome["reply"] == "Done."
        page = await call_ok(
            client, "get_events", {"session_id": small["id"], "types": ["agent.thread_context_compacted"]}
        )
        assert page["events"]  # 3,000 tokens of budget: the 12,000 characters of results did not fit
        other = await call_ok(client, "create_session", {})
        assert (await call_ok(client, "send_message", {"session_id": other["id"], "text": "hi"}))["reply"] == "Hi."
    assert {r.model for r in model.requests[:-1]} == {"claude-small"}  # the provider's own name for it
    assert {r.max_tokens for r in model.requests[:-1]} == {1_000}  # a quarter of its window
    assert model.requests[-1].max_tokens == 16_000  # a model with no declared window: as before
