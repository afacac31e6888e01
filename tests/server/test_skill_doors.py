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

    deleted = run(["skill", "delete", version["skill_id"]], subprocess_env)
    assert deleted.returncode == 0, deleted.stderr
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

    deleted = await call_ok(client, "delete_skill", {"skill": made["skill_id"]})
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
