"""Skills through the doors people use: the `managed-sessions skill` command (a real child process) and the MCP
tools over the in-memory client."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mcp import Client
from processes import run_command as run
from scenario import call_error, call_ok
from skill_folders import make_folder, skill_md

from server.core.config import ServerConfig
from server.core.skills import MAX_INLINE_SKILL_BYTES
from server.services.skill_delivery import stored
from server.store.sqlite.store import Store


def materialise(store_dir: Path, skill_id: str, versions: list[int]) -> list[Path]:
    """Writes versions into the skill store as a session's delivery does (with the store opened beside the server's)."""
    store = Store.open(ServerConfig(data_dir=store_dir.parents[1]).database_path)
    try:
        return [stored(store, store_dir, store.get_skill_version(skill_id, v)) for v in versions]
    finally:
        store.close()


def test_the_cli_adds_lists_shows_and_deletes_a_folder(subprocess_env: dict[str, str], tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "pdf-forms")

    added = run(["skill", "add", str(folder), "--json"], subprocess_env)
    assert added.returncode == 0, added.stderr
    version = json.loads(added.stdout)
    assert (version["name"], version["version"]) == ("pdf-forms", 1)
    again = run(["skill", "add", str(folder)], subprocess_env)
    assert "'pdf-forms' version 2" in again.stdout

    listed = run(["skill", "list"], subprocess_env)
    assert listed.stdout.splitlines()[0].split() == ["ID", "NAME", "VERSION", "DESCRIPTION"]
    assert listed.stdout.splitlines()[1].split()[:3] == [version["skill_id"], "pdf-forms", "2"]

    shown = run(["skill", "show", "pdf-forms"], subprocess_env)
    assert "version 1," in shown.stdout
    assert "scripts/fill.sh  22  (executable)" in shown.stdout

    store_dir = Path(subprocess_env["MANAGED_SESSIONS_DATA_DIR"]) / "skills" / "versions"
    on_disk = materialise(store_dir, version["skill_id"], [1, 2])
    assert run(["skill", "delete", version["skill_id"], "--version", "1"], subprocess_env).returncode == 0
    assert [f.exists() for f in on_disk] == [False, True]

    deleted = run(["skill", "delete", version["skill_id"]], subprocess_env)
    assert deleted.returncode == 0, deleted.stderr
    assert not (store_dir / version["skill_id"]).exists()
    assert "no skills" in run(["skill", "list"], subprocess_env).stdout
    missing = run(["skill", "show", "pdf-forms"], subprocess_env)
    assert missing.returncode == 1
    assert "no skill 'pdf-forms'" in missing.stderr


def test_the_cli_says_what_is_wrong_and_stores_nothing(subprocess_env: dict[str, str], tmp_path: Path) -> None:
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "SKILL.md").write_text("just instructions\n", encoding="utf-8")

    result = run(["skill", "add", str(folder)], subprocess_env)

    assert result.returncode == 1
    assert "SKILL.md has no front matter" in result.stderr
    assert "no skills" in run(["skill", "list"], subprocess_env).stdout


@pytest.mark.anyio
async def test_the_mcp_tools_create_list_get_and_delete_a_skill(client: Client, config: ServerConfig) -> None:
    files = [
        {"path": "SKILL.md", "content": skill_md("release-notes", "Writes release notes from git log.")},
        {"path": "scripts/log.sh", "content": "git log --oneline\n", "executable": True},
    ]
    made = await call_ok(client, "create_skill", {"files": files})
    assert (made["name"], made["version"]) == ("release-notes", 1)
    assert [f["path"] for f in made["files"]] == ["SKILL.md", "scripts/log.sh"]

    listed = await call_ok(client, "list_skills", {})
    assert [(s["id"], s["description"]) for s in listed["skills"]] == [
        (made["skill_id"], "Writes release notes from git log.")
    ]
    detail = await call_ok(client, "get_skill", {"skill": "release-notes"})
    assert [v["version"] for v in detail["versions"]] == [1]

    on_disk = materialise(config.data_dir / "skills" / "versions", made["skill_id"], [1])
    deleted = await call_ok(client, "delete_skill", {"skill": made["skill_id"]})
    assert not on_disk[0].exists()
    assert deleted == {"id": made["skill_id"], "type": "skill_deleted", "version": None}
    assert "no skill" in await call_error(client, "get_skill", {"skill": made["skill_id"]})


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("files", "words"),
    [
        ([{"path": "SKILL.md", "content": "no front matter"}], "no front matter"),
        ([{"path": "SKILL.md", "content": skill_md("Caps")}], "capital letters"),
        ([{"path": "SKILL.md", "content": skill_md("x")}, {"path": "../x", "content": ""}], "leaves the skill"),
        (
            [{"path": "SKILL.md", "content": skill_md("x")}]
            + [{"path": f"big{i}", "content": "x" * (MAX_INLINE_SKILL_BYTES // 2)} for i in range(2)],
            "skill add PATH",
        ),
    ],
)
async def test_create_skill_refuses_bad_files_and_stores_nothing(
    client: Client, files: list[dict[str, str]], words: str
) -> None:
    assert words in await call_error(client, "create_skill", {"files": files})
    assert (await call_ok(client, "list_skills", {}))["skills"] == []


async def two_versions(client: Client, name: str) -> str:
    for text in ("First.", "Second."):
        made = await call_ok(client, "create_skill", {"files": [{"path": "SKILL.md", "content": skill_md(name, text)}]})
    return str(made["skill_id"])


@pytest.mark.anyio
async def test_an_agent_names_skills_and_each_session_pins_their_versions(client: Client) -> None:
    forms = await two_versions(client, "pdf-forms")
    notes = await two_versions(client, "release-notes")
    agent = await call_ok(
        client,
        "create_agent",
        {
            "name": "writer",
            "skills": [
                {"type": "custom", "skill_id": "pdf-forms"},
                {"type": "custom", "skill_id": notes, "version": 1},
            ],
        },
    )
    assert agent["skills"] == [
        {"type": "custom", "skill_id": forms, "version": None},
        {"type": "custom", "skill_id": notes, "version": 1},
    ]

    first = await call_ok(client, "create_session", {"agent_id": agent["id"]})
    await call_ok(client, "create_skill", {"files": [{"path": "SKILL.md", "content": skill_md("pdf-forms", "Third.")}]})
    second = await call_ok(client, "create_session", {"agent_id": agent["id"]})

    assert [s["version"] for s in first["agent"]["skills"]] == [2, 1]
    assert [s["version"] for s in second["agent"]["skills"]] == [3, 1]
    again = await call_ok(client, "get_session", {"session_id": first["id"]})
    assert [s["version"] for s in again["agent"]["skills"]] == [2, 1]


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"skills": [{"type": "custom", "skill_id": "no-such-skill"}]}, "no skill 'no-such-skill'"),
        ({"skills": [{"type": "custom", "skill_id": "pdf-forms", "version": 9}]}, "has no version 9"),
        ({"skills": [{"type": "custom", "skill_id": "pdf-forms"}] * 2}, "list each skill once"),
        (
            {
                "skills": [{"type": "custom", "skill_id": "pdf-forms"}],
                "tools": [{"type": "agent_toolset_20260401", "configs": [{"name": "read", "enabled": False}]}],
            },
            "skills need the built-in `read` tool",
        ),
        ({"skills": [{"type": "custom", "skill_id": "pdf-forms"}], "tools": []}, "skills need the built-in `read`"),
        ({"skills": [{"type": "anthropic", "skill_id": "pdf"}]}, "custom"),
    ],
)
async def test_an_agent_with_unusable_skills_is_refused(client: Client, fields: dict[str, object], words: str) -> None:
    await two_versions(client, "pdf-forms")
    assert words in await call_error(client, "create_agent", {"name": "a", **fields})
    assert (await call_ok(client, "list_agents", {}))["agents"] == []


@pytest.mark.anyio
async def test_more_than_twenty_skills_are_refused(client: Client) -> None:
    refs = [{"type": "custom", "skill_id": await two_versions(client, f"s{i}")} for i in range(21)]
    assert "at most 20 skills" in await call_error(client, "create_agent", {"name": "a", "skills": refs})
