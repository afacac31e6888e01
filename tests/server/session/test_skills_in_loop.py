"""Skills in a running session, on a real sandbox with the scripted model: listed in the system prompt, their
files read-only under /mnt/skills/<name>/, `/name` carrying SKILL.md into the turn, versions pinned, and deletes
clearing the versions sessions wrote to disk."""

from __future__ import annotations

from typing import Any

import docker
import pytest
from mcp import Client
from model_server import ModelServer, RecordedRequest, reply, tool_use
from scenario import call_ok
from serving import connected
from skill_folders import skill_md

from server.core.config import ServerConfig
from server.hands.docker.sandbox import LABEL_SESSION, SKILL_STORE

pytestmark = [pytest.mark.docker, pytest.mark.anyio]

FILL = '#!/bin/sh\necho "filled by $(basename "$0")"\n'


async def add_skills(client: Client) -> tuple[str, str]:
    forms = await call_ok(
        client,
        "create_skill",
        {
            "files": [
                {"path": "SKILL.md", "content": skill_md("pdf-forms", "Fills in PDF forms.") + "Version one.\n"},
                {"path": "scripts/fill.sh", "content": FILL, "executable": True},
            ]
        },
    )
    notes = await call_ok(
        client, "create_skill", {"files": [{"path": "SKILL.md", "content": skill_md("release-notes", "Writes notes.")}]}
    )
    return forms["skill_id"], notes["skill_id"]


def last_user_text(request: RecordedRequest) -> str:
    content = request.messages[-1]["content"]
    return "\n".join(b["text"] for b in content if b["type"] == "text") if isinstance(content, list) else content


async def events_of(client: Client, session_id: str) -> list[dict[str, Any]]:
    return (await call_ok(client, "get_events", {"session_id": session_id, "limit": 200}))["events"]


async def test_a_session_lists_its_skills_reads_and_runs_them_and_stays_on_its_versions(
    docker_loop_config: ServerConfig, model: ModelServer, docker_client: docker.DockerClient
) -> None:
    model.enqueue(
        reply(tool_use("read", {"file_path": "/mnt/skills/pdf-forms/SKILL.md"})),
        reply(
            tool_use(
                "bash",
                {
                    "command": "/mnt/skills/pdf-forms/scripts/fill.sh; touch /mnt/skills/pdf-forms/x || echo read-only;"
                    f" ls {SKILL_STORE} || echo store-unlistable; ls $(dirname $(readlink /mnt/skills/pdf-forms))"
                    " || echo skill-unlistable"
                },
            )
        ),
        reply("Filled."),
        reply(tool_use("bash", {"command": "cat /mnt/skills/pdf-forms/SKILL.md"})),
        reply("Following the skill."),
        reply("Plain text."),
    )
    async with connected(docker_loop_config) as client:
        forms, notes = await add_skills(client)
        agent = await call_ok(
            client,
            "create_agent",
            {
                "name": "clerk",
                "system": "Be brief.",
                "skills": [{"type": "custom", "skill_id": forms}, {"type": "custom", "skill_id": "release-notes"}],
            },
        )
        session = await call_ok(client, "create_session", {"agent_id": agent["id"]})
        sid = session["id"]

        first = await call_ok(client, "send_message", {"session_id": sid, "text": "fill in the form"})
        assert first["reply"] == "Filled."
        system = model.requests[0].system_text
        assert system.startswith("Be brief.\n\n# Skills")
        assert "- pdf-forms (/mnt/skills/pdf-forms/SKILL.md): Fills in PDF forms." in system
        assert "- release-notes (/mnt/skills/release-notes/SKILL.md): Writes notes." in system
        results = [e for e in await events_of(client, sid) if e["type"] == "agent.tool_result"]
        assert "Version one." in results[0]["content"][0]["text"]
        assert not results[1]["is_error"]
        assert "filled by fill.sh" in results[1]["content"][0]["text"]
        assert "read-only" in results[1]["content"][0]["text"]
        assert "store-unlistable" in results[1]["content"][0]["text"]  # other agents' skills cannot be found ...
        assert "skill-unlistable" in results[1]["content"][0]["text"]  # ... nor other versions of its own

        # A new container (the old one removed) has the skills too; a new version reaches new sessions only.
        [container] = docker_client.containers.list(all=True, filters={"label": f"{LABEL_SESSION}={sid}"})
        container.remove(force=True)
        await call_ok(
            client,
            "create_skill",
            {"files": [{"path": "SKILL.md", "content": skill_md("pdf-forms", "Fills forms.") + "Version two.\n"}]},
        )
        invoked = await call_ok(client, "send_message", {"session_id": sid, "text": "/pdf-forms the tax form"})
        assert invoked["reply"] == "Following the skill."
        sent = last_user_text(model.requests[3])
        assert "Version one." in sent
        assert "Version two." not in sent
        assert sent.endswith("/pdf-forms the tax form")
        [catted] = [e for e in invoked["events"] if e["type"] == "agent.tool_result"]
        assert "Version one." in catted["content"][0]["text"]
        message = next(e for e in invoked["events"] if e["type"] == "user.message")
        assert (message["skill"]["name"], message["skill"]["version"]) == ("pdf-forms", 1)

        plain = await call_ok(client, "send_message", {"session_id": sid, "text": "/unknown thing"})
        assert plain["reply"] == "Plain text."
        assert last_user_text(model.requests[-1]) == "/unknown thing"
        assert "skill" not in next(e for e in plain["events"] if e["type"] == "user.message")
        newer = await call_ok(client, "create_session", {"agent_id": agent["id"]})
        assert [s["version"] for s in newer["agent"]["skills"]] == [2, 1]
        await call_ok(client, "delete_session", {"session_id": sid})

        # Deleting a version, then whole skills, removes what the sessions wrote into the skill store.
        store_dir = docker_loop_config.data_dir / "skills" / "versions"
        assert (store_dir / forms / "1" / "SKILL.md").is_file()
        assert (store_dir / notes / "1" / "SKILL.md").is_file()
        await call_ok(client, "delete_skill", {"skill": forms, "version": 1})
        assert not (store_dir / forms / "1").exists()
        for skill in (forms, notes):
            await call_ok(client, "delete_skill", {"skill": skill})
            assert not (store_dir / skill).exists()
