"""Lean idling against a real engine: idle containers stop and come back with their files, a clean shutdown
leaves nothing running that no session needs, and reading outputs never starts a container."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import docker
import pytest
from mcp import Client, MCPError
from model_server import ModelServer, hang, reply, tool_use
from rest_serving import rest_server
from scenario import call_error, call_ok

from server.core.config import ServerConfig
from server.fronts.mcp.server import build_server
from server.hands.docker.pool import SandboxPool
from server.hands.docker.sandbox import LABEL_SESSION, RESTART_NOTICE
from server.services.runtime import Runtime, open_runtime

pytestmark = [pytest.mark.docker, pytest.mark.anyio]

HANG_GUARD_S = 120
"""Only stops a test that hangs; what a test checks is states, never how long something took."""


@pytest.fixture
def idle_config(docker_loop_config: ServerConfig) -> ServerConfig:
    return docker_loop_config


@asynccontextmanager
async def serving(config: ServerConfig) -> AsyncIterator[tuple[Runtime, Client]]:
    async with open_runtime(config) as runtime, Client(build_server(runtime)) as client:
        yield runtime, client


def states(client: docker.DockerClient, session_id: str) -> list[str]:
    """The states of the session's containers, however many there are."""
    found = client.containers.list(all=True, filters={"label": f"{LABEL_SESSION}={session_id}"})
    return sorted(str(c.status) for c in found)


async def tool_results(client: Client, session_id: str) -> list[dict[str, Any]]:
    page = await call_ok(client, "get_events", {"session_id": session_id, "limit": 200})
    return [e for e in page["events"] if e["type"] == "agent.tool_result"]


async def test_an_idle_container_stops_and_the_next_call_finds_its_files_and_hears_the_shell_restarted(
    idle_config: ServerConfig, model: ModelServer, docker_client: docker.DockerClient
) -> None:
    model.enqueue(
        reply(
            tool_use("bash", {"command": "export MARK=set; echo kept > w.txt; echo out > /mnt/session/outputs/o.txt"})
        ),
        reply("Saved."),
        reply(tool_use("bash", {"command": 'echo "mark=$MARK"; cat w.txt /mnt/session/outputs/o.txt'})),
        reply(tool_use("bash", {"command": "echo again"})),
        reply("Both there."),
    )
    config = dataclasses.replace(idle_config, idle_stop_s=0.2)
    async with serving(config) as (runtime, client):
        pool = runtime.sandboxes
        assert isinstance(pool, SandboxPool)
        sid = (await call_ok(client, "create_session", {}))["id"]
        await call_ok(client, "send_message", {"session_id": sid, "text": "save"})
        with anyio.fail_after(HANG_GUARD_S):
            while not pool.idle_stopped.get(sid):
                await pool.idle_swept.wait()
        assert states(docker_client, sid) == ["exited"]

        second = await call_ok(client, "send_message", {"session_id": sid, "text": "still there?"})
        assert second["reply"] == "Both there."
        _, after_idle, next_one = await tool_results(client, sid)
        texts = [block["text"] for block in after_idle["content"]]
        assert texts[0] == RESTART_NOTICE
        assert "mark=\n" in texts[1]  # the shell's variables went with the old container ...
        assert "kept\nout" in texts[1]  # ... its files did not
        assert [block["text"] for block in next_one["content"]] == ["again"]  # said once
        assert states(docker_client, sid) == ["running"]
        await call_ok(client, "delete_session", {"session_id": sid})


async def test_a_clean_shutdown_stops_idle_sessions_containers_and_keeps_running_ones(
    idle_config: ServerConfig, model: ModelServer, docker_client: docker.DockerClient
) -> None:
    release = threading.Event()
    model.enqueue(
        reply(tool_use("bash", {"command": "echo idle"})),
        reply("Done."),
        reply(tool_use("bash", {"command": "echo busy"})),
        hang("thinking", release=release),
    )
    try:
        async with serving(idle_config) as (_, client):
            idle = (await call_ok(client, "create_session", {}))["id"]
            await call_ok(client, "send_message", {"session_id": idle, "text": "one turn"})
            busy = (await call_ok(client, "create_session", {}))["id"]
            await call_ok(client, "send_message", {"session_id": busy, "text": "a long one", "wait_seconds": 0})
            await anyio.to_thread.run_sync(lambda: model.wait_for_requests(4, timeout_s=HANG_GUARD_S))
            assert states(docker_client, idle) == ["running"]
            assert states(docker_client, busy) == ["running"]
        assert states(docker_client, idle) == ["exited"]  # files kept, nothing running for it
        assert states(docker_client, busy) == ["running"]  # the next server resumes this run
    finally:
        release.set()


