"""Sessions and their event logs through the MCP tools, and the long poll underneath get_events."""

from __future__ import annotations

import math
from pathlib import Path

import anyio
import docker
import docker.errors
import pytest
from mcp import Client, MCPError
from model_server import ModelServer, reply, tool_use
from scenario import call_error, call_ok
from serving import connected

from server.core.config import DEFAULT_IMAGE, ServerConfig
from server.core.events import raw_event
from server.core.sessions import EventPage
from server.hands.docker.sandbox import LABEL_SESSION
from server.services.runtime import open_runtime
from server.services.sessions import MAX_EVENT_FIELD_CHARS, NewSession

pytestmark = pytest.mark.anyio

HANG_GUARD_S = 60
"""Only stops a test that hangs; nothing here is timed."""


async def test_an_inline_session_gets_the_model_system_and_full_toolset(client: Client) -> None:
    session = await call_ok(client, "create_session", {"model": "claude-x", "system": "Be terse.", "title": "t"})
    assert session["id"].startswith("sesn_")
    assert session["status"] == "idle"
    assert session["agent"]["id"] is None
    assert session["agent"]["model"] == {"id": "claude-x"}
    assert session["agent"]["system"] == "Be terse."
    assert session["agent"]["tools"][0]["type"] == "agent_toolset_20260401"
    assert session["stats"] == {"event_count": 0, "last_event_at": None}
    assert session["usage"]["input_tokens"] == 0


async def test_model_and_system_override_a_defined_agent_for_that_session_only(client: Client) -> None:
    agent = await call_ok(client, "create_agent", {"name": "a", "system": "agent's", "model": "claude-a"})
    session = await call_ok(client, "create_session", {"agent_id": agent["id"], "model": "claude-b"})
    assert session["agent"]["model"] == {"id": "claude-b"}
    assert session["agent"]["system"] == "agent's"
    assert (await call_ok(client, "get_agent", {"agent_id": agent["id"]}))["model"] == {"id": "claude-a"}


async def test_list_sessions_filters_by_agent_and_status_and_pages(client: Client) -> None:
    agent = await call_ok(client, "create_agent", {"name": "a"})
    mine = [(await call_ok(client, "create_session", {"agent_id": agent["id"]}))["id"] for _ in range(3)]
    other = (await call_ok(client, "create_session", {}))["id"]
    page = await call_ok(client, "list_sessions", {"agent_id": agent["id"], "limit": 2})
    rest = await call_ok(client, "list_sessions", {"agent_id": agent["id"], "limit": 2, "cursor": page["next_cursor"]})
    assert [s["id"] for s in page["sessions"] + rest["sessions"]] == list(reversed(mine))
    assert rest["next_cursor"] is None
    await call_ok(client, "archive_session", {"session_id": other})
    assert [s["id"] for s in (await call_ok(client, "list_sessions", {}))["sessions"]] == list(reversed(mine))
    terminated = await call_ok(client, "list_sessions", {"status": "terminated", "include_archived": True})
    assert [s["id"] for s in terminated["sessions"]] == [other]
    idle = await call_ok(client, "list_sessions", {"status": "idle"})
    assert len(idle["sessions"]) == 3


async def test_archiving_twice_records_one_terminated_event(client: Client) -> None:
    session = await call_ok(client, "create_session", {})
    first = await call_ok(client, "archive_session", {"session_id": session["id"]})
    second = await call_ok(client, "archive_session", {"session_id": session["id"]})
    assert first["archived_at"] == second["archived_at"]
    assert second["stats"]["event_count"] == 1


@pytest.mark.docker
async def test_delete_removes_the_session_its_events_and_its_files(
    data_dir: Path, docker_client: docker.DockerClient, model: ModelServer
) -> None:
    config = ServerConfig(data_dir=data_dir, image=DEFAULT_IMAGE, model="claude-test", model_key_present=True)
    model.enqueue(
        reply(tool_use("write", {"file_path": "/mnt/session/outputs/report.md", "content": "done"})),
        reply("Written."),
    )
    async with connected(config) as client:
        session = await call_ok(client, "create_session", {})
        sid = session["id"]
        labelled = {"label": f"{LABEL_SESSION}={sid}"}
        assert (await call_ok(client, "send_message", {"session_id": sid, "text": "write it"}))["reply"] == "Written."
        # The tool call made the session's sandbox: its container and its two volumes, holding the file.
        listing = await call_ok(client, "list_output_files", {"session_id": sid})
        assert [f["path"] for f in listing["files"]] == ["report.md"]
        assert len(docker_client.containers.list(all=True, filters=labelled)) == 1
        volumes = {v.name for v in docker_client.volumes.list(filters=labelled)}
        assert len(volumes) == 2
        # What the host keeps for a session (repository markers) lives here; none is made without resources.
        host_folder = config.data_dir / "sessions" / sid
        (host_folder / "resources").mkdir(parents=True)
        (host_folder / "resources" / "repo.delivered").touch()

        deleted = await call_ok(client, "delete_session", {"session_id": sid})

        assert deleted == {"id": sid, "type": "session_deleted", "deleted": True}
        assert docker_client.containers.list(all=True, filters=labelled) == []
        assert docker_client.volumes.list(filters=labelled) == []
        for name in volumes:
            with pytest.raises(docker.errors.NotFound):
                docker_client.volumes.get(name)
        assert not host_folder.exists()
        assert "no session" in await call_error(client, "get_events", {"session_id": sid})


