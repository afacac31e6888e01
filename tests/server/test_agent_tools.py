"""Agents through the MCP tools: versions, pinning, archive."""

from __future__ import annotations

from pathlib import Path

import pytest
from mcp import Client
from model_server import ModelServer, reply, tool_use
from scenario import call_error, call_ok
from serving import connected

from server.core.config import ServerConfig
from server.hands.toolset import BUILTIN_TOOL_SPECS

pytestmark = pytest.mark.anyio

CUSTOM_TOOL = {
    "type": "custom",
    "name": "lookup_ticket",
    "description": "Look up a ticket by id.",
    "input_schema": {"type": "object", "properties": {"id": {"type": "string"}}, "required": ["id"]},
}


async def test_an_agent_starts_at_version_1_with_the_full_toolset_and_the_default_model(client: Client) -> None:
    agent = await call_ok(client, "create_agent", {"name": "coder", "system": "Be brief."})
    assert agent["id"].startswith("agent_")
    assert agent["version"] == 1
    assert agent["model"] == {"id": "claude-test-model"}
    assert agent["tools"] == [{"type": "agent_toolset_20260401", "default_config": None, "configs": []}]
    assert await call_ok(client, "get_agent", {"agent_id": agent["id"]}) == agent


async def test_each_update_makes_a_new_immutable_version_and_old_ones_stay_readable(client: Client) -> None:
    agent = await call_ok(client, "create_agent", {"name": "coder", "system": "v1", "metadata": {"team": "a"}})
    v2 = await call_ok(
        client,
        "update_agent",
        {"agent_id": agent["id"], "system": "v2", "tools": [CUSTOM_TOOL], "metadata": {"team": None, "x": "1"}},
    )
    assert v2["version"] == 2
    assert v2["system"] == "v2"
    assert v2["metadata"] == {"x": "1"}
    assert [t["type"] for t in v2["tools"]] == ["custom"]
    assert v2["name"] == "coder"  # omitted fields are kept
    v1 = await call_ok(client, "get_agent", {"agent_id": agent["id"], "version": 1})
    assert v1["system"] == "v1"
    assert v1["metadata"] == {"team": "a"}


async def test_an_update_that_changes_nothing_makes_no_new_version(client: Client) -> None:
    agent = await call_ok(client, "create_agent", {"name": "coder", "system": "same"})
    again = await call_ok(client, "update_agent", {"agent_id": agent["id"], "system": "same"})
    assert again["version"] == 1


async def test_an_empty_system_prompt_on_update_clears_it(client: Client) -> None:
    agent = await call_ok(client, "create_agent", {"name": "coder", "system": "x"})
    cleared = await call_ok(client, "update_agent", {"agent_id": agent["id"], "system": ""})
    assert cleared["system"] is None
    assert cleared["version"] == 2


async def test_update_with_a_stale_version_is_refused(client: Client) -> None:
    agent = await call_ok(client, "create_agent", {"name": "coder"})
    await call_ok(client, "update_agent", {"agent_id": agent["id"], "system": "new"})
    error = await call_error(client, "update_agent", {"agent_id": agent["id"], "version": 1, "system": "mine"})
    assert "at version 2, not 1" in error
    assert (await call_ok(client, "get_agent", {"agent_id": agent["id"]}))["system"] == "new"


async def test_a_session_pins_the_version_it_started_with(client: Client) -> None:
    agent = await call_ok(client, "create_agent", {"name": "coder", "system": "v1"})
    session = await call_ok(client, "create_session", {"agent_id": agent["id"]})
    await call_ok(client, "update_agent", {"agent_id": agent["id"], "system": "v2"})
    again = await call_ok(client, "get_session", {"session_id": session["id"]})
    assert again["agent"]["version"] == 1
    assert again["agent"]["system"] == "v1"
    pinned = await call_ok(client, "create_session", {"agent_id": agent["id"], "agent_version": 1})
    assert pinned["agent"]["system"] == "v1"
    latest = await call_ok(client, "create_session", {"agent_id": agent["id"]})
    assert latest["agent"]["version"] == 2


async def test_list_agents_pages_newest_first(client: Client) -> None:
    ids = [(await call_ok(client, "create_agent", {"name": f"a{i}"}))["id"] for i in range(5)]
    first = await call_ok(client, "list_agents", {"limit": 2})
    second = await call_ok(client, "list_agents", {"limit": 2, "cursor": first["next_cursor"]})
    third = await call_ok(client, "list_agents", {"limit": 2, "cursor": second["next_cursor"]})
    seen = [a["id"] for page in (first, second, third) for a in page["agents"]]
    assert seen == list(reversed(ids))
    assert third["next_cursor"] is None


