"""`client.beta.sessions.events.stream` against the server: the official SDK reads the stream (sync and async),
a scripted model streams the turns; sessions are made and messages sent through the MCP tools of the same
server (one process, one store). Raw HTTP only where the SDK cannot go: a `Last-Event-ID` reconnect, a
client that never reads."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from anthropic.types.beta import sessions as sdk
from fake_sandboxes import FakeSandboxes
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from model_server import ModelServer, reply
from rest_serving import RestServer, rest_server
from scenario import call_ok

from server.core.config import DEFAULT_IMAGE, ServerConfig
from vault.memory_store import MemoryStore

GUARD_S = 30
"""Only stops a test that hangs."""


@pytest.fixture
def model(monkeypatch: pytest.MonkeyPatch) -> Iterator[ModelServer]:
    with ModelServer() as server:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", server.base_url)
        monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key")
        yield server
        assert server.violations == []


@pytest.fixture
def served(data_dir: Path, model: ModelServer) -> Iterator[RestServer]:
    config = ServerConfig(
        data_dir=data_dir, image=DEFAULT_IMAGE, model="claude-test", model_key_present=True, stream_ping_s=0.2
    )
    with rest_server(config, sandboxes=lambda _tg: FakeSandboxes(), secrets=MemoryStore()) as server:
        yield server


@asynccontextmanager
async def mcp(server: RestServer) -> AsyncIterator[Client]:
    """An MCP client of the same server, over Streamable HTTP."""
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {server.token}"}) as http,
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
    session_id: str = call(server, "create_session", {})["id"]
    return session_id


def send(server: RestServer, session_id: str, text: str) -> None:
    call(server, "send_message", {"session_id": session_id, "text": text, "wait_seconds": 0})


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
