"""A session's skill files cannot be written to the skill store because the data dir's disk is full: that turn
fails with one clear error, the server stays up, and the next message (once there is space) has the skill."""

from __future__ import annotations

import dataclasses
import os

import anyio
import pytest
from model_server import ModelServer, reply, tool_use
from scenario import call_ok
from serving import connected
from small_disk import SmallDisk

from server.core.config import ServerConfig

pytestmark = [pytest.mark.anyio, pytest.mark.docker]

SKILL = "---\nname: big-notes\ndescription: Notes too big for a full disk.\n---\nRead notes.txt.\n"
NOTES_BYTES = 900 * 1024
ROOM_BYTES = 256 * 1024
"""Left free on the disk: enough for the store's appends, not for the skill's notes."""


async def test_a_skill_that_cannot_be_written_fails_the_turn_and_the_next_one_has_it(
    docker_loop_config: ServerConfig, small_disk: SmallDisk, model: ModelServer
) -> None:
    config = dataclasses.replace(docker_loop_config, data_dir=small_disk.path / "data")
    model.enqueue(reply(tool_use("bash", {"command": "wc -c < /mnt/skills/big-notes/notes.txt"})), reply("Read."))
    async with connected(config) as client:
        files = [{"path": "SKILL.md", "content": SKILL}, {"path": "notes.txt", "content": "n" * NOTES_BYTES}]
        skill = await call_ok(client, "create_skill", {"files": files})
        agent = await call_ok(
            client,
            "create_agent",
            {"name": "reader", "skills": [{"type": "custom", "skill_id": skill["skill_id"]}]},
        )
        sid = (await call_ok(client, "create_session", {"agent_id": agent["id"]}))["id"]
        room = small_disk.path / "room"
        room.write_bytes(b"\0" * ROOM_BYTES)
        small_disk.fill()
        os.unlink(room)

        failed = await call_ok(client, "send_message", {"session_id": sid, "text": "read the notes"})
        assert failed["status"] == "idle"
        errors = [e for e in failed["events"] if e["type"] == "session.error"]
        assert len(errors) == 1, failed["events"]
        assert "No space left on device" in errors[0]["error"]["message"]
        assert not [e for e in failed["events"] if e["type"] == "agent.tool_use"]  # nothing ran without its skill
        assert (await call_ok(client, "list_sessions", {}))["sessions"]  # the server is up

        small_disk.free()
        with anyio.fail_after(120):
            done = await call_ok(client, "send_message", {"session_id": sid, "text": "again", "wait_seconds": 55})
        assert done["reply"] == "Read."
        [result] = [e for e in done["events"] if e["type"] == "agent.tool_result"]
        assert result["content"][0]["text"].strip() == str(NOTES_BYTES)
        await call_ok(client, "delete_session", {"session_id": sid})
