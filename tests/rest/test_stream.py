"""`client.beta.sessions.events.stream` against the server: the official SDK reads the stream (sync and async),
a scripted model streams the turns; sessions are made and messages sent through the SDK (some checks read the
log through the MCP tools of the same server: one process, one store). Raw HTTP only where the SDK cannot go:
a `Last-Event-ID` reconnect, a client that never reads."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import anthropic
import anyio
import httpx2
import pytest
from anthropic.types import beta as sdk_beta
from anthropic.types.beta import sessions as sdk
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from model_server import ModelServer, hang, reply, thinking
from processes import MCP_HTTP_TIMEOUT
from rest_serving import RestServer
from scenario import call_ok

GUARD_S = 30
"""Only stops a test that hangs."""


@asynccontextmanager
async def mcp(server: RestServer) -> AsyncIterator[Client]:
    """An MCP client of the same server, over Streamable HTTP."""
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {server.token}"}, timeout=MCP_HTTP_TIMEOUT) as http,
        Client(streamable_http_client(f"{server.base_url}/mcp", http_client=http)) as client,
    ):
        yield client


def call(server: RestServer, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """One MCP tool call, from a sync test."""

    async def run() -> dict[str, Any]:
        async with mcp(server) as client:
            return await call_ok(client, tool, arguments)

    return anyio.run(run)


def new_session(server: RestServer) -> str:
    """A session made through the SDK: an agent, an environment, then the session."""
    with server.client() as client:
        agent = client.beta.agents.create(name="streamer", model="claude-test")
        environment = client.beta.environments.create(name=f"env-{agent.id}")
        return client.beta.sessions.create(agent=agent.id, environment_id=environment.id).id


def send(server: RestServer, session_id: str, text: str) -> None:
    """A user.message sent through the SDK (it returns once recorded; the turn runs on)."""
    with server.client() as client:
        message = {"type": "user.message", "content": [{"type": "text", "text": text}]}
        client.beta.sessions.events.send(session_id, events=[message])  # type: ignore[list-item]


def until_idle(events: Iterator[Any]) -> list[Any]:
    seen = []
    for event in events:
        seen.append(event)
        if event.type == "session.status_idle":
            return seen
    raise AssertionError(f"the stream ended before the session went idle: {[e.type for e in seen]}")


def all_fields_present(event: Any) -> bool:
    """Every field the SDK's type declares came on the wire (null where the server has nothing)."""
    return set(type(event).model_fields) <= event.model_fields_set


# --- the stream-first pattern ---------------------------------------------------------------------------------


def test_stream_first_then_send_reads_the_turn_until_idle(served: RestServer, model: ModelServer) -> None:
    model.enqueue(reply("Hello from the model."))
    client = served.client()
    session_id = new_session(served)
    with client.beta.sessions.events.stream(session_id) as stream:
        send(served, session_id, "hi")  # the stream is open (its headers came) before the message goes
        events = until_idle(iter(stream))
    types = [e.type for e in events]
    assert types[:2] == ["user.message", "session.status_running"]
    assert types[-1] == "session.status_idle"
    assert events[-1].stop_reason.type == "end_turn"
    assert {"span.model_request_start", "span.model_request_end"} <= set(types)
    [message] = [e for e in events if isinstance(e, sdk.BetaManagedAgentsAgentMessageEvent)]
    assert message.content[0].text == "Hello from the model."
    assert all(e.id.startswith("sevt_") for e in events)
    assert all(all_fields_present(e) for e in events), [
        (e.type, set(type(e).model_fields) - e.model_fields_set) for e in events if not all_fields_present(e)
    ]


@pytest.mark.anyio
async def test_previews_come_before_the_stored_message_and_share_its_id(served: RestServer, model: ModelServer) -> None:
    held = hang("Hello there", then=reply())  # streams "Hello there", then holds the turn until released
    model.enqueue(held)
    client = served.async_client()
    async with mcp(served) as tools:
        session_id = (await call_ok(tools, "create_session", {}))["id"]
        stream = await client.beta.sessions.events.stream(session_id, event_deltas=["agent.message"])
        async with stream:
            await call_ok(tools, "send_message", {"session_id": session_id, "text": "hi", "wait_seconds": 0})
            events: list[Any] = []
            with anyio.fail_after(GUARD_S):
                while _previewed_text(events) != "Hello there":  # while the model is still held mid-turn
                    events.append(await stream.__anext__())
                held.release()
                while events[-1].type != "session.status_idle":
                    events.append(await stream.__anext__())
    types = [e.type for e in events if e.type != "event_delta" or events[events.index(e) - 1].type != "event_delta"]
    assert types == [
        "user.message",
        "session.status_running",
        "span.model_request_start",
        "event_start",
        "event_delta",
        "agent.message",
        "span.model_request_end",
        "session.usage",
        "session.status_idle",
    ]
    [start] = [e for e in events if isinstance(e, sdk_beta.BetaManagedAgentsStartEvent)]
    deltas = [e for e in events if isinstance(e, sdk_beta.BetaManagedAgentsDeltaEvent)]
    [message] = [e for e in events if isinstance(e, sdk.BetaManagedAgentsAgentMessageEvent)]
    assert start.event.type == "agent.message"
    assert start.event.id == message.id
    assert {d.event_id for d in deltas} == {message.id}
    assert message.content[0].text == "Hello there"


