"""Bad input for every tool: a clear tool error each time, and the store exactly as it was.

The generic tests derive wrong-typed and oversized arguments from each tool's
own input schema, so a tool added later is covered without a new case here.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from mcp import Client
from scenario import call_error, call_ok

from server.core.config import ServerConfig

pytestmark = pytest.mark.anyio

ONE_MB = "x" * 1_000_000


@dataclass
class World:
    """One of each object, live and archived."""

    agent: str
    archived_agent: str
    environment: str
    archived_environment: str
    session: str
    archived_session: str
    event: str


@pytest.fixture
async def world(client: Client) -> World:
    agent = (await call_ok(client, "create_agent", {"name": "a"}))["id"]
    archived_agent = (await call_ok(client, "create_agent", {"name": "old"}))["id"]
    await call_ok(client, "archive_agent", {"agent_id": archived_agent})
    env = (await call_ok(client, "create_environment", {"name": "e"}))["id"]
    archived_env = (await call_ok(client, "create_environment", {"name": "old"}))["id"]
    await call_ok(client, "archive_environment", {"environment_id": archived_env})
    session = (await call_ok(client, "create_session", {"agent_id": agent}))["id"]
    archived_session = (await call_ok(client, "create_session", {}))["id"]
    await call_ok(client, "archive_session", {"session_id": archived_session})
    event = (await call_ok(client, "get_events", {"session_id": archived_session}))["events"][0]["id"]
    return World(agent, archived_agent, env, archived_env, session, archived_session, event)


def store_dump(config: ServerConfig) -> list[str]:
    """The store's rows, and the vault's index (nothing a refused call may change)."""
    with sqlite3.connect(f"file:{config.database_path}?mode=ro", uri=True) as db:
        rows = list(db.iterdump())
    index = config.vault_index_path
    return [*rows, index.read_text() if index.exists() else "<no vault index>"]


Case = tuple[str, Callable[[World], dict[str, Any]], str]
REPO = {"type": "github_repository", "url": "https://git.example.com/team/app.git"}

CASES: list[Case] = [
    # Unknown ids.
    ("get_agent", lambda w: {"agent_id": "agent_nope"}, "no agent 'agent_nope'"),
    ("get_agent", lambda w: {"agent_id": w.agent, "version": 9}, "has no version 9"),
    ("update_agent", lambda w: {"agent_id": "agent_nope", "system": "x"}, "no agent"),
    ("archive_agent", lambda w: {"agent_id": "agent_nope"}, "no agent"),
    ("get_environment", lambda w: {"environment_id": "env_nope"}, "no environment 'env_nope'"),
    ("update_environment", lambda w: {"environment_id": "env_nope", "image": "x"}, "no environment"),
    ("archive_environment", lambda w: {"environment_id": "env_nope"}, "no environment"),
    ("delete_environment", lambda w: {"environment_id": "env_nope"}, "no environment"),
    ("create_session", lambda w: {"agent_id": "agent_nope"}, "no agent"),
    ("create_session", lambda w: {"agent_id": w.agent, "agent_version": 7}, "has no version 7"),
    ("create_session", lambda w: {"environment_id": "env_nope"}, "no environment"),
    ("get_session", lambda w: {"session_id": "sesn_nope"}, "no session 'sesn_nope'"),
    ("archive_session", lambda w: {"session_id": "sesn_nope"}, "no session"),
    ("delete_session", lambda w: {"session_id": "sesn_nope"}, "no session"),
    ("get_events", lambda w: {"session_id": "sesn_nope"}, "no session"),
    ("get_events", lambda w: {"session_id": w.session, "after": w.event}, "has no event"),
    ("get_events", lambda w: {"session_id": w.session, "after": "garbage"}, "not an event id"),
    ("list_sessions", lambda w: {"cursor": "garbage"}, "not one this server made"),
    ("list_agents", lambda w: {"cursor": "sesn_01M7YRRKASBN4YT0QKCZ9ZRK6T"}, "not one this server made"),
    ("list_environments", lambda w: {"cursor": "x"}, "not one this server made"),
    # Wrong types.
    ("create_agent", lambda w: {"name": 42}, "valid string"),
    ("create_agent", lambda w: {"name": "a", "tools": "bash"}, "valid list"),
    ("create_agent", lambda w: {"name": "a", "tools": [{"type": "shell"}]}, "does not match any of the expected tags"),
    ("create_agent", lambda w: {"name": "a", "metadata": ["k"]}, "valid dictionary"),
    ("create_session", lambda w: {"agent_version": "one"}, "valid integer"),
    ("get_events", lambda w: {"session_id": w.session, "types": "agent.message"}, "valid list"),
    ("get_events", lambda w: {"session_id": w.session, "types": ["agent.nope"]}, "Input should be"),
    ("list_sessions", lambda w: {"status": "sleeping"}, "Input should be"),
    ("list_sessions", lambda w: {"include_archived": "maybe"}, "valid boolean"),
    # Out of range.
    ("get_events", lambda w: {"session_id": w.session, "limit": 0}, "greater than or equal to 1"),
    ("get_events", lambda w: {"session_id": w.session, "limit": 201}, "less than or equal to 200"),
    ("get_events", lambda w: {"session_id": w.session, "wait_seconds": 56}, "less than or equal to 55"),
    ("get_events", lambda w: {"session_id": w.session, "wait_seconds": -1}, "greater than or equal to 0"),
    ("list_agents", lambda w: {"limit": 101}, "less than or equal to 100"),
    ("get_agent", lambda w: {"agent_id": w.agent, "version": 0}, "greater than or equal to 1"),
    ("create_agent", lambda w: {"name": ""}, "at least 1 character"),
    ("create_agent", lambda w: {"name": "a", "metadata": {f"k{i}": "v" for i in range(17)}}, "at most 16 pairs"),
    ("create_agent", lambda w: {"name": "a", "metadata": {"k" * 65: "v"}}, "at most 64 characters"),
    ("create_agent", lambda w: {"name": "a", "model": "bad model name!"}, "should match pattern"),
    ("create_session", lambda w: {"agent_version": 1}, "agent_version needs an agent_id"),
    ("create_environment", lambda w: {"name": "big", "resources": {"cpus": 1000}}, "less than or equal to 64"),
    # Oversized strings (1 MB).
    ("create_agent", lambda w: {"name": "a", "system": ONE_MB}, "at most 100000 characters"),
    ("create_session", lambda w: {"title": ONE_MB}, "at most 1000 characters"),
    ("create_environment", lambda w: {"name": "e2", "env": {"BIG": ONE_MB}}, "at most 32768 chars"),
    ("create_environment", lambda w: {"name": "e2", "packages": {"pip": [ONE_MB]}}, "not valid pip package specs"),
    # Archived objects and wrong states.
    ("update_agent", lambda w: {"agent_id": w.archived_agent, "name": "x"}, "is archived"),
    ("create_session", lambda w: {"agent_id": w.archived_agent}, "is archived"),
    ("update_environment", lambda w: {"environment_id": w.archived_environment, "name": "y"}, "is archived"),
    ("create_session", lambda w: {"environment_id": w.archived_environment}, "is archived"),
    ("create_environment", lambda w: {"name": "e"}, "exists already"),
    ("update_agent", lambda w: {"agent_id": w.agent, "version": 5, "name": "z"}, "at version 1, not 5"),
    # Vaults and repositories.
    ("get_vault", lambda w: {"vault_id": "vlt_000000000000000000000000"}, "no vault"),
    ("delete_vault", lambda w: {"vault_id": "nope"}, "no vault"),
    ("list_credentials", lambda w: {"vault_id": "nope"}, "no vault"),
    ("delete_credential", lambda w: {"vault_id": "nope", "credential_id": "cred_x"}, "no vault"),
    ("create_vault", lambda w: {"display_name": ""}, "at least 1 character"),
    ("create_session", lambda w: {"vault_ids": ["vlt_000000000000000000000000"]}, "vlt_000000000000000000000000"),
    ("create_session", lambda w: {"vault_ids": ["not a vault"]}, "should match pattern"),
    ("create_session", lambda w: {"resources": [{"type": "file", "file_id": "f"}]}, "no file 'f'"),
    ("create_session", lambda w: {"resources": [{"type": "file", "file_id": "f", "mount_path": "/tmp/x"}]}, "/tmp"),
    ("create_session", lambda w: {"resources": [{"type": "file", "file_id": "f", "url": "x"}]}, "url"),
    ("create_session", lambda w: {"resources": [{**REPO, "url": "https://me:tok@example.com/a/b"}]}, "vault"),
    ("create_session", lambda w: {"resources": [{**REPO, "url": "ftp://example.com/a/b"}]}, "https"),
    ("create_session", lambda w: {"resources": [{**REPO, "mount_path": "/etc/x"}]}, "/workspace"),
    ("create_session", lambda w: {"resources": [{**REPO, "checkout": {"type": "commit", "sha": "xyz"}}]}, "sha"),
    ("create_session", lambda w: {"resources": [REPO, REPO]}, "same mount_path"),
    ("create_session", lambda w: {"resources": [REPO] * 17}, "at most 16"),
    # Numbers the store cannot hold.
    ("get_agent", lambda w: {"agent_id": w.agent, "version": 2**64}, "less than or equal to 2147483647"),
    ("update_agent", lambda w: {"agent_id": w.agent, "version": 2**63, "name": "x"}, "less than or equal to"),
    ("create_session", lambda w: {"agent_id": w.agent, "agent_version": 2**64}, "less than or equal to 2147483647"),
    ("read_output_file", lambda w: {"session_id": w.session, "path": "a", "offset": 2**64}, "less than or equal"),
    # Booleans are not numbers, numbers are not booleans, and numerals are not numbers.
    ("list_agents", lambda w: {"limit": True}, "valid integer"),
    ("get_agent", lambda w: {"agent_id": w.agent, "version": True}, "valid integer"),
    ("get_events", lambda w: {"session_id": w.session, "wait_seconds": True}, "valid number"),
    ("send_message", lambda w: {"session_id": w.session, "text": "hi", "wait_seconds": True}, "valid number"),
    ("get_events", lambda w: {"session_id": w.session, "limit": "5"}, "valid integer"),
    ("list_sessions", lambda w: {"include_archived": 1}, "valid boolean"),
    ("list_sessions", lambda w: {"include_archived": "true"}, "valid boolean"),
    ("confirm_tool_use", lambda w: {"session_id": w.session, "tool_use_id": w.event, "allow": 1}, "valid boolean"),
    ("create_environment", lambda w: {"name": "x", "resources": {"memory_mb": "512"}}, "valid integer"),
    ("create_environment", lambda w: {"name": "x", "resources": {"cpus": True}}, "valid number"),
    (
        "create_agent",
        lambda w: {"name": "a", "tools": [{**TOOLSET, "configs": [{"name": "bash", "enabled": 0}]}]},
        "bool",
    ),
    # Names, titles and metadata refuse NUL and control characters (tab and newline are fine).
    ("create_agent", lambda w: {"name": "a\x00b"}, "control characters"),
    ("create_agent", lambda w: {"name": "\x1b[31mred"}, "control characters"),
    ("update_agent", lambda w: {"agent_id": w.agent, "description": "bell\x07"}, "control characters"),
    ("create_agent", lambda w: {"name": "a", "metadata": {"k": "v\x1b[2J"}}, "control characters"),
    ("create_environment", lambda w: {"name": "e\x9b"}, "control characters"),
    ("update_environment", lambda w: {"environment_id": w.environment, "description": "\x00"}, "control characters"),
    ("create_session", lambda w: {"title": "t\x1b]0;pwned\x07"}, "control characters"),
    ("create_session", lambda w: {"metadata": {"\x00": "v"}}, "control characters"),
    ("create_vault", lambda w: {"display_name": "v\x00"}, "control characters"),
    ("create_vault", lambda w: {"display_name": "v", "metadata": {"k": "\x7f"}}, "control characters"),
]
TOOLSET = {"type": "agent_toolset_20260401"}


@pytest.mark.parametrize(("tool", "arguments", "expected"), CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
async def test_bad_input_is_a_clear_tool_error_and_changes_nothing(
    client: Client,
    config: ServerConfig,
    world: World,
    tool: str,
    arguments: Callable[[World], dict[str, Any]],
    expected: str,
) -> None:
    before = store_dump(config)
    error = await call_error(client, tool, arguments(world))
    assert expected in error
    assert error.strip() != f"Error executing tool {tool}"  # never the bare crash message
    assert len(error) < 4_000  # the 1 MB input is not echoed back
    assert store_dump(config) == before


def wrong_type_for(schema: dict[str, Any]) -> Any:
    """A value no branch of the property's schema accepts."""
    kinds = {branch.get("type") for branch in schema.get("anyOf", [schema])}
    if kinds & {"array"}:
        return 42
    if kinds & {"object"} or "$ref" in str(schema):
        return [[["nested"]]]
    return {"not": ["a", "scalar"]}


