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
        ({"image": "a/" * 128 + "b:tag"}, "at most 255 characters"),
        ({"image": "a" * 100_000}, "at most 255 characters"),
        ({"packages": {"pip": ["--index-url=http://evil"]}}, "not valid pip package specs"),
        ({"packages": {"pip": ["pkg; rm -rf /"]}}, "not valid pip package specs"),
        ({"packages": {"apt": ["jq && curl x"]}}, "not valid apt package specs"),
        ({"packages": {"npm": ["-g"]}}, "not valid npm package specs"),
        ({"packages": {"cargo": ["x"]}}, "Extra inputs are not permitted"),
        ({"networking": {"type": "limited", "allowed_hosts": ["https://example.com/x"]}}, "no spaces, schemes, paths"),
        ({"networking": {"type": "limited", "allowed_hosts": ["a.*.example.com"]}}, "is not a valid host name"),
        ({"networking": {"type": "limited", "allowed_hosts": ["example.com:99999"]}}, "port '99999'"),
        ({"networking": {"type": "limited", "allowed_hosts": [f"h{i}.example.com" for i in range(257)]}}, "256"),
        ({"networking": {"type": "limited", "allowed_hosts": "example.com"}}, "valid list"),
        ({"networking": {"type": "limited", "allow_package_managers": "yes"}}, "valid boolean"),
        (
            {"networking": {"type": "limited"}, "packages": {"pip": ["requests"]}},
            "set networking.allow_package_managers: true, or drop the packages",
        ),
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
    assert "Value error" not in error  # our validators' own words, without pydantic's prefix
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


async def test_limited_networking_keeps_its_allow_list_normalised_and_once(client: Client) -> None:
    networking = {
        "type": "limited",
        "allowed_hosts": ["API.Example.com.", "api.example.com", "*.pypi.example.org", "[2001:DB8::1]:8443"],
        "allow_package_managers": True,
    }
    env = await call_ok(
        client, "create_environment", {"name": "l", "networking": networking, "packages": {"pip": ["a==1"]}}
    )
    assert env["networking"] == {
        "type": "limited",
        "allowed_hosts": ["api.example.com", "*.pypi.example.org", "[2001:db8::1]:8443"],
        "allow_package_managers": True,
        "allow_mcp_servers": False,
    }
    assert await call_ok(client, "get_environment", {"environment_id": env["id"]}) == env
    session = await call_ok(client, "create_session", {"environment_id": env["id"]})
    assert session["environment"]["networking"] == env["networking"]
    bare = await call_ok(client, "create_environment", {"name": "bare", "networking": {"type": "limited"}})
    assert bare["networking"]["allowed_hosts"] == []


async def test_packages_under_limited_need_package_managers_whichever_changes_first(client: Client) -> None:
    """update_environment checks the merged result, so neither order of two updates slips through."""
    refusal = "set networking.allow_package_managers: true, or drop the packages"
    limited = {"type": "limited", "allowed_hosts": ["example.com"]}
    closed = await call_ok(client, "create_environment", {"name": "closed", "networking": limited})
    # Packages added to a limited environment without package managers...
    assert refusal in await call_error(
        client, "update_environment", {"environment_id": closed["id"], "packages": {"npm": ["left-pad"]}}
    )
    # ... and limited networking put on an environment with packages.
    packaged = await call_ok(client, "create_environment", {"name": "packaged", "packages": {"apt": ["jq"]}})
    assert refusal in await call_error(
        client, "update_environment", {"environment_id": packaged["id"], "networking": limited}
    )
    # Package managers switched off under packages that are kept.
    opened = {**limited, "allow_package_managers": True}
    ok = await call_ok(client, "update_environment", {"environment_id": packaged["id"], "networking": opened})
    assert ok["networking"]["allow_package_managers"] is True
    assert refusal in await call_error(
        client, "update_environment", {"environment_id": packaged["id"], "networking": limited}
    )
    # Nothing half-written; emptying the packages makes the limited network acceptable without them.
    assert (await call_ok(client, "get_environment", {"environment_id": closed["id"]}))["packages"]["npm"] == []
    emptied = await call_ok(
        client,
        "update_environment",
        {"environment_id": packaged["id"], "packages": {"apt": []}, "networking": limited},
    )
    assert emptied["networking"]["allow_package_managers"] is False


async def test_warm_pool_is_kept_across_edits_and_refused_with_limited_networking(client: Client) -> None:
    env = await call_ok(client, "create_environment", {"name": "pooled", "warm_pool": 2})
    assert env["warm_pool"] == 2
    edited = await call_ok(client, "update_environment", {"environment_id": env["id"], "env": {"A": "b"}})
    assert edited["warm_pool"] == 2
    limited = {"type": "limited", "allowed_hosts": ["example.com"]}
    error = await call_error(client, "update_environment", {"environment_id": env["id"], "networking": limited})
    assert "warm_pool needs networking 'none' or 'unrestricted'" in error
    error = await call_error(client, "create_environment", {"name": "proxied", "networking": limited, "warm_pool": 1})
    assert "warm_pool needs networking 'none' or 'unrestricted'" in error
    assert "less than or equal to 8" in await call_error(client, "create_environment", {"name": "big", "warm_pool": 9})
    plain = await call_ok(client, "create_environment", {"name": "plain"})
    assert plain["warm_pool"] == 0
