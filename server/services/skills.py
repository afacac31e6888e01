"""Skills as every front sees them: add (a host folder or zip, or file contents), list, show, delete.

Each front door calls this service and nothing else of the skills; the rules about what a skill may hold are
`server.core.skills.check_skill`'s, the bounds on reading one from the host are `skill_sources`'. A check that
fails stores nothing: a version is written in one transaction, after every check passed.
"""

from __future__ import annotations

import base64
import binascii
import io
import stat
import zipfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from server.core.agents import SkillRef
from server.core.blocking import in_thread
from server.core.common import now_rfc3339
from server.core.config import ServerConfig
from server.core.errors import InvalidRequestError, NotFoundError, TooLargeError
from server.core.ids import is_id
from server.core.pagination import check_cursor, page_cursor
from server.core.skills import (
    MAX_INLINE_SKILL_BYTES,
    MAX_SKILL_FILES,
    SkillDeleted,
    SkillDetail,
    SkillFileInput,
    SkillList,
    SkillSource,
    SkillVersion,
    check_skill,
    common_folder,
)
from server.services.skill_delivery import remove_stored
from server.services.skill_sources import read_skill_path
from server.store.ports import SkillStore
from server.store.sqlite.store import Store as SqliteStore

__all__ = ["SkillService", "open_skills"]

MAX_LIST_LIMIT = 100