async def test_the_session_resource_serves_json_and_refuses_unknown_ids(client: Client) -> None:
    session = await call_ok(client, "create_session", {"title": "res"})
    resource = await client.read_resource(f"session://{session['id']}")
    assert '"title": "res"' in resource.contents[0].text  # type: ignore[union-attr]
    with pytest.raises(MCPError) as raised:
        await client.read_resource("session://sesn_nope")
    assert raised.value.error.code == -32602


async def make_session_with_events(config: ServerConfig, count: int) -> tuple[str, list[str]]:
    async with open_runtime(config) as runtime:
        session = await runtime.sessions.create(NewSession())
        events = await runtime.sessions.append(
            session.id,
            [raw_event("agent.message", {"content": [{"type": "text", "text": f"m{i}"}]}) for i in range(count)],
        )
    return session.id, [e.id for e in events]


async def test_get_events_pages_with_a_cursor_and_filters_by_type(config: ServerConfig, client: Client) -> None:
    session_id, event_ids = await make_session_with_events(config, 5)
    first = await call_ok(client, "get_events", {"session_id": session_id, "limit": 2})
    assert [e["id"] for e in first["events"]] == event_ids[:2]
    assert [e["seq"] for e in first["events"]] == [1, 2]
    assert first["has_more"] is True
    rest = await call_ok(client, "get_events", {"session_id": session_id, "after": first["next_cursor"]})
    assert [e["id"] for e in rest["events"]] == event_ids[2:]
    assert rest["has_more"] is False
    tail = await call_ok(client, "get_events", {"session_id": session_id, "after": rest["next_cursor"]})
    assert tail["events"] == []
    assert tail["next_cursor"] == rest["next_cursor"]  # keep polling from the same place
    typed = await call_ok(client, "get_events", {"session_id": session_id, "types": ["session.status_idle"]})
    assert typed["events"] == []
    assert rest["events"][0]["content"] == [{"type": "text", "text": "m2"}]


async def test_a_cursor_from_another_session_is_refused(config: ServerConfig, client: Client) -> None:
    _, event_ids = await make_session_with_events(config, 1)
    other = await call_ok(client, "create_session", {})
    error = await call_error(client, "get_events", {"session_id": other["id"], "after": event_ids[0]})
    assert "has no event" in error


async def test_long_strings_are_cut_in_tool_returns_but_kept_whole_in_the_store(
    config: ServerConfig, client: Client
) -> None:
    async with open_runtime(config) as runtime:
        session = await runtime.sessions.create(NewSession())
        big = "x" * (MAX_EVENT_FIELD_CHARS * 3)
        await runtime.sessions.append(
            session.id, [raw_event("agent.message", {"content": [{"type": "text", "text": big}]})]
        )
        stored = runtime.store.read_events(session.id, 0, 10)
        assert stored[0].payload()["content"] == [{"type": "text", "text": big}]
    page = await call_ok(client, "get_events", {"session_id": session.id})
    text = page["events"][0]["content"][0]["text"]
    assert len(text) < MAX_EVENT_FIELD_CHARS + 200
    assert f"{MAX_EVENT_FIELD_CHARS * 2} more chars" in text


async def test_a_long_poll_returns_as_soon_as_an_event_is_appended(data_dir: Path) -> None:
    config = ServerConfig(data_dir=data_dir)
    async with open_runtime(config) as runtime:
        session = await runtime.sessions.create(NewSession())
        results: list[EventPage] = []
        returned = anyio.Event()

        async def poll() -> None:
            # A wait that never runs out by itself: only the append's wake-up can end this poll.
            results.append(await runtime.sessions.events(session.id, None, 10, None, wait_s=math.inf))
            returned.set()

        with anyio.fail_after(HANG_GUARD_S):
            async with anyio.create_task_group() as tg:
                tg.start_soon(poll)
                await anyio.wait_all_tasks_blocked()
                assert not returned.is_set()  # the poll is waiting: the log is empty
                [appended] = await runtime.sessions.append(session.id, [raw_event("session.status_running", {})])
                await returned.wait()
                # Appended only after the poll had returned: a poll that waited on would have taken it too.
                later = raw_event("agent.message", {"content": [{"type": "text", "text": "later"}]})
                await runtime.sessions.append(session.id, [later])
        assert [e.id for e in results[0].events] == [appended.id]
        assert results[0].status == "running"


async def test_a_long_poll_with_nothing_new_returns_empty_after_its_wait(data_dir: Path) -> None:
    async with open_runtime(ServerConfig(data_dir=data_dir)) as runtime:
        session = await runtime.sessions.create(NewSession())
        page = await runtime.sessions.events(session.id, None, 10, None, wait_s=0.05)
        assert page.events == []


async def test_a_running_session_cannot_be_archived_or_deleted(config: ServerConfig, client: Client) -> None:
    async with open_runtime(config) as runtime:
        session = await runtime.sessions.create(NewSession())
        await runtime.sessions.append(session.id, [raw_event("session.status_running", {})])
    for tool in ("archive_session", "delete_session"):
        error = await call_error(client, tool, {"session_id": session.id})
        assert "is running; call interrupt_session" in error
    assert (await call_ok(client, "get_session", {"session_id": session.id}))["status"] == "running"
