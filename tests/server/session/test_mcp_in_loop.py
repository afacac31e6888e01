"""An agent's remote MCP tools in the real agent loop: the scripted model calls a real Streamable HTTP MCP server.

The agents here have only MCP tools, so no sandbox is started (no Docker needed). The bearer token comes from the
session's vault, written as the CLI writes it, into an in-memory secret store the runtime is opened with.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from model_server import ModelServer, RecordedRequest, reply, tool_use
from remote_mcp_server import RemoteMcpServer
from scenario import call_ok
from serving import connected

from server.core.config import DEFAULT_IMAGE, ServerConfig
from vault import MemoryStore, Secret, Vaults

pytestmark = pytest.mark.anyio

TOKEN = "remote-token-3a9f77d2"


@pytest.fixture
def remote() -> Iterator[RemoteMcpServer]:
    with RemoteMcpServer(token=TOKEN) as server:
        yield server


class VaultTokens:
    """URL -> token, as the session's vault holds them: written by another `Vaults` on the same index and secret
    store, as `managed-sessions vault add` does. Tests assign to it to change the credentials."""

    def __init__(self, config: ServerConfig) -> None:
        self.secrets = MemoryStore()
        self._vaults = Vaults(config.vault_index_path, self.secrets)
        self.vault_id = self._vaults.create_vault("remote servers").id

    def __setitem__(self, url: str, token: str) -> None:
        for credential in self._vaults.list_credentials(self.vault_id):
            self._vaults.remove_credential(self.vault_id, credential.id)
        self._vaults.add_credential(self.vault_id, "static_bearer", url, secret=Secret("remote", token))


@pytest.fixture
def tokens(config: ServerConfig) -> VaultTokens:
    return VaultTokens(config)


@pytest.fixture
def config(data_dir: Path) -> ServerConfig:
    return ServerConfig(
        data_dir=data_dir,
        image=DEFAULT_IMAGE,
        model="claude-test",
        model_key_present=True,
        model_retry_delays_s=(0.01,),
    )


def mcp_agent(remote: RemoteMcpServer, **toolset: Any) -> dict[str, Any]:
    return {
        "name": "researcher",
        "tools": [{"type": "mcp_toolset", "mcp_server_name": "docs", **toolset}],
        "mcp_servers": [{"type": "url", "name": "docs", "url": remote.url}],
    }


async def new_session(client: Client, agent: dict[str, Any], tokens: VaultTokens) -> str:
    created = await call_ok(client, "create_agent", agent)
    session = await call_ok(client, "create_session", {"agent_id": created["id"], "vault_ids": [tokens.vault_id]})
    return str(session["id"])


async def all_events(client: Client, session_id: str) -> list[dict[str, Any]]:
    return list((await call_ok(client, "get_events", {"session_id": session_id, "limit": 200}))["events"])


async def wait_idle_after(client: Client, session_id: str, after: str) -> dict[str, Any]:
    for _ in range(10):
        page = await call_ok(
            client,
            "get_events",
            {"session_id": session_id, "after": after, "wait_seconds": 10, "types": ["session.status_idle"]},
        )
        if page["events"]:
            return dict(page["events"][-1])
    raise AssertionError("the session never went idle")


def answered(request: RecordedRequest) -> str:
    return " | ".join(
        f"{'error: ' if r.get('is_error') else ''}{r['content']}" for r in request.tool_results().values()
    )


async def test_an_always_ask_mcp_tool_waits_for_confirmation_then_runs_remotely(
    config: ServerConfig, model: ModelServer, remote: RemoteMcpServer, tokens: VaultTokens
) -> None:
    tokens[remote.url] = TOKEN
    model.enqueue(
        reply("Adding.", tool_use("mcp__docs__add", {"a": 2, "b": 3})),
        lambda request: reply(f"got {answered(request)}"),
        reply(tool_use("mcp__docs__add", {"a": 1, "b": 1})),
        lambda request: reply(f"got {answered(request)}"),
    )
    async with connected(config, secrets=tokens.secrets) as client:
        sid = await new_session(client, mcp_agent(remote), tokens)
        asked = await call_ok(client, "send_message", {"session_id": sid, "text": "add 2 and 3"})
        assert asked["stop_reason"]["type"] == "requires_action"
        [use_id] = asked["stop_reason"]["event_ids"]
        [use] = [e for e in asked["events"] if e["type"] == "agent.mcp_tool_use"]
        assert use["id"] == use_id
        assert {k: use[k] for k in ("name", "mcp_server_name", "input", "evaluated_permission", "evaluation")} == {
            "name": "add",
            "mcp_server_name": "docs",
            "input": {"a": 2, "b": 3},
            "evaluated_permission": "ask",
            "evaluation": {"type": "always_ask"},
        }
        assert remote.count("tools/call") == 0  # nothing ran before the confirmation

        mark = asked["next_cursor"]
        await call_ok(client, "confirm_tool_use", {"session_id": sid, "tool_use_id": use_id, "allow": True})
        done = await wait_idle_after(client, sid, mark)
        assert done["stop_reason"]["type"] == "end_turn"
        [result] = [e for e in await all_events(client, sid) if e["type"] == "agent.mcp_tool_result"]
        assert result["mcp_tool_use_id"] == use_id
        assert result["content"] == [{"type": "text", "text": "5"}]
        assert result["is_error"] is False
        assert remote.count("tools/call") == 1

        denied = await call_ok(client, "send_message", {"session_id": sid, "text": "and 1 and 1"})
        [second] = denied["stop_reason"]["event_ids"]
        mark = denied["next_cursor"]
        confirm = {"session_id": sid, "tool_use_id": second, "allow": False, "deny_message": "not that one"}
        await call_ok(client, "confirm_tool_use", confirm)
        assert (await wait_idle_after(client, sid, mark))["stop_reason"]["type"] == "end_turn"
        assert remote.count("tools/call") == 1  # the denied call never reached the server
    assert model.requests[0].tool_names == [
        "mcp__docs__add",
        "mcp__docs__echo_token",
        *model.requests[0].tool_names[2:],
    ]
    assert set(model.requests[0].tool_names) == {
        f"mcp__docs__{n}" for n in ("add", "echo_token", "slow", "fail", "pixel")
    }
    assert answered(model.requests[1]) == "[{'type': 'text', 'text': '5'}]"
    assert answered(model.requests[3]).startswith("error: ")
    assert "not that one" in answered(model.requests[3])
    assert remote.count("server/discover") + remote.count("initialize") == 1  # one connection for both runs


async def test_an_always_allow_config_runs_without_asking(
    config: ServerConfig, model: ModelServer, remote: RemoteMcpServer, tokens: VaultTokens
) -> None:
    tokens[remote.url] = TOKEN
    model.enqueue(
        reply(tool_use("mcp__docs__add", {"a": 20, "b": 22}), tool_use("mcp__docs__fail", {"message": "bad page"})),
        lambda request: reply(f"got {answered(request)}"),
    )
    agent = mcp_agent(remote, default_config={"permission_policy": {"type": "always_allow"}})
    async with connected(config, secrets=tokens.secrets) as client:
        sid = await new_session(client, agent, tokens)
        outcome = await call_ok(client, "send_message", {"session_id": sid, "text": "add"})
        assert outcome["stop_reason"]["type"] == "end_turn"
        uses = [e for e in outcome["events"] if e["type"] == "agent.mcp_tool_use"]
        assert [(u["name"], u["evaluated_permission"]) for u in uses] == [("add", "allow"), ("fail", "allow")]
        results = [e for e in outcome["events"] if e["type"] == "agent.mcp_tool_result"]
        assert [(r["content"][0]["text"], r["is_error"]) for r in results] == [
            ("42", False),
            ("Error executing tool fail: bad page", True),
        ]
    assert "42" in outcome["reply"]


async def test_a_wrong_token_is_a_session_error_and_the_session_still_answers(
    config: ServerConfig, model: ModelServer, remote: RemoteMcpServer, tokens: VaultTokens
) -> None:
    tokens[remote.url] = "wrong-token-0b8e6a44"
    model.enqueue(
        reply("I cannot reach the docs."),
        reply(tool_use("mcp__docs__add", {"a": 1, "b": 2})),
        lambda request: reply(f"got {answered(request)}"),
    )
    agent = mcp_agent(remote, default_config={"permission_policy": {"type": "always_allow"}})
    async with connected(config, secrets=tokens.secrets) as client:
        sid = await new_session(client, agent, tokens)
        first = await call_ok(client, "send_message", {"session_id": sid, "text": "look it up"})
        assert first["status"] == "idle"
        assert first["stop_reason"]["type"] == "end_turn"
        assert first["reply"] == "I cannot reach the docs."
        [failure] = [e["error"] for e in first["events"] if e["type"] == "session.error"]
        assert failure["type"] == "mcp_authentication_failed_error"
        assert failure["mcp_server_name"] == "docs"
        assert failure["retry_status"] == {"type": "exhausted"}
        assert "vault add" in failure["message"]
        assert "wrong-token" not in failure["message"]

        tokens[remote.url] = TOKEN  # the credential is fixed: the next run connects
        second = await call_ok(client, "send_message", {"session_id": sid, "text": "try again"})
        assert second["stop_reason"]["type"] == "end_turn"
        assert not [e for e in second["events"] if e["type"] == "session.error"]
        assert second["reply"] == "got [{'type': 'text', 'text': '3'}]"
    assert model.requests[0].tool_names == []  # the failed server's tools were not offered
    assert "mcp__docs__add" in model.requests[1].tool_names


async def test_a_restarted_server_rebuilds_the_conversation_with_the_mcp_tool_use_answered_once(
    config: ServerConfig, model: ModelServer, remote: RemoteMcpServer, tokens: VaultTokens
) -> None:
    tokens[remote.url] = TOKEN
    model.enqueue(
        reply(tool_use("mcp__docs__echo_token")),
        reply("Done."),
    )
    agent = mcp_agent(remote, configs=[{"name": "echo_token", "permission_policy": {"type": "always_allow"}}])
    async with connected(config, secrets=tokens.secrets) as client:
        sid = await new_session(client, agent, tokens)
        first = await call_ok(client, "send_message", {"session_id": sid, "text": "echo"})
        assert first["reply"] == "Done."
    model.enqueue(reply("Still here."))
    async with connected(config, secrets=tokens.secrets) as client:  # a new runtime and runner over the same store
        again = await call_ok(client, "send_message", {"session_id": sid, "text": "are you there?"})
        assert again["reply"] == "Still here."
    rebuilt = model.requests[-1].messages
    uses = [b for m in rebuilt for b in m["content"] if isinstance(b, dict) and b.get("type") == "tool_use"]
    results = [b for m in rebuilt for b in m["content"] if isinstance(b, dict) and b.get("type") == "tool_result"]
    assert [u["name"] for u in uses] == ["mcp__docs__echo_token"]
    assert [r["tool_use_id"] for r in results] == [uses[0]["id"]]
    assert [m["role"] for m in rebuilt] == ["user", "assistant", "user", "assistant", "user"]