async def tool_schemas(client: Client) -> dict[str, dict[str, Any]]:
    return {tool.name: tool.input_schema for tool in (await client.list_tools()).tools}


async def valid_arguments(world: World, schema: dict[str, Any]) -> dict[str, Any]:
    """Minimal arguments that pass the schema, so only the property under test is wrong."""
    known = {
        "session_id": world.session,
        "agent_id": world.agent,
        "environment_id": world.environment,
        "name": "n",
        "path": "report.md",
        "text": "hello",
        "tool_use_id": "sevt_01M7YRRKASBN4YT0QKCZ9ZRK6T",
        "allow": True,
        "content": "result",
        "display_name": "a vault",
        "vault_id": "vlt_000000000000000000000000",
        "credential_id": "cred_000000000000000000000000",
        "filename": "a.txt",
        "skill": "no-such-skill",
        "files": [{"path": "SKILL.md", "content": "no front matter"}],
    }
    return {name: known[name] for name in schema.get("required", [])}


async def test_every_property_of_every_tool_refuses_a_wrong_type(
    client: Client, config: ServerConfig, world: World
) -> None:
    before = store_dump(config)
    for tool, schema in (await tool_schemas(client)).items():
        for prop, prop_schema in schema["properties"].items():
            arguments = {**await valid_arguments(world, schema), prop: wrong_type_for(prop_schema)}
            error = await call_error(client, tool, arguments)
            assert prop in error, f"{tool}.{prop}: {error}"
    assert store_dump(config) == before


async def test_every_string_property_of_every_tool_refuses_one_megabyte(
    client: Client, config: ServerConfig, world: World
) -> None:
    before = store_dump(config)
    for tool, schema in (await tool_schemas(client)).items():
        for prop, prop_schema in schema["properties"].items():
            if "string" not in str(prop_schema):
                continue
            arguments = {**await valid_arguments(world, schema), prop: ONE_MB}
            error = await call_error(client, tool, arguments)
            assert len(error) < 4_000, f"{tool}.{prop} echoed the input"
            assert error.strip() != f"Error executing tool {tool}", f"{tool}.{prop} crashed"
    assert store_dump(config) == before