async def test_an_archived_agent_is_hidden_read_only_and_refused_for_new_sessions(client: Client) -> None:
    agent = await call_ok(client, "create_agent", {"name": "old"})
    archived = await call_ok(client, "archive_agent", {"agent_id": agent["id"]})
    assert archived["archived_at"] is not None
    assert (await call_ok(client, "list_agents", {}))["agents"] == []
    assert len((await call_ok(client, "list_agents", {"include_archived": True}))["agents"]) == 1
    assert "archived" in await call_error(client, "update_agent", {"agent_id": agent["id"], "system": "x"})
    assert "archived" in await call_error(client, "create_session", {"agent_id": agent["id"]})


async def test_mcp_servers_and_toolsets_must_reference_each_other(client: Client) -> None:
    server = {"type": "url", "name": "docs", "url": "https://mcp.example.com/mcp"}
    error = await call_error(client, "create_agent", {"name": "a", "mcp_servers": [server]})
    assert "needs an mcp_toolset" in error
    error = await call_error(
        client, "create_agent", {"name": "a", "tools": [{"type": "mcp_toolset", "mcp_server_name": "nope"}]}
    )
    assert "missing from mcp_servers" in error
    agent = await call_ok(
        client,
        "create_agent",
        {"name": "a", "mcp_servers": [server], "tools": [{"type": "mcp_toolset", "mcp_server_name": "docs"}]},
    )
    assert agent["mcp_servers"][0]["name"] == "docs"


async def test_custom_tools_need_unique_names_that_are_not_built_in(client: Client) -> None:
    bash_clash = {**CUSTOM_TOOL, "name": "bash"}
    assert "not a built-in" in await call_error(client, "create_agent", {"name": "a", "tools": [bash_clash]})
    twice = [CUSTOM_TOOL, CUSTOM_TOOL]
    assert "unique" in await call_error(client, "create_agent", {"name": "a", "tools": twice})


async def test_toolset_configs_set_enabled_and_permission_policy_per_tool(data_dir: Path, model: ModelServer) -> None:
    only_bash_asking = {
        "type": "agent_toolset_20260401",
        "default_config": {"enabled": False},
        "configs": [{"name": "bash", "enabled": True, "permission_policy": {"type": "always_ask"}}],
    }
    all_but_web_fetch = {"type": "agent_toolset_20260401", "configs": [{"name": "web_fetch", "enabled": False}]}
    model.enqueue(reply(tool_use("bash", {"command": "rm -rf /workspace"})), reply("Nothing to fetch."))
    config = ServerConfig(data_dir=data_dir, model="claude-test", model_key_present=True)
    async with connected(config) as client:
        agent = await call_ok(client, "create_agent", {"name": "a", "tools": [only_bash_asking]})
        assert agent["tools"][0]["configs"][0]["permission_policy"] == {"type": "always_ask"}
        assert agent["tools"][0]["default_config"]["enabled"] is False
        session = await call_ok(client, "create_session", {"agent_id": agent["id"]})
        asked = await call_ok(client, "send_message", {"session_id": session["id"], "text": "clean up"})
        # always_ask: the bash call waits for the client instead of running.
        assert asked["stop_reason"]["type"] == "requires_action"
        [use] = [e for e in asked["events"] if e["type"] == "agent.tool_use"]
        assert (use["name"], use["evaluated_permission"]) == ("bash", "ask")
        assert asked["stop_reason"]["event_ids"] == [use["id"]]
        assert "agent.tool_result" not in [e["type"] for e in asked["events"]]

        other = await call_ok(client, "create_agent", {"name": "b", "tools": [all_but_web_fetch]})
        session = await call_ok(client, "create_session", {"agent_id": other["id"]})
        done = await call_ok(client, "send_message", {"session_id": session["id"], "text": "fetch nothing"})
        assert done["reply"] == "Nothing to fetch."
    # What the model was offered: only the enabled built-ins.
    first, second = model.requests
    assert first.tool_names == ["bash"]
    assert sorted(second.tool_names) == sorted(set(BUILTIN_TOOL_SPECS) - {"web_fetch"})