def test_a_thinking_preview_is_a_start_concluded_by_the_stored_agent_thinking(
    served: RestServer, model: ModelServer
) -> None:
    model.enqueue(reply(thinking("Let me see."), "Done."))
    client = served.client()
    session_id = new_session(served)
    with client.beta.sessions.events.stream(session_id, event_deltas=["agent.thinking"]) as stream:
        send(served, session_id, "think")
        events = until_idle(iter(stream))
    previews = [e for e in events if e.type in ("event_start", "event_delta")]
    [thought] = [e for e in events if isinstance(e, sdk.BetaManagedAgentsAgentThinkingEvent)]
    assert [(p.type, p.event.type, p.event.id) for p in previews] == [("event_start", "agent.thinking", thought.id)]
    assert events.index(previews[0]) < events.index(thought)
    assert [e.type for e in events if e.type.startswith("agent.")] == ["agent.thinking", "agent.message"]


def _previewed_text(events: list[Any]) -> str:
    return "".join(e.delta.content.text for e in events if e.type == "event_delta")


# --- replay: a dropped stream loses nothing -------------------------------------------------------------------


def test_a_reconnect_with_last_event_id_replays_what_was_missed(served: RestServer, model: ModelServer) -> None:
    model.enqueue(reply("one"), reply("two"))
    client = served.client()
    session_id = new_session(served)
    with client.beta.sessions.events.stream(session_id) as stream:
        send(served, session_id, "first")
        seen = [next(stream) for _ in range(3)]  # then the connection drops
    call(served, "send_message", {"session_id": session_id, "text": "second", "wait_seconds": 30})
    logged = call(served, "get_events", {"session_id": session_id, "limit": 200})["events"]
    assert [e.id for e in seen] == [e["id"] for e in logged[:3]]

    missed = [e["id"] for e in logged[3:]]
    headers = {"Authorization": f"Bearer {served.token}", "Last-Event-ID": seen[-1].id}
    url = f"{served.base_url}/v1/sessions/{session_id}/events/stream"
    with httpx2.Client(timeout=GUARD_S) as raw, raw.stream("GET", url, headers=headers) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        replayed = [m for m in _sse(response.iter_lines(), len(missed)) if m["event"] == "message"]
    assert [m["id"] for m in replayed] == missed
    assert [json.loads(m["data"])["id"] for m in replayed] == missed

    with client.beta.sessions.events.stream(session_id, extra_query={"after": seen[-1].id}) as again:
        assert [next(again).id for _ in missed] == missed


def _sse(lines: Iterator[str], stored: int) -> Iterator[dict[str, str]]:
    """SSE messages as dicts (`event`, `id`, `data`), until `stored` messages with an id have come."""
    message: dict[str, str] = {}
    for line in lines:
        if line:
            name, _, value = line.partition(": ")
            message[name] = value
            continue
        if message:
            yield message
            stored -= "id" in message
            message = {}
        if stored == 0:
            return


# --- the end of a stream, heartbeats, errors ------------------------------------------------------------------


def test_a_stream_ends_with_session_deleted(served: RestServer) -> None:
    client = served.client()
    session_id = new_session(served)
    with client.beta.sessions.events.stream(session_id) as stream:
        call(served, "delete_session", {"session_id": session_id})
        rest = list(stream)  # ends by itself
    assert [type(e) for e in rest] == [sdk.BetaManagedAgentsSessionDeletedEvent]
    assert all_fields_present(rest[0])


