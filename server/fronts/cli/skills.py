"""`managed-sessions skill ...`: add a skill from a folder or zip on this host, list, show and delete skills.

It writes to the data dir's store directly (SQLite takes a writer beside a running server), so a skill added
here is there for the server's next session at once. Output for people goes to stdout, errors to stderr (as
`managed-sessions: ...` through `main`); exit status 0 or 1.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import anyio

from server.core.config import ServerConfig
from server.core.skills import SkillDetail, SkillVersion
from server.fronts.cli.printing import out, print_json, table
from server.services.skills import SkillService, open_skills

__all__ = ["add_skill_parser", "run_skill_command"]

_Subparsers = argparse._SubParsersAction  # argparse has no public name for it


def add_skill_parser(commands: _Subparsers[argparse.ArgumentParser]) -> None:
    """Adds `skill` and its subcommands to the `managed-sessions` parser."""
    skill = commands.add_parser("skill", help="versioned skills (a folder with SKILL.md) that agents can use")
    sub = skill.add_subparsers(dest="skill_command", required=True)

    add = sub.add_parser("add", help="add a skill folder or zip; a name that exists gets a new version")
    add.add_argument("path", type=Path, help="a folder holding SKILL.md, or a zip of one")
    add.add_argument("--json", action="store_true", help="print the new version as JSON")

    listing = sub.add_parser("list", help="list skills")
    listing.add_argument("--json", action="store_true")

    show = sub.add_parser("show", help="a skill, its versions and their files")
    show.add_argument("skill", help="skill id (skill_...) or name")
    show.add_argument("--json", action="store_true")

    delete = sub.add_parser("delete", help="delete a skill (every version), or one version with --version")
    delete.add_argument("skill", help="skill id (skill_...) or name")
    delete.add_argument("--version", type=int, default=None, help="delete only this version")


def run_skill_command(args: argparse.Namespace, config: ServerConfig) -> int:
    """Runs one `skill` subcommand; a `ServerError` goes up to `main`, which prints it and exits 1."""
    handlers = {"add": _add, "list": _list, "show": _show, "delete": _delete}
    with open_skills(config) as skills:
        return anyio.run(handlers[args.skill_command], skills, args)


async def _add(skills: SkillService, args: argparse.Namespace) -> int:
    version = await skills.add_path(args.path)
    if args.json:
        return print_json(version.model_dump(mode="json"))
    out(
        f"added {version.name!r} version {version.version} ({version.skill_id}): {len(version.files)} file(s), "
        f"{version.size_bytes} bytes"
    )
    out(f"agents use it with: skills: [{{type: 'custom', skill_id: '{version.skill_id}'}}]")
    return 0


async def _list(skills: SkillService, args: argparse.Namespace) -> int:
    found = []
    cursor = None
    while True:
        page = await skills.page(100, cursor)
        found.extend(page.skills)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    if args.json:
        return print_json([s.model_dump(mode="json") for s in found])
    if not found:
        out("no skills; add one with: managed-sessions skill add PATH")
        return 0
    table(
        ("ID", "NAME", "VERSION", "DESCRIPTION"),
        [(s.id, s.name, str(s.latest_version), _short(s.description)) for s in found],
    )
    return 0


async def _show(skills: SkillService, args: argparse.Namespace) -> int:
    detail = await skills.get(args.skill)
    if args.json:
        return print_json(detail.model_dump(mode="json"))
    out(f"skill {detail.name!r} ({detail.id}), latest version {detail.latest_version}")
    out(f"  {detail.description}")
    for version in detail.versions:
        _show_version(version)
    return 0


def _show_version(version: SkillVersion) -> None:
    out(f"version {version.version}, {version.created_at}, {len(version.files)} file(s), {version.size_bytes} bytes")
    for f in version.files:
        out(f"  {f.path}  {f.size_bytes}{'  (executable)' if f.executable else ''}")


async def _delete(skills: SkillService, args: argparse.Namespace) -> int:
    detail: SkillDetail = await skills.get(args.skill)
    deleted = await skills.delete(detail.id, args.version)
    what = f"version {deleted.version} of" if deleted.version is not None else "every version of"
    out(f"deleted {what} {detail.name!r} ({detail.id})")
    return 0


def _short(text: str, width: int = 60) -> str:
    line = " ".join(text.split())
    return line if len(line) <= width else line[: width - 3] + "..."