async def test_reading_outputs_never_starts_a_container(
    idle_config: ServerConfig, model: ModelServer, docker_client: docker.DockerClient
) -> None:
    model.enqueue(reply(tool_use("bash", {"command": "echo out > /mnt/session/outputs/o.txt"})), reply("Saved."))
    async with serving(idle_config) as (_, client):
        fresh = (await call_ok(client, "create_session", {}))["id"]
        assert await call_ok(client, "list_output_files", {"session_id": fresh}) == {"session_id": fresh, "files": []}
        error = await call_error(client, "read_output_file", {"session_id": fresh, "path": "o.txt"})
        assert "no such file" in error
        with pytest.raises(MCPError):
            await client.read_resource(f"session://{fresh}/outputs/o.txt")
        assert states(docker_client, fresh) == []  # nothing was made for it

        used = (await call_ok(client, "create_session", {}))["id"]
        await call_ok(client, "send_message", {"session_id": used, "text": "save"})
    assert states(docker_client, used) == ["exited"]  # stopped by the clean shutdown

    async with serving(idle_config) as (_, client):
        listing = await call_ok(client, "list_output_files", {"session_id": used})
        assert [f["path"] for f in listing["files"]] == ["o.txt"]
        read = await call_ok(client, "read_output_file", {"session_id": used, "path": "o.txt"})
        assert read["size_bytes"] == 4
        resource = await client.read_resource(f"session://{used}/outputs/o.txt")
        assert resource.contents[0].text == "out\n"  # type: ignore[union-attr]
        assert states(docker_client, used) == ["exited"]

    def download_over_rest() -> bytes:
        with rest_server(idle_config) as rest:
            api = rest.client()
            [listed] = api.beta.files.list(scope_id=used)
            return api.beta.files.download(listed.id).read()

    assert await anyio.to_thread.run_sync(download_over_rest) == b"out\n"
    assert states(docker_client, used) == ["exited"]

    async with serving(idle_config) as (_, client):
        await call_ok(client, "archive_session", {"session_id": used})
        assert states(docker_client, used) == []
        listing = await call_ok(client, "list_output_files", {"session_id": used})
        assert [f["path"] for f in listing["files"]] == ["o.txt"]
        assert "running" not in states(docker_client, used)


OUTPUTS_SETUP = (
    "cd /mnt/session/outputs && mkdir -p reports/deep && printf '# Done\\n' > reports/summary.md"
    " && head -c 3000 /dev/urandom > reports/deep/data.bin && echo twice > one.txt && ln one.txt two.txt"
    " && ln -s reports/summary.md inside-link && ln -s /etc/passwd escape && ln -s /workspace escape-dir"
    " && ln -s reports linked-dir && mkfifo fifo && touch -d '2020-01-02 03:04:05.678' reports/summary.md"
)
READS = [
    ("reports/summary.md", 0, 100),
    ("reports/deep/data.bin", 1000, 700),
    ("two.txt", 0, 100),
    ("inside-link", 2, 3),
    ("linked-dir/summary.md", 0, 100),
]
REFUSED = ["escape", "escape-dir/x", "missing.txt", "reports", "one.txt/x", "fifo", "linked-dir/missing"]


async def outputs_seen(client: Client, session_id: str) -> dict[str, Any]:
    """Everything a client can read of the outputs: the listing, some reads, and the refusals' wording."""
    listing = await call_ok(client, "list_output_files", {"session_id": session_id})
    reads = [
        await call_ok(client, "read_output_file", {"session_id": session_id, "path": p, "offset": o, "max_bytes": n})
        for p, o, n in READS
    ]
    refusals = [await call_error(client, "read_output_file", {"session_id": session_id, "path": p}) for p in REFUSED]
    return {"files": listing["files"], "reads": reads, "refusals": refusals}


async def test_outputs_read_from_a_stopped_container_are_what_its_helper_gave(
    idle_config: ServerConfig, model: ModelServer, docker_client: docker.DockerClient
) -> None:
    model.enqueue(reply(tool_use("bash", {"command": OUTPUTS_SETUP})), reply("Made them."))
    async with serving(idle_config) as (_, client):
        sid = (await call_ok(client, "create_session", {}))["id"]
        await call_ok(client, "send_message", {"session_id": sid, "text": "make outputs"})
        assert states(docker_client, sid) == ["running"]
        through_helper = await outputs_seen(client, sid)
    assert states(docker_client, sid) == ["exited"]
    async with serving(idle_config) as (_, client):
        through_archive = await outputs_seen(client, sid)
        assert states(docker_client, sid) == ["exited"]
    assert through_archive == through_helper
    files = {f["path"]: f for f in through_helper["files"]}
    assert sorted(files) == ["one.txt", "reports/deep/data.bin", "reports/summary.md", "two.txt"]
    assert files["reports/summary.md"]["modified_at"] == "2020-01-02T03:04:05.000Z"
    assert files["reports/summary.md"]["mime_type"] == "text/markdown"
    assert "outside the outputs directory" in through_helper["refusals"][0]