def test_headers_come_at_once_and_an_idle_stream_gets_pings(served: RestServer) -> None:
    session_id = new_session(served)
    headers = {"Authorization": f"Bearer {served.token}"}
    url = f"{served.base_url}/v1/sessions/{session_id}/events/stream"
    with httpx2.Client(timeout=GUARD_S) as raw, raw.stream("GET", url, headers=headers) as response:
        assert response.status_code == 200  # nothing was appended: only the headers came
        lines = response.iter_lines()
        assert next(lines) == "event: ping"
        assert json.loads(next(lines).removeprefix("data: ")) == {"type": "ping"}


def test_bad_streams_are_refused_before_they_start(served: RestServer) -> None:
    client = served.client()
    session_id = new_session(served)
    with pytest.raises(anthropic.NotFoundError):
        client.beta.sessions.events.stream("sesn_01JD7Y3Q4K2W8T6X0V5N9R1M3P")
    with pytest.raises(anthropic.BadRequestError) as bad:
        client.beta.sessions.events.stream(session_id, event_deltas=["agent.tool_use"])  # type: ignore[list-item]
    assert "event_deltas" in str(bad.value)
    with pytest.raises(anthropic.NotFoundError):
        client.beta.sessions.events.stream(
            session_id, extra_headers={"Last-Event-ID": "sevt_01JD7Y3Q4K2W8T6X0V5N9R1M3P"}
        )
    with pytest.raises(anthropic.BadRequestError):
        client.beta.sessions.events.stream(session_id, extra_query={"after": "not-an-id"})


# --- a slow client slows nobody -------------------------------------------------------------------------------


def test_a_stalled_client_delays_neither_the_session_nor_other_clients(served: RestServer, model: ModelServer) -> None:
    big = "x" * 1_000_000
    model.enqueue(reply(big), reply(big), reply(big))
    client = served.client()
    session_id = new_session(served)
    headers = {"Authorization": f"Bearer {served.token}"}
    url = f"{served.base_url}/v1/sessions/{session_id}/events/stream?event_deltas[]=agent.message"
    with httpx2.Client(timeout=GUARD_S) as raw, raw.stream("GET", url, headers=headers) as stalled:
        with client.beta.sessions.events.stream(session_id) as stream:
            seen: list[Any] = []
            for turn in range(3):  # the stalled client was opened first, and is not read until the end
                send(served, session_id, f"turn {turn}")
                seen += until_idle(stream)
        assert [len(e.content[0].text) for e in seen if e.type == "agent.message"] == [len(big)] * 3
        assert call(served, "get_session", {"session_id": session_id})["status"] == "idle"
        # The stalled client still gets every stored event once it reads.
        messages = [json.loads(m["data"]) for m in _sse(stalled.iter_lines(), len(seen)) if "id" in m]
    assert [m["id"] for m in messages] == [e.id for e in seen]
    assert [len(m["content"][0]["text"]) for m in messages if m["type"] == "agent.message"] == [len(big)] * 3


# --- an older SDK ---------------------------------------------------------------------------------------------

READER = """
import sys, anthropic
base_url, token, session_id = sys.argv[1:4]
client = anthropic.Anthropic(base_url=base_url, api_key=token, max_retries=0)
print(anthropic.__version__, flush=True)
with client.beta.sessions.events.stream(session_id) as stream:
    print("ready", flush=True)
    for event in stream:
        print(event.type, event.id, flush=True)
        if event.type == "session.status_idle":
            break
"""


def test_an_old_sdk_reads_the_stream_first_pattern(old_python: str, served: RestServer, model: ModelServer) -> None:
    """anthropic 0.9x (pinned by frameworks): `x-api-key`, `?beta=true`, and only `event:` names it knows."""
    model.enqueue(reply("Hello, old client."))
    session_id = new_session(served)
    with subprocess.Popen(
        [old_python, "-c", READER, served.base_url, served.token, session_id],
        stdout=subprocess.PIPE,
        text=True,
        env={"PATH": os.environ.get("PATH", "")},
    ) as reader:
        assert reader.stdout is not None
        version = reader.stdout.readline().strip()
        assert reader.stdout.readline().strip() == "ready"
        send(served, session_id, "hi")
        lines = reader.stdout.read().split("\n")
        assert reader.wait(timeout=30) == 0
    assert version.startswith("0.")
    types = [line.split()[0] for line in lines if line]
    assert types[:2] == ["user.message", "session.status_running"]
    assert "agent.message" in types
    assert types[-1] == "session.status_idle"
    logged = call(served, "get_events", {"session_id": session_id, "limit": 200})["events"]
    assert [line.split()[1] for line in lines if line] == [e["id"] for e in logged]
