"""The tools publish shallow output schemas (`server/fronts/mcp/shallow.py`): every field of the model at the top
level, nothing nested, and real results pass the SDK client's own check against them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.server.mcpserver.tools import Tool
from mcp.types import CallToolResult
from model_server import ModelServer, reply, tool_use
from serving import connected

from server.core.config import ServerConfig
from server.fronts.mcp.registry import Registry
from server.fronts.mcp.shallow import shallow_schema
from server.fronts.mcp.tools.agents import register_agent_tools
from server.fronts.mcp.tools.environments import register_environment_tools
from server.fronts.mcp.tools.files import register_file_tools
from server.fronts.mcp.tools.messages import register_message_tools
from server.fronts.mcp.tools.outputs import register_output_tools
from server.fronts.mcp.tools.sessions import register_session_tools
from server.fronts.mcp.tools.vaults import register_vault_tools

pytestmark = pytest.mark.anyio

NEEDS_A_SANDBOX_OR_A_SECRET = {"list_output_files", "read_output_file", "delete_credential"}
"""Their results come from a running container or a stored credential; tests/server/hands and tests/vault call them
through the same client, which checks each result against the published schema too."""
ASKING_BASH = {
    "type": "agent_toolset_20260401",
    "default_config": {"enabled": False},
    "configs": [{"name": "bash", "enabled": True, "permission_policy": {"type": "always_ask"}}],
}
CUSTOM_TOOL = {
    "type": "custom",
    "name": "lookup",
    "description": "Looks a thing up.",
    "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}},
}


def all_tools() -> list[Tool]:
    registry = Registry()
    for register in (
        register_agent_tools,
        register_environment_tools,
        register_session_tools,
        register_output_tools,
        register_file_tools,
        register_message_tools,
        register_vault_tools,
    ):
        register(registry)
    return registry.tools


def test_every_tool_publishes_each_top_level_field_of_the_sdks_schema_and_nothing_nested() -> None:
    for tool in all_tools():
        published = tool.output_schema
        full = Tool.from_function(tool.fn).output_schema  # what `@MCPServer.tool()` would publish
        assert published is not None, tool.name
        assert full is not None, tool.name
        assert published == shallow_schema(full), tool.name
        assert set(published["properties"]) == set(full["properties"]), tool.name
        assert published.get("required", []) == full.get("required", []), tool.name
        nested = {"$ref", "$defs", "properties", "items", "additionalProperties", "oneOf", "allOf"}
        for name, field in published["properties"].items():
            assert not keys_within(field) & nested, (tool.name, name)


def keys_within(node: Any) -> set[str]:
    if isinstance(node, list):
        return set().union(*map(keys_within, node))
    if isinstance(node, dict):
        return set(node).union(*map(keys_within, node.values()))
    return set()


def test_the_shallow_schema_keeps_types_nullability_scalars_and_descriptions() -> None:
    full = {
        "title": "Thing",
        "type": "object",
        "description": "A thing.",
        "$defs": {
            "Inner": {"type": "object", "description": "The inner part.", "properties": {"x": {"type": "integer"}}},
            "Kind": {"type": "string", "enum": ["a", "b"], "title": "Kind"},
        },
        "properties": {
            "id": {"type": "string", "title": "Id"},
            "inner": {"$ref": "#/$defs/Inner"},
            "maybe": {"anyOf": [{"$ref": "#/$defs/Inner"}, {"type": "null"}], "default": None, "description": "Own."},
            "kind": {"$ref": "#/$defs/Kind"},
            "inners": {"type": "array", "items": {"$ref": "#/$defs/Inner"}},
            "anything": {"title": "Anything"},
            "short": {"anyOf": [{"type": "string", "maxLength": 3}, {"type": "null"}]},
        },
        "required": ["id", "inner", "kind"],
    }
    assert shallow_schema(full) == {
        "title": "Thing",
        "type": "object",
        "description": "A thing.",
        "properties": {
            "id": {"type": "string", "title": "Id"},
            "inner": {"type": "object", "description": "The inner part."},
            "maybe": {"type": ["object", "null"], "default": None, "description": "Own."},
            "kind": {"type": "string", "enum": ["a", "b"]},
            "inners": {"type": "array", "description": "Items: The inner part."},
            "anything": {"title": "Anything"},
            "short": {"anyOf": [{"type": "string", "maxLength": 3}, {"type": "null"}]},
        },
        "required": ["id", "inner", "kind"],
    }


async def calls_with_real_results(client: Client, model: ModelServer) -> dict[str, CallToolResult]:
    """One real result of every tool that runs without a sandbox or a stored secret."""
    results: dict[str, CallToolResult] = {}

    async def call(tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
        results[tool] = await client.call_tool(tool, arguments)  # the client checks it against the schema
        assert not results[tool].is_error, (tool, results[tool].content)
        assert results[tool].structured_content is not None
        return results[tool].structured_content

    tools = [ASKING_BASH, CUSTOM_TOOL]
    agent = await call("create_agent", {"name": "a", "system": "be brief", "tools": tools})
    await call("update_agent", {"agent_id": agent["id"], "description": "d"})
    await call("get_agent", {"agent_id": agent["id"]})
    await call("list_agents", {})
    networking = {"type": "limited", "allowed_hosts": ["example.com"]}
    environment = await call("create_environment", {"name": "e", "networking": networking, "env": {"A": "1"}})
    await call("update_environment", {"environment_id": environment["id"], "description": "d"})
    await call("get_environment", {"environment_id": environment["id"]})
    await call("list_environments", {})
    await call("archive_environment", {"environment_id": environment["id"]})
    await call("delete_environment", {"environment_id": environment["id"]})
    await call("upload_file", {"filename": "notes.txt", "content": "hello"})  # not mounted: that needs a sandbox
    session = await call("create_session", {"agent_id": agent["id"], "title": "t"})
    model.enqueue(reply(tool_use("bash", {"command": "ls"}), tool_use("lookup", {"q": "x"})), reply("Done."))
    asked = await call("send_message", {"session_id": session["id"], "text": "hello", "wait_seconds": 55})
    bash, lookup = asked["stop_reason"]["event_ids"]
    await call("confirm_tool_use", {"session_id": session["id"], "tool_use_id": bash, "allow": False})
    answer = {"session_id": session["id"], "tool_use_id": lookup, "content": "found"}
    await call("submit_tool_result", answer)
    await call("get_session", {"session_id": session["id"]})
    await call("get_events", {"session_id": session["id"]})
    await call("list_sessions", {})
    await call("interrupt_session", {"session_id": session["id"]})
    await call("archive_session", {"session_id": session["id"]})
    await call("delete_session", {"session_id": session["id"]})
    await call("archive_agent", {"agent_id": agent["id"]})
    skill_md = "---\nname: notes\ndescription: Takes notes.\n---\nWrite them down.\n"
    skill = await call("create_skill", {"files": [{"path": "SKILL.md", "content": skill_md}]})
    await call("get_skill", {"skill": skill["skill_id"]})
    await call("list_skills", {})
    await call("delete_skill", {"skill": skill["skill_id"]})
    vault = await call("create_vault", {"display_name": "v"})
    await call("get_vault", {"vault_id": vault["id"]})
    await call("list_vaults", {})
    await call("list_credentials", {"vault_id": vault["id"]})
    await call("delete_vault", {"vault_id": vault["id"]})
    return results


async def test_real_results_pass_the_sdk_clients_check_against_every_published_schema(
    data_dir: Path, model: ModelServer
) -> None:
    config = ServerConfig(data_dir=data_dir, model="claude-test", model_key_present=True)
    async with connected(config) as client:
        results = await calls_with_real_results(client, model)
        published = {tool.name: tool for tool in (await client.list_tools()).tools}
        assert set(published) - set(results) == NEEDS_A_SANDBOX_OR_A_SECRET
        for name, result in results.items():
            assert published[name].output_schema is not None, name
            await client.session.validate_tool_result(name, result)  # what call_tool ran; again, to be explicit

        # The check is live: a result whose top-level field has the wrong type is refused.
        session = results["get_session"]
        broken = session.model_copy(update={"structured_content": {**(session.structured_content or {}), "usage": 1}})
        with pytest.raises(RuntimeError, match="not of type"):
            await client.session.validate_tool_result("get_session", broken)
