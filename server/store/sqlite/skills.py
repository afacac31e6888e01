"""The skill tables of `store.db` (migration m004): statements run on a connection the `Store` holds.

A version's row and its files' rows are written in one transaction, so a version is listed only whole. Skill
names are unique; a version's number is never reused, even after that version is deleted, so a session pinned
to `(skill_id, version)` can never silently get other files.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from server.core.errors import NotFoundError
from server.core.ids import is_id, new_id
from server.core.skills import CheckedSkill, Skill, SkillSource, SkillVersion

__all__ = [
    "delete_skill",
    "delete_skill_version",
    "insert_skill_version",
    "select_skill",
    "select_skill_files",
    "select_skill_version",
    "select_skill_versions",
    "select_skills",
]

_SKILL = (
    "select s.skill_id, v.body, s.latest_version, s.created_at, s.updated_at from skills s"
    " join skill_versions v on v.skill_id = s.skill_id and v.version = s.latest_version"
)


def insert_skill_version(db: sqlite3.Connection, checked: CheckedSkill, at: str) -> SkillVersion:
    """Adds `checked` as the next version of the skill of its name (made, at version 1, if there is none)."""
    row = db.execute("select skill_id, versions_made from skills where name = ?", (checked.name,)).fetchone()
    if row is None:
        skill_id, version = new_id("skill"), 1
        db.execute("insert into skills values (?, ?, 1, 1, ?, ?)", (skill_id, checked.name, at, at))
    else:
        skill_id, version = str(row[0]), int(row[1]) + 1
        db.execute(
            "update skills set latest_version = ?, versions_made = ?, updated_at = ? where skill_id = ?",
            (version, version, at, skill_id),
        )
    listing = checked.listing()
    made = SkillVersion(
        skill_id=skill_id,
        version=version,
        name=checked.name,
        description=checked.description,
        files=listing,
        size_bytes=sum(f.size_bytes for f in listing),
        created_at=at,
    )
    db.execute("insert into skill_versions values (?, ?, ?, ?)", (skill_id, version, made.model_dump_json(), at))
    db.executemany(
        "insert into skill_files values (?, ?, ?, ?)", [(skill_id, version, f.path, f.content) for f in checked.files]
    )
    return made


def select_skill(db: sqlite3.Connection, skill: str) -> Skill:
    """A skill by id or by name."""
    column = "s.skill_id" if is_id(skill, "skill") else "s.name"
    row = db.execute(f"{_SKILL} where {column} = ?", (skill,)).fetchone()
    if row is None:
        raise NotFoundError(f"no skill {skill!r}; list_skills shows the ones that exist")
    return _skill(row)


def select_skills(db: sqlite3.Connection, limit: int, before: str | None) -> list[Skill]:
    """Skills, newest first, those with ids below `before`."""
    rows = db.execute(
        f"{_SKILL} where (? is null or s.skill_id < ?) order by s.skill_id desc limit ?",
        (before, before, limit),
    ).fetchall()
    return [_skill(row) for row in rows]


def select_skill_version(db: sqlite3.Connection, skill_id: str, version: int | None) -> SkillVersion:
    """One version (None: the latest)."""
    row = db.execute(
        "select v.body from skills s join skill_versions v using (skill_id)"
        " where s.skill_id = ? and v.version = coalesce(?, s.latest_version)",
        (skill_id, version),
    ).fetchone()
    if row is None:
        if version is None or db.execute("select 1 from skills where skill_id = ?", (skill_id,)).fetchone() is None:
            raise NotFoundError(f"no skill {skill_id!r}; list_skills shows the ones that exist")
        raise NotFoundError(f"skill {skill_id!r} has no version {version}; get_skill lists its versions")
    return SkillVersion.model_validate_json(row[0])


def select_skill_versions(db: sqlite3.Connection, skill_id: str) -> list[SkillVersion]:
    rows = db.execute(
        "select body from skill_versions where skill_id = ? order by version desc", (skill_id,)
    ).fetchall()
    if not rows:
        raise NotFoundError(f"no skill {skill_id!r}; list_skills shows the ones that exist")
    return [SkillVersion.model_validate_json(row[0]) for row in rows]


def select_skill_files(db: sqlite3.Connection, skill_id: str, version: int) -> list[SkillSource]:
    """A version's files with their bytes (`NotFoundError` when the version is gone)."""
    listed = select_skill_version(db, skill_id, version)
    executable = {f.path for f in listed.files if f.executable}
    rows = db.execute(
        "select path, content from skill_files where skill_id = ? and version = ? order by path", (skill_id, version)
    ).fetchall()
    return [SkillSource(str(path), bytes(content), path in executable) for path, content in rows]


def delete_skill(db: sqlite3.Connection, skill_id: str) -> None:
    if db.execute("select 1 from skills where skill_id = ?", (skill_id,)).fetchone() is None:
        raise NotFoundError(f"no skill {skill_id!r}; list_skills shows the ones that exist")
    db.execute("delete from skill_files where skill_id = ?", (skill_id,))
    db.execute("delete from skill_versions where skill_id = ?", (skill_id,))
    db.execute("delete from skills where skill_id = ?", (skill_id,))


def delete_skill_version(db: sqlite3.Connection, skill_id: str, version: int) -> None:
    """Removes one version; the skill goes with its last one, and `latest` falls back to the highest left."""
    select_skill_version(db, skill_id, version)  # NotFoundError, with the right message
    db.execute("delete from skill_files where skill_id = ? and version = ?", (skill_id, version))
    db.execute("delete from skill_versions where skill_id = ? and version = ?", (skill_id, version))
    left = db.execute("select max(version) from skill_versions where skill_id = ?", (skill_id,)).fetchone()[0]
    if left is None:
        db.execute("delete from skills where skill_id = ?", (skill_id,))
    else:
        db.execute("update skills set latest_version = ? where skill_id = ?", (left, skill_id))


def _skill(row: tuple[Any, ...]) -> Skill:
    skill_id, body, latest, created_at, updated_at = row
    version = json.loads(body)
    return Skill(
        id=skill_id,
        name=version["name"],
        description=version["description"],
        latest_version=latest,
        created_at=created_at,
        updated_at=updated_at,
    )
