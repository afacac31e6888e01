"""The event log's bytes are a contract: what is stored and what clients read must not change with the code.

Real sessions (the scripted model, no sandbox needed) produce every event type the server emits without Docker:
messages, spans, usage, idles (end_turn, requires_action, retries_exhausted), custom tool uses and results,
confirmations (allow and deny), denied and remote MCP tool uses and results, compaction, model and MCP errors,
interrupts and termination. The test records, per session, (a) each stored row's `type` and `payload` text and
(b) the events `get_events` and `send_message` return (structured content and text), with ids, times and ports
replaced by stable placeholders, and compares them with `golden/events.json`.

`golden/events.json` was written on the code from before typed events. After a deliberate change to the log's
format, rewrite it with `MANAGED_SESSIONS_WRITE_GOLDEN=1` and review the diff.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.types import CallToolResult
from model_server import ModelServer, error, reply, tool_use
from remote_mcp_server import RemoteMcpServer
from scenario import call_ok
from serving import connected
from vault_fixtures import RemoteVault, vault_with_bearer

from server.core.config import DEFAULT_IMAGE, ServerConfig

pytestmark = pytest.mark.anyio

GOLDEN = Path(__file__).parent.parent / "golden" / "events.json"
TOKEN = "golden-token-5d1e0c44"
_ID = re.compile(r"\b(sevt|sesn|agent|toolu|env)_[0-9A-Za-z]+")
_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)")
_PORT = re.compile(r"127\.0\.0\.1:\d+")


class Normalizer:
    """Replaces ids (in order of first appearance), times and ports with placeholders."""

    def __init__(self) -> None:
        self._ids: dict[str, str] = {}

    def __call__(self, text: str) -> str:
        text = _ID.sub(self._id, text)
        return _PORT.sub("127.0.0.1:<port>", _TIME.sub("<time>", text))

    def _id(self, match: re.Match[str]) -> str:
        return self._ids.setdefault(match.group(0), f"{match.group(1)}_<{len(self._ids) + 1}>")


@pytest.fixture
def remote() -> Iterator[RemoteMcpServer]:
    with RemoteMcpServer(token=TOKEN) as remote_server:
        yield remote_server


@pytest.fixture
def remote_vault(data_dir: Path, remote: RemoteMcpServer) -> RemoteVault:
    """A vault holding the remote server's token; sessions that name it reach the server with it."""
    return vault_with_bearer(_config(data_dir).vault_index_path, remote.url, TOKEN)


def _config(data_dir: Path, **changes: Any) -> ServerConfig:
    return ServerConfig(
        data_dir=data_dir,
        image=DEFAULT_IMAGE,
        model="claude-test",
        model_key_present=True,
        model_retry_delays_s=(0.01,),
        **changes,
    )