class SkillService:
    def __init__(self, store: SkillStore, store_dir: Path | None = None) -> None:
        """`store_dir`: the on-disk skill store sessions read versions from (`skill_delivery`), cleared on delete."""
        self._store = store
        self._store_dir = store_dir

    async def add_path(self, path: Path) -> SkillVersion:
        """Adds a folder or zip on this host as a new skill, or as the next version of the skill of its name."""
        sources = await in_thread(read_skill_path, path)
        return await self._add(sources)

    async def add_contents(self, files: Sequence[SkillFileInput]) -> SkillVersion:
        """Adds a skill sent as file contents, bounded by `MAX_INLINE_SKILL_BYTES`."""
        if len(files) > MAX_SKILL_FILES:
            raise TooLargeError(f"a skill holds at most {MAX_SKILL_FILES} files; {len(files)} were sent")
        sources = [SkillSource(f.path, _decoded(f), f.executable) for f in files]
        total = sum(len(s.content) for s in sources)
        if total > MAX_INLINE_SKILL_BYTES:
            raise TooLargeError(
                f"a skill sent as file contents holds at most {MAX_INLINE_SKILL_BYTES} bytes; this one has {total}: "
                "add bigger skills on the server's host with `managed-sessions skill add PATH`"
            )
        return await self._add(sources)

    async def add_upload(self, sources: Sequence[SkillSource], *, skill: str | None = None) -> SkillVersion:
        """Adds a skill from uploaded files (REST multipart, bounded by the front while it reads them), whose
        paths may all sit in one top folder; with `skill`, only as that skill's next version."""
        prefix = common_folder([s.path for s in sources])
        if prefix:
            sources = [SkillSource(s.path[len(prefix) :], s.content, s.executable) for s in sources]
        if skill is None:
            return await self._add(sources)
        checked = check_skill(sources)
        existing = await in_thread(self._store.get_skill, skill)
        if checked.name != existing.name:
            raise InvalidRequestError(
                f"this version's SKILL.md names {checked.name!r}, but skill {existing.id!r} is {existing.name!r}: "
                "a skill keeps its name; create a new skill for another name"
            )
        return await in_thread(self._store.add_skill_version, checked, now_rfc3339())

    async def versions(self, skill: str) -> list[SkillVersion]:
        """A skill's versions, newest first."""
        return await in_thread(self._store.list_skill_versions, await self._skill_id(skill))

    async def _add(self, sources: Sequence[SkillSource]) -> SkillVersion:
        checked = check_skill(sources)
        return await in_thread(self._store.add_skill_version, checked, now_rfc3339())

    async def get(self, skill: str) -> SkillDetail:
        """A skill (by id or name) with its versions."""
        found = await in_thread(self._store.get_skill, skill)
        versions = await in_thread(self._store.list_skill_versions, found.id)
        return SkillDetail(**found.model_dump(), versions=versions)

    async def get_version(self, skill: str, version: int | None = None) -> SkillVersion:
        """One version of a skill (by id or name); None: the latest."""
        skill_id = await self._skill_id(skill)
        return await in_thread(self._store.get_skill_version, skill_id, version)

    async def archive(self, skill: str, version: int) -> tuple[SkillVersion, bytes]:
        """A version as a zip of one top folder named after the skill, executable bits kept (what `add_path` and
        an upload read back as the same files). Built in memory: a version is bounded by `MAX_SKILL_BYTES`."""
        found = await self.get_version(skill, version)
        files = await in_thread(self._store.skill_files, found.skill_id, found.version)
        return found, await in_thread(_zipped, found.name, files)

    async def page(self, limit: int = 20, cursor: str | None = None) -> SkillList:
        if not 1 <= limit <= MAX_LIST_LIMIT:
            raise InvalidRequestError(f"limit must be 1-{MAX_LIST_LIMIT}; got {limit}")
        rows = await in_thread(self._store.list_skills, limit + 1, check_cursor(cursor, "skill"))
        return SkillList(skills=rows[:limit], next_cursor=page_cursor([s.id for s in rows], limit))

    async def delete(self, skill: str, version: int | None = None) -> SkillDeleted:
        """Deletes a skill (every version), or one version of it. Sessions that pinned a deleted version lose it
        from their next container on; agents that name the skill are refused at their next session."""
        skill_id = await self._skill_id(skill)
        if version is None:
            await in_thread(self._store.delete_skill, skill_id)
        else:
            await in_thread(self._store.delete_skill_version, skill_id, version)
        if self._store_dir is not None:
            await in_thread(remove_stored, self._store_dir, skill_id, version)
        return SkillDeleted(id=skill_id, version=version)

    async def resolve(self, refs: Sequence[SkillRef], *, pin: bool) -> list[SkillRef]:
        """An agent's skills with each `skill_id` an id (a name is looked up) and a version that exists; with
        `pin`, a missing version becomes the latest (a session's snapshot). Unknown ones: `InvalidRequestError`."""
        resolved = []
        for ref in refs:
            try:
                found = await in_thread(self._store.get_skill, ref.skill_id)
                version = ref.version if isinstance(ref.version, int) else None
                if version is not None:
                    await in_thread(self._store.get_skill_version, found.id, version)
            except NotFoundError as exc:
                raise InvalidRequestError(f"skills: {exc}") from exc
            pinned = found.latest_version if pin and version is None else version
            resolved.append(SkillRef(type="custom", skill_id=found.id, version=pinned))
        return resolved

    async def _skill_id(self, skill: str) -> str:
        if is_id(skill, "skill"):
            return skill
        return (await in_thread(self._store.get_skill, skill)).id


@contextmanager
def open_skills(config: ServerConfig) -> Iterator[SkillService]:
    """The skills of the data dir's store, for the CLI (SQLite takes this writer beside a running server's)."""
    store = SqliteStore.open(config.database_path)
    try:
        yield SkillService(store, config.data_dir / "skills" / "versions")
    finally:
        store.close()


def _zipped(top: str, files: Sequence[SkillSource]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for file in files:
            entry = zipfile.ZipInfo(f"{top}/{file.path}", date_time=(1980, 1, 1, 0, 0, 0))
            entry.external_attr = (stat.S_IFREG | (0o755 if file.executable else 0o644)) << 16
            entry.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(entry, file.content)
    return buffer.getvalue()


def _decoded(file: SkillFileInput) -> bytes:
    if file.encoding == "utf-8":
        try:
            return file.content.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InvalidRequestError(f"file {file.path!r} is not valid text ({exc.reason}); send base64") from exc
    try:
        return base64.b64decode(file.content, validate=True)
    except (binascii.Error, ValueError) as exc:  # ValueError: characters outside ASCII
        raise InvalidRequestError(f"file {file.path!r} is not valid base64: {exc}") from exc
