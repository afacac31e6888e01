"""One end-to-end scenario, run over every transport: define, create, read, archive, delete."""

from __future__ import annotations

from typing import Any

from mcp import Client
from mcp.types import CallToolResult, TextResourceContents


async def call_ok(client: Client, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """Calls a tool that must succeed; returns its structured content."""
    result: CallToolResult = await client.call_tool(tool, arguments)
    text = result.content[0].text if result.content and result.content[0].type == "text" else ""
    assert not result.is_error, f"{tool} failed: {text}"
    assert result.structured_content is not None
    return result.structured_content


async def call_error(client: Client, tool: str, arguments: dict[str, Any]) -> str:
    """Calls a tool that must fail with a tool error; returns the error text."""
    result = await client.call_tool(tool, arguments)
    assert result.is_error, f"{tool} should have failed: {result.structured_content}"
    assert result.content
    assert result.content[0].type == "text"
    return result.content[0].text


async def wait_for_idle(client: Client, session_id: str, after: str) -> dict[str, Any]:
    """Long-polls until an idle event after `after` (bounded: the server's run always idles)."""
    for _ in range(20):
        page = await call_ok(
            client,
            "get_events",
            {"session_id": session_id, "after": after, "wait_seconds": 10, "types": ["session.status_idle"]},
        )
        if page["events"]:
            return page
    raise AssertionError("the session never went idle")


async def wait_requires_action(client: Client, session_id: str, exclude: str) -> str:
    """Polls until the session idles on `requires_action` for a tool use other than `exclude`; returns its id."""
    for _ in range(60):
        state = await call_ok(client, "get_session", {"session_id": session_id})
        reason = state.get("stop_reason") or {}
        if state["status"] == "idle" and reason.get("type") == "requires_action" and exclude not in reason["event_ids"]:
            return str(reason["event_ids"][0])
        await call_ok(
            client,
            "get_events",
            {"session_id": session_id, "wait_seconds": 0.5, "after": None, "types": ["user.interrupt"]},
        )
    raise AssertionError("no new requires_action")


async def wait_end_turn(client: Client, session_id: str) -> str:
    """Polls until the session idles with `end_turn`; returns its last agent message's text."""
    for _ in range(60):
        state = await call_ok(client, "get_session", {"session_id": session_id})
        if state["status"] == "idle" and (state.get("stop_reason") or {}).get("type") == "end_turn":
            page = await call_ok(
                client, "get_events", {"session_id": session_id, "limit": 200, "types": ["agent.message"]}
            )
            return str(page["events"][-1]["content"][0]["text"])
        await call_ok(
            client,
            "get_events",
            {"session_id": session_id, "wait_seconds": 0.5, "after": None, "types": ["user.interrupt"]},
        )
    raise AssertionError("the session never finished its turn")


async def run_scenario(client: Client) -> None:
    tools = {tool.name for tool in (await client.list_tools()).tools}
    assert {
        "create_session",
        "get_session",
        "list_sessions",
        "get_events",
        "create_agent",
        "create_environment",
    } <= tools

    env = await call_ok(client, "create_environment", {"name": "python", "packages": {"pip": ["requests==2.32.3"]}})
    agent = await call_ok(client, "create_agent", {"name": "coder", "system": "You write code."})
    session = await call_ok(
        client, "create_session", {"agent_id": agent["id"], "environment_id": env["id"], "title": "e2e"}
    )
    assert session["status"] == "idle"
    assert session["agent"]["version"] == 1
    assert session["environment"]["packages"]["pip"] == ["requests==2.32.3"]

    listed = await call_ok(client, "list_sessions", {"agent_id": agent["id"]})
    assert [s["id"] for s in listed["sessions"]] == [session["id"]]

    page = await call_ok(client, "get_events", {"session_id": session["id"]})
    assert page["events"] == []
    assert page["status"] == "idle"

    resource = await client.read_resource(f"session://{session['id']}")
    contents = resource.contents[0]
    assert isinstance(contents, TextResourceContents)
    assert f'"id": "{session["id"]}"' in contents.text

    archived = await call_ok(client, "archive_session", {"session_id": session["id"]})
    assert archived["status"] == "terminated"
    page = await call_ok(client, "get_events", {"session_id": session["id"]})
    assert [e["type"] for e in page["events"]] == ["session.status_terminated"]
    assert page["events"][0]["seq"] == 1

    assert "no session" in await call_error(client, "get_session", {"session_id": "sesn_missing"})
    deleted = await call_ok(client, "delete_session", {"session_id": session["id"]})
    assert deleted == {"id": session["id"], "type": "session_deleted", "deleted": True}
    assert "no session" in await call_error(client, "get_session", {"session_id": session["id"]})
