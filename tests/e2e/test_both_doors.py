"""One server, both doors: `serve --transport http` serves `/mcp` and `/v1` from one process, store and token.

A session made over REST (the `anthropic` SDK) is listed, driven and read over MCP (Streamable HTTP) of the same
server, and the other way round. An MCP stdio server started on the same data dir is refused: one server owns a
data dir, and sharing it is what the HTTP server is for."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import anthropic
import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from model_server import ModelServer, reply
from processes import MCP_HTTP_TIMEOUT, http_server, python_path_env
from scenario import call_ok

pytestmark = pytest.mark.anyio

TOKEN = "both-doors-" + "t" * 32


@pytest.fixture
def model() -> Iterator[ModelServer]:
    with ModelServer() as server:
        yield server
        assert server.violations == []


@asynccontextmanager
async def mcp_client(port: int) -> AsyncIterator[Client]:
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=MCP_HTTP_TIMEOUT) as http,
        Client(streamable_http_client(f"http://127.0.0.1:{port}/mcp", http_client=http)) as client,
    ):
        yield client


async def test_a_session_made_over_rest_is_driven_over_mcp_and_the_other_way_round(
    subprocess_env: dict[str, str], model: ModelServer, tmp_path: Path
) -> None:
    env = python_path_env(
        {
            **subprocess_env,
            "MANAGED_SESSIONS_TOKEN": TOKEN,
            "ANTHROPIC_BASE_URL": model.base_url,
            "ANTHROPIC_API_KEY": "test-key",
        }
    )
    model.enqueue(reply("Hello over MCP."))
    model.enqueue(reply("Hello over REST."))
    with http_server(env, tmp_path / "server.log") as (port, _):
        rest = anthropic.AsyncAnthropic(base_url=f"http://127.0.0.1:{port}", api_key=TOKEN, max_retries=0)
        async with rest, mcp_client(port) as mcp:
            # REST makes it; MCP lists it, drives a turn and reads the log.
            agent = await rest.beta.agents.create(name="doors", model="claude-test-model")
            environment = await rest.beta.environments.create(name="doors")
            made = await rest.beta.sessions.create(agent=agent.id, environment_id=environment.id, title="rest-made")
            listed = await call_ok(mcp, "list_sessions", {})
            assert made.id in [s["id"] for s in listed["sessions"]]
            answered = await call_ok(mcp, "send_message", {"session_id": made.id, "text": "hi", "wait_seconds": 30})
            assert answered["reply"] == "Hello over MCP."
            rest_log = [e.type async for e in await rest.beta.sessions.events.list(made.id)]
            mcp_log = await call_ok(mcp, "get_events", {"session_id": made.id, "limit": 200})
            assert rest_log == [e["type"] for e in mcp_log["events"]]
            assert "agent.message" in rest_log

            # MCP makes it; REST reads it, sends a message and sees the turn.
            other = await call_ok(mcp, "create_session", {"title": "mcp-made"})
            assert (await rest.beta.sessions.retrieve(other["id"])).title == "mcp-made"
            message = {"type": "user.message", "content": [{"type": "text", "text": "hi"}]}
            with anyio.fail_after(30):
                async with await rest.beta.sessions.events.stream(other["id"]) as stream:
                    await rest.beta.sessions.events.send(other["id"], events=[message])  # type: ignore[list-item]
                    async for event in stream:
                        if event.type == "session.status_idle":
                            break
            shown = await call_ok(mcp, "get_events", {"session_id": other["id"], "types": ["agent.message"]})
            assert shown["events"][0]["content"] == [{"type": "text", "text": "Hello over REST."}]

        # Meanwhile, MCP over stdio on the same data dir is refused: the HTTP server owns it.
        refused = subprocess.run(
            [sys.executable, "-m", "server", "serve"],
            env=env,
            input="",
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert refused.returncode != 0
        assert "is using the data dir" in refused.stderr
        assert "managed-sessions serve --transport http" in refused.stderr
