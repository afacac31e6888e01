"""The Docker engine goes away in the middle of a tool loop: the loop waits for it instead of feeding the model a
string of failures, idles once when it stays away, and the session goes on when it is back.

The server runs in process with `DOCKER_HOST` naming a socket the test controls (tests/docker_proxy.py): a cut
closes that socket and every connection through it, exec streams included, as a stopped engine would, while the
real engine and its containers stay as they are. Stopping dockerd itself would stop every container on the
machine, including other tests'.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import anyio
import docker
import docker.errors
import pytest
from docker_proxy import DockerProxy
from log_checks import assert_log_is_valid, read_log
from mcp import Client
from model_server import ModelServer, RecordedRequest, Reply, reply, tool_use
from sandbox_probes import LONG_COMMAND, containers_of, wait_for_running_command, wait_until_gone
from scenario import call_ok
from serving import connected

from server.core.config import DEFAULT_IMAGE, ServerConfig

pytestmark = [pytest.mark.docker, pytest.mark.anyio]

HANG_GUARD_S = 180


def config_for(data_dir: Path, engine_wait_s: float) -> ServerConfig:
    return ServerConfig(
        data_dir=data_dir,
        image=DEFAULT_IMAGE,
        model="claude-test",
        model_key_present=True,
        model_retry_delays_s=(0.01,),
        engine_wait_s=engine_wait_s,
    )


async def wait_for(client: Client, session_id: str, event_type: str, after: str | None = None) -> dict[str, Any]:
    """The first `event_type` event after `after` (long polls; bounded by the caller's hang guard)."""
    while True:
        page = await call_ok(
            client,
            "get_events",
            {"session_id": session_id, "after": after, "types": [event_type], "wait_seconds": 5},
        )
        if page["events"]:
            return dict(page["events"][0])


async def all_events(client: Client, session_id: str) -> list[dict[str, Any]]:
    return list((await call_ok(client, "get_events", {"session_id": session_id, "limit": 200}))["events"])


def results(events: list[dict[str, Any]]) -> list[tuple[bool, str]]:
    return [(e["is_error"], e["content"][0]["text"]) for e in events if e["type"] == "agent.tool_result"]


@pytest.mark.parametrize("networking", ["none", "limited"])
async def test_an_engine_that_goes_away_between_tool_calls_is_waited_for_and_the_loop_goes_on(
    engine: DockerProxy, data_dir: Path, model: ModelServer, networking: str, docker_client: docker.DockerClient
) -> None:
    """A `limited` sandbox too: its network, proxy admission and policy survive the outage."""

    def cut_then_read(request: RecordedRequest) -> Reply:
        engine.cut()  # the first call's exec stream goes with it
        return reply(tool_use("bash", {"command": "cat /workspace/note"}))

    model.enqueue(
        reply(tool_use("bash", {"command": "echo kept > /workspace/note"})),
        cut_then_read,
        lambda request: reply(f"read {list(request.tool_results().values())}"),
    )
    with anyio.fail_after(HANG_GUARD_S):
        async with connected(config_for(data_dir, engine_wait_s=120)) as client:
            env = {"name": "outage", "networking": {"type": networking}}
            environment_id = (await call_ok(client, "create_environment", env))["id"]
            sid = (await call_ok(client, "create_session", {"environment_id": environment_id}))["id"]
            await call_ok(client, "send_message", {"session_id": sid, "text": "go", "wait_seconds": 0})
            waiting = await wait_for(client, sid, "session.error")
            assert waiting["error"]["retry_status"] == {"type": "retrying"}
            assert "the Docker engine does not answer" in waiting["error"]["message"]
            assert "Waiting up to 120 s" in waiting["error"]["message"]

            # The server answers throughout; the session is running, waiting for the engine.
            assert (await call_ok(client, "get_session", {"session_id": sid}))["status"] == "running"
            assert len((await call_ok(client, "list_sessions", {}))["sessions"]) == 1

            engine.restore()
            idle = await wait_for(client, sid, "session.status_idle", after=waiting["id"])
            assert idle["stop_reason"]["type"] == "end_turn"
            events = await all_events(client, sid)
            sandbox = (await call_ok(client, "get_session", {"session_id": sid}))["sandbox"]
            assert sandbox["egress"]["mode"] == networking
            [container] = containers_of(docker_client, sid)
            container.reload()
            joined = set(container.attrs["NetworkSettings"]["Networks"])
            assert joined == ({"none"} if networking == "none" else {sandbox["network"]})

    assert [e["error"]["retry_status"]["type"] for e in events if e["type"] == "session.error"] == ["retrying"]
    assert results(events) == [(False, ""), (False, "kept")]  # the second call ran once the engine was back
    assert len(model.requests) == 3  # the model never saw the outage
    assert_log_is_valid(read_log(data_dir, sid))


async def test_an_engine_that_stays_away_idles_the_session_once_and_archive_still_works(
    engine: DockerProxy, data_dir: Path, model: ModelServer, docker_client: docker.DockerClient
) -> None:
    model.enqueue(
        reply(tool_use("bash", {"command": LONG_COMMAND})),
        reply(tool_use("bash", {"command": "echo next"})),
    )
    config = config_for(data_dir, engine_wait_s=2)
    with anyio.fail_after(HANG_GUARD_S):
        async with connected(config) as client:
            sid = (await call_ok(client, "create_session", {}))["id"]
            await call_ok(client, "send_message", {"session_id": sid, "text": "go", "wait_seconds": 0})
            await anyio.to_thread.run_sync(wait_for_running_command, docker_client, sid)
            engine.cut()  # while the command runs

            idle = await wait_for(client, sid, "session.status_idle")
            assert idle["stop_reason"]["type"] == "retries_exhausted"
            events = await all_events(client, sid)
            # The running call lost its engine: its outcome is unknown, and the model is told so, once.
            ((is_error, text),) = results(events)
            assert is_error
            assert "the connection to the Docker engine was lost during this call" in text
            # The next call waited, then gave up without running: one retrying error, one exhausted, no result.
            errors = [e["error"] for e in events if e["type"] == "session.error"]
            assert [e["retry_status"]["type"] for e in errors] == ["retrying", "exhausted"]
            assert "Waited 2 s for it; nothing ran" in errors[1]["message"]
            assert len(model.requests) == 2

            archived = await call_ok(client, "archive_session", {"session_id": sid})
            assert archived["status"] == "terminated"
            assert containers_of(docker_client, sid)  # the engine was away: the container is still there

        engine.restore()
        async with connected(config) as client:  # the start-up reaper removes what no session needs
            await anyio.to_thread.run_sync(wait_until_gone, docker_client, sid)
            assert (await call_ok(client, "get_session", {"session_id": sid}))["status"] == "terminated"
    assert_log_is_valid(read_log(data_dir, sid), settled=False)  # the unanswered use stays unanswered: it never ran


async def test_a_session_idled_by_an_outage_runs_its_waiting_tool_with_the_next_message(
    engine: DockerProxy, data_dir: Path, model: ModelServer
) -> None:
    model.enqueue(
        reply(tool_use("bash", {"command": "echo ran"})),
        lambda request: reply(f"{list(request.tool_results().values())} then {request.messages[-1]['content'][-1]}"),
    )
    engine.cut()  # away from the start
    with anyio.fail_after(HANG_GUARD_S):
        async with connected(config_for(data_dir, engine_wait_s=1)) as client:
            sid = (await call_ok(client, "create_session", {}))["id"]
            first = await call_ok(client, "send_message", {"session_id": sid, "text": "go"})
            assert first["stop_reason"]["type"] == "retries_exhausted"

            engine.restore()
            second = await call_ok(client, "send_message", {"session_id": sid, "text": "the engine is back"})
            assert second["stop_reason"]["type"] == "end_turn"
            events = await all_events(client, sid)
    assert results(events) == [(False, "ran")]
    assert len(model.requests) == 2
    assert "the engine is back" in str(model.requests[-1].messages)
    assert_log_is_valid(read_log(data_dir, sid))


async def test_a_sandbox_that_cannot_start_idles_the_session_once_without_asking_the_model_again(
    engine: DockerProxy, data_dir: Path, model: ModelServer
) -> None:
    """No waiting here: an image that is not on the engine and cannot be pulled (its registry refuses at once)
    will not appear by itself. The error says how to get it; the tool runs with the next message."""
    model.enqueue(reply(tool_use("bash", {"command": "echo hi"})))
    with anyio.fail_after(HANG_GUARD_S):
        async with connected(config_for(data_dir, engine_wait_s=120)) as client:
            environment = await call_ok(
                client, "create_environment", {"name": "gone", "image": "localhost:1/nowhere/missing:1"}
            )
            sid = (await call_ok(client, "create_session", {"environment_id": environment["id"]}))["id"]
            outcome = await call_ok(client, "send_message", {"session_id": sid, "text": "go"})
            assert outcome["stop_reason"]["type"] == "retries_exhausted"
            (error,) = [e["error"] for e in outcome["events"] if e["type"] == "session.error"]
            assert error["retry_status"] == {"type": "exhausted"}
            assert "localhost:1/nowhere/missing:1" in error["message"]
            assert "docker pull" in error["message"]  # how to get it
            assert "Nothing ran; send a message to go on once this is fixed" in error["message"]
            assert results(outcome["events"]) == []
            assert len(model.requests) == 1

            again = await call_ok(client, "send_message", {"session_id": sid, "text": "and now?"})
            assert again["stop_reason"]["type"] == "retries_exhausted"  # still missing: tried again, no model call
            assert len(model.requests) == 1
    assert_log_is_valid(read_log(data_dir, sid), settled=False)


async def test_with_a_warm_pool_an_outage_between_tool_calls_is_waited_for_and_the_loop_goes_on(
    engine: DockerProxy, data_dir: Path, model: ModelServer
) -> None:
    """With the pool on (the first call may take a pooled container, whose volumes then hold the files), a refill
    or a take that meets the outage is logged and tried again later: the session waits for the engine like any
    other, and its next call finds its files."""

    def cut_then_read(request: RecordedRequest) -> Reply:
        engine.cut()
        return reply(tool_use("bash", {"command": "cat /workspace/note"}))

    model.enqueue(
        reply(tool_use("bash", {"command": "echo kept > /workspace/note"})),
        cut_then_read,
        lambda request: reply(f"read {list(request.tool_results().values())}"),
    )
    config = dataclasses.replace(config_for(data_dir, engine_wait_s=120), warm_pool=1)
    with anyio.fail_after(HANG_GUARD_S):
        async with connected(config) as client:
            sid = (await call_ok(client, "create_session", {}))["id"]
            await call_ok(client, "send_message", {"session_id": sid, "text": "go", "wait_seconds": 0})
            waiting = await wait_for(client, sid, "session.error")
            assert waiting["error"]["retry_status"] == {"type": "retrying"}
            assert (await call_ok(client, "list_sessions", {}))["sessions"][0]["status"] == "running"
            engine.restore()
            idle = await wait_for(client, sid, "session.status_idle", after=waiting["id"])
            assert idle["stop_reason"]["type"] == "end_turn"
            events = await all_events(client, sid)

    assert results(events) == [(False, ""), (False, "kept")]
    assert len(model.requests) == 3
    assert_log_is_valid(read_log(data_dir, sid))
