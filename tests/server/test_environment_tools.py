"""Environments through the MCP tools: validation, edits, snapshots, archive, delete."""

from __future__ import annotations

import pytest
from mcp import Client
from scenario import call_error, call_ok

pytestmark = pytest.mark.anyio


async def test_an_environment_holds_image_packages_networking_resources_and_env(client: Client) -> None:
    env = await call_ok(
        client,
        "create_environment",
        {
            "name": "data",
            "image": "python:3.12-slim",
            "packages": {
                "apt": ["jq"],
                "pip": ["pandas>=2.2,<3", "requests[socks]==2.32.3"],
                "npm": ["@scope/pkg@1.2.3"],
            },
            "networking": {"type": "unrestricted"},
            "resources": {"cpus": 1.5, "memory_mb": 2048},
            "env": {"LANG": "C.UTF-8"},
        },
    )
    assert env["id"].startswith("env_")
    assert env["networking"] == {"type": "unrestricted"}
    assert env["resources"] == {"cpus": 1.5, "memory_mb": 2048, "disk_mb": None}
    assert await call_ok(client, "get_environment", {"environment_id": env["id"]}) == env


async def test_defaults_are_no_network_and_the_servers_image(client: Client) -> None:
    env = await call_ok(client, "create_environment", {"name": "plain"})
    assert env["networking"] == {"type": "none"}
    assert env["image"] is None
    session = await call_ok(client, "create_session", {"environment_id": env["id"]})
    assert session["environment"]["image"] == "managed-sessions-sandbox:test"
    inline = await call_ok(client, "create_session", {})
    assert inline["environment_id"] is None
    assert inline["environment"]["networking"] == {"type": "none"}


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({"image": "Not An Image!"}, "not a Docker image reference"),
        ({"image": "UPPER/case"}, "not a Docker image reference"),
        ({"packages": {"pip": ["--index-url=http://evil"]}}, "not valid pip package specs"),
        ({"packages": {"pip": ["pkg; rm -rf /"]}}, "not valid pip package specs"),
        ({"packages": {"apt": ["jq && curl x"]}}, "not valid apt package specs"),
        ({"packages": {"npm": ["-g"]}}, "not valid npm package specs"),
        ({"packages": {"cargo": ["x"]}}, "Extra inputs are not permitted"),
        ({"networking": {"type": "limited", "allowed_hosts": ["example.com"]}}, "'limited' is not available yet"),
        ({"networking": {"type": "open"}}, "does not match any of the expected tags"),
        ({"resources": {"cpus": 0}}, "greater than or equal to 0.1"),
        ({"resources": {"memory_mb": 10}}, "greater than or equal to 64"),
        ({"resources": {"memory_mb": "lots"}}, "valid integer"),
        ({"env": {"1BAD": "x"}}, "env names must match"),
        ({"env": {"A": "\u0000"}}, "no NUL"),
    ],
)
async def test_invalid_definitions_are_refused_with_the_reason(
    client: Client, arguments: dict[str, object], expected: str
) -> None:
    error = await call_error(client, "create_environment", {"name": "bad", **arguments})
    assert expected in error
    assert (await call_ok(client, "list_environments", {}))["environments"] == []


async def test_names_are_unique(client: Client) -> None:
    await call_ok(client, "create_environment", {"name": "one"})
    assert "exists already" in await call_error(client, "create_environment", {"name": "one"})
    other = await call_ok(client, "create_environment", {"name": "two"})
    assert "exists already" in await call_error(
        client, "update_environment", {"environment_id": other["id"], "name": "one"}
    )


async def test_an_update_keeps_omitted_fields_and_reaches_only_new_sessions(client: Client) -> None:
    env = await call_ok(client, "create_environment", {"name": "e", "packages": {"pip": ["a==1"]}, "env": {"K": "v"}})
    before = await call_ok(client, "create_session", {"environment_id": env["id"]})
    updated = await call_ok(client, "update_environment", {"environment_id": env["id"], "packages": {"pip": ["a==2"]}})
    assert updated["packages"]["pip"] == ["a==2"]
    assert updated["env"] == {"K": "v"}
    after = await call_ok(client, "create_session", {"environment_id": env["id"]})
    assert after["environment"]["packages"]["pip"] == ["a==2"]
    assert (await call_ok(client, "get_session", {"session_id": before["id"]}))["environment"]["packages"]["pip"] == [
        "a==1"
    ]


async def test_an_archived_environment_is_read_only_and_refused_for_new_sessions(client: Client) -> None:
    env = await call_ok(client, "create_environment", {"name": "e"})
    await call_ok(client, "archive_environment", {"environment_id": env["id"]})
    assert "archived" in await call_error(client, "update_environment", {"environment_id": env["id"], "image": "x"})
    assert "archived" in await call_error(client, "create_session", {"environment_id": env["id"]})
    assert (await call_ok(client, "list_environments", {}))["environments"] == []


async def test_deleting_an_environment_leaves_its_sessions_working(client: Client) -> None:
    env = await call_ok(client, "create_environment", {"name": "e", "packages": {"apt": ["jq"]}})
    session = await call_ok(client, "create_session", {"environment_id": env["id"]})
    deleted = await call_ok(client, "delete_environment", {"environment_id": env["id"]})
    assert deleted == {"id": env["id"], "type": "environment_deleted", "deleted": True}
    assert "no environment" in await call_error(client, "get_environment", {"environment_id": env["id"]})
    kept = await call_ok(client, "get_session", {"session_id": session["id"]})
    assert kept["environment"]["packages"]["apt"] == ["jq"]
    # The name is free again.
    await call_ok(client, "create_environment", {"name": "e"})