class Recorder:
    """Collects what clients saw and what the store holds, normalized."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.normalize = Normalizer()
        self.record: dict[str, Any] = {}

    async def call(self, client: Client, label: str, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
        result: CallToolResult = await client.call_tool(tool, arguments)
        assert not result.is_error, result.content
        assert result.structured_content is not None
        if tool in ("send_message", "get_events"):
            text = result.content[0].text if result.content[0].type == "text" else ""
            self.record[label] = {
                "events": self.normalize(json.dumps(result.structured_content["events"])),
                "text": self.normalize(text),
            }
        return result.structured_content

    def stored(self, label: str, session_id: str) -> None:
        with sqlite3.connect(self.data_dir / "store.db") as db:
            rows = db.execute(
                "select seq, type, payload from events where session_id = ? order by seq", (session_id,)
            ).fetchall()
        self.record[label] = [[seq, kind, self.normalize(payload)] for seq, kind, payload in rows]

    async def log(self, client: Client, label: str, session_id: str) -> None:
        """The whole log as get_events returns it, and as it is stored."""
        await self.call(client, f"{label}: get_events", "get_events", {"session_id": session_id, "limit": 200})
        self.stored(f"{label}: stored", session_id)


async def _idle_after(client: Client, session_id: str, after: str | None) -> None:
    for _ in range(20):
        arguments: dict[str, Any] = {"session_id": session_id, "wait_seconds": 10, "types": ["session.status_idle"]}
        if after is not None:
            arguments["after"] = after
        if (await call_ok(client, "get_events", arguments))["events"]:
            return
    raise AssertionError("the session never went idle")


async def _cursor(client: Client, session_id: str) -> str:
    return str((await call_ok(client, "get_events", {"session_id": session_id, "limit": 200}))["next_cursor"])


async def _plain_turns(rec: Recorder, client: Client, model: ModelServer) -> None:
    """A reply, a tool the agent does not have (denied), an interrupt while idle, then the archive."""
    model.enqueue(
        reply("Hello."),
        reply("Let me look.", tool_use("nosuch", {"q": "x"})),
        reply("It is not there."),
    )
    sid = (await call_ok(client, "create_session", {"system": "Be brief."}))["id"]
    await rec.call(client, "plain: first send_message", "send_message", {"session_id": sid, "text": "hi"})
    await rec.call(client, "plain: second send_message", "send_message", {"session_id": sid, "text": "look"})
    await call_ok(client, "interrupt_session", {"session_id": sid})
    await call_ok(client, "archive_session", {"session_id": sid})
    await rec.log(client, "plain", sid)


async def _answers(rec: Recorder, client: Client, model: ModelServer) -> None:
    """A custom tool answered (as an error), a confirmation allowed-then-denied (the denied one never runs)."""
    custom = {"type": "custom", "name": "lookup", "description": "Look a thing up.", "input_schema": {"type": "object"}}
    toolset = {
        "type": "agent_toolset_20260401",
        "configs": [{"name": "bash", "permission_policy": {"type": "always_ask"}}],
    }
    model.enqueue(
        reply(tool_use("lookup", {"q": "x"})),
        reply("Now bash.", tool_use("bash", {"command": "echo no"})),
        reply("Denied, fine."),
    )
    agent = await call_ok(client, "create_agent", {"name": "answers", "tools": [toolset, custom]})
    sid = (await call_ok(client, "create_session", {"agent_id": agent["id"]}))["id"]
    asked = await rec.call(client, "answers: send_message", "send_message", {"session_id": sid, "text": "go"})
    [custom_use] = asked["stop_reason"]["event_ids"]
    mark = await _cursor(client, sid)
    answer = {"session_id": sid, "tool_use_id": custom_use, "content": "not found", "is_error": True}
    await call_ok(client, "submit_tool_result", answer)
    await _idle_after(client, sid, mark)
    [bash_use] = (await call_ok(client, "get_session", {"session_id": sid}))["stop_reason"]["event_ids"]
    mark = await _cursor(client, sid)
    deny = {"session_id": sid, "tool_use_id": bash_use, "allow": False, "deny_message": "not now"}
    await call_ok(client, "confirm_tool_use", deny)
    await _idle_after(client, sid, mark)
    await rec.log(client, "answers", sid)


async def _retries(rec: Recorder, client: Client, model: ModelServer) -> None:
    model.enqueue(error(529, "overloaded_error", "busy"), error(529, "overloaded_error", "busy"))
    sid = (await call_ok(client, "create_session", {}))["id"]
    await rec.call(client, "retries: send_message", "send_message", {"session_id": sid, "text": "hi"})
    await rec.log(client, "retries", sid)


async def _remote_mcp(
    rec: Recorder, client: Client, model: ModelServer, remote: RemoteMcpServer, vault: RemoteVault
) -> None:
    """A remote MCP tool confirmed and run; then a session whose MCP server refuses it (no token)."""
    toolset = {"type": "mcp_toolset", "mcp_server_name": "docs"}
    servers = [{"type": "url", "name": "docs", "url": remote.url}]
    model.enqueue(reply("Adding.", tool_use("mcp__docs__add", {"a": 2, "b": 3})), reply("Five."))
    agent = await call_ok(client, "create_agent", {"name": "with-token", "tools": [toolset], "mcp_servers": servers})
    sid = (await call_ok(client, "create_session", {"agent_id": agent["id"], "vault_ids": [vault.vault_id]}))["id"]
    asked = await rec.call(client, "mcp: send_message", "send_message", {"session_id": sid, "text": "add"})
    [use_id] = asked["stop_reason"]["event_ids"]
    mark = await _cursor(client, sid)
    await call_ok(client, "confirm_tool_use", {"session_id": sid, "tool_use_id": use_id, "allow": True})
    await _idle_after(client, sid, mark)
    await rec.log(client, "mcp", sid)

    model.enqueue(reply("Never asked."))
    agent = await call_ok(client, "create_agent", {"name": "no-token", "tools": [toolset], "mcp_servers": servers})
    sid = (await call_ok(client, "create_session", {"agent_id": agent["id"]}))["id"]
    await rec.call(client, "mcp refused: send_message", "send_message", {"session_id": sid, "text": "add"})
    await rec.log(client, "mcp refused", sid)


async def _compaction(rec: Recorder, client: Client, model: ModelServer) -> None:
    """Long custom tool results outgrow a small context budget: old results are trimmed; reads cut long fields."""
    custom = {"type": "custom", "name": "lookup", "description": "Look a thing up.", "input_schema": {"type": "object"}}
    model.enqueue(reply(tool_use("lookup", {"n": 1})), reply(tool_use("lookup", {"n": 2})), reply("Done."))
    agent = await call_ok(client, "create_agent", {"name": "compacting", "tools": [custom]})
    sid = (await call_ok(client, "create_session", {"agent_id": agent["id"]}))["id"]
    asked = await call_ok(client, "send_message", {"session_id": sid, "text": "look twice"})
    for n in (1, 2):
        [use_id] = asked["stop_reason"]["event_ids"]
        mark = await _cursor(client, sid)
        answer = {"session_id": sid, "tool_use_id": use_id, "content": f"result {n} " + "x" * 9000}
        await call_ok(client, "submit_tool_result", answer)
        await _idle_after(client, sid, mark)
        asked = await call_ok(client, "get_session", {"session_id": sid})
    await rec.log(client, "compaction", sid)


async def test_stored_and_returned_events_are_the_golden_ones(
    data_dir: Path, model: ModelServer, remote: RemoteMcpServer, remote_vault: RemoteVault
) -> None:
    rec = Recorder(data_dir)
    async with connected(_config(data_dir), secrets=remote_vault.secrets) as client:
        await _plain_turns(rec, client, model)
        await _answers(rec, client, model)
        await _retries(rec, client, model)
        await _remote_mcp(rec, client, model, remote, remote_vault)
    async with connected(_config(data_dir, context_budget_tokens=3000), secrets=remote_vault.secrets) as client:
        await _compaction(rec, client, model)
    if os.environ.get("MANAGED_SESSIONS_WRITE_GOLDEN") == "1":
        GOLDEN.write_text(json.dumps(rec.record, indent=1) + "\n", encoding="utf-8")
    golden = json.loads(GOLDEN.read_text(encoding="utf-8"))
    assert list(rec.record) == list(golden)
    for label, recorded in rec.record.items():
        assert recorded == golden[label], label
