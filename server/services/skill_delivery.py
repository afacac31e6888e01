"""A session's skills: read-only under /mnt/skills/<name>/, listed in its system prompt, invoked by `/name`.

Each skill version's files are written once, the first time a session needs them, into the host's skill store
(`<data_dir>/skills/versions/<skill_id>/<version>/`: files 0444, or 0555 when executable, in 0555 folders;
written aside, then renamed into place). Every sandbox has that store mounted read-only, and a session's
`/mnt/skills/<name>` is a link to its pinned version: starting a session with skills costs one helper request,
not a copy, whatever their size. Versions are immutable, so a folder never goes stale.

Trust: the store holds every skill version of this server, but its folder and each skill's folder cannot be
listed (`UNLISTABLE`, by anyone, so also by a sandbox user whose uid is the server's): a sandbox reaches a version
only by its path, `<skill_id>/<version>`, and a skill id is mostly random bits (a ULID); it learns the ids of its own
agent's skills alone, from its links. Any client of the server can run a session with any skill anyway, so this
narrows what a session's code sees rather than guarding a secret; skills are not a place for secrets.
"""

from __future__ import annotations

import logging
import os
import shutil
import uuid
from collections.abc import Sequence
from pathlib import Path

from server.core.agents import SkillRef
from server.core.blocking import in_thread
from server.core.errors import DataDirUnwritableError, NotFoundError
from server.core.events import EventBody
from server.core.sessions import Session
from server.core.skills import SKILL_FILE, InvokedSkill, SkillSummary, SkillVersion, invoked_name
from server.hands.sandbox import SandboxBackend
from server.store.ports import SkillStore

__all__ = ["UNLISTABLE", "SessionSkills", "remove_stored", "stored"]

logger = logging.getLogger(__name__)

UNLISTABLE = 0o311
"""The store's folder and each skill's: entries can be made (by the owner) and reached by name, never listed."""


class SessionSkills:
    """What a session's pinned skills need from the store and the sandbox."""

    def __init__(self, store: SkillStore, store_dir: Path, sandboxes: SandboxBackend) -> None:
        self._store = store
        self._store_dir = store_dir
        self._sandboxes = sandboxes

    async def deliver(self, session: Session) -> list[EventBody]:
        """Links the session's skills into its sandbox, writing any version the store has not on disk yet."""
        if session.agent.skills:
            links = await in_thread(self._materialised, _pinned(session.agent.skills))
            await self._sandboxes.link_skills(session.id, session.environment, links)
        return []

    async def summaries(self, session: Session) -> list[SkillSummary]:
        """Each skill's name and description, for the system prompt (no thread hop for the many without skills)."""
        if not session.agent.skills:
            return []
        versions = await in_thread(self._versions, _pinned(session.agent.skills))
        return [SkillSummary(name=v.name, description=v.description) for v in versions]

    async def invocation(self, refs: Sequence[SkillRef], text: str) -> InvokedSkill | None:
        """The skill a message starting with `/name` invokes, if `name` is one of `refs` (else None: plain text)."""
        name = invoked_name(text)
        if name is None or not refs:
            return None
        for version in await in_thread(self._versions, _pinned(refs)):
            if version.name == name:
                files = await in_thread(self._store.skill_files, version.skill_id, version.version)
                skill_md = next(f.content for f in files if f.path == SKILL_FILE)
                return InvokedSkill(
                    skill_id=version.skill_id,
                    version=version.version,
                    name=version.name,
                    instructions=skill_md.decode("utf-8-sig"),
                )
        return None

    def _versions(self, pinned: Sequence[tuple[str, int]]) -> list[SkillVersion]:
        """The pinned versions that still exist; one deleted since the session pinned it is left out (and logged)."""
        found = []
        for skill_id, version in pinned:
            try:
                found.append(self._store.get_skill_version(skill_id, version))
            except NotFoundError:
                logger.warning(
                    "skill %s version %d was deleted; sessions pinned to it go without it", skill_id, version
                )
        return found

    def _materialised(self, pinned: Sequence[tuple[str, int]]) -> dict[str, str]:
        """name -> `<skill_id>/<version>` of each pinned version, its folder written if missing (blocking)."""
        links = {}
        for version in self._versions(pinned):
            stored(self._store, self._store_dir, version)
            links[version.name] = f"{version.skill_id}/{version.version}"
        return links


def stored(store: SkillStore, store_dir: Path, version: SkillVersion) -> Path:
    """A version's folder in the skill store, written first if missing (blocking); `DataDirUnwritableError`
    naming the disk's complaint when it cannot be (full, read-only, failing)."""
    folder = store_dir / version.skill_id / str(version.version)
    if not folder.exists():
        try:
            _write_version(store, version, folder)
        except OSError as exc:
            raise DataDirUnwritableError(
                f"skill {version.name!r} (version {version.version}) could not be written to the skill store "
                f"{store_dir}: {exc.strerror or exc}. Free space on that disk (or make it writable), then send a "
                "message to go on"
            ) from exc
    return folder


def _write_version(store: SkillStore, version: SkillVersion, folder: Path) -> None:
    folder.parent.mkdir(parents=True, exist_ok=True)
    folder.parent.chmod(UNLISTABLE)
    scratch = folder.parent / f".{version.version}.{uuid.uuid4().hex}"
    try:
        for file in store.skill_files(version.skill_id, version.version):
            target = scratch / file.path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(file.content)
            target.chmod(0o555 if file.executable else 0o444)
        for path in sorted(scratch.rglob("*"), reverse=True):
            if path.is_dir():
                path.chmod(0o555)
        scratch.chmod(0o555)
        os.replace(scratch, folder)
    except OSError:
        if not folder.exists():
            _remove(scratch)
            raise
    _remove(scratch)  # left only when another session wrote the same immutable files meanwhile


def remove_stored(store_dir: Path, skill_id: str, version: int | None = None) -> None:
    """Removes a deleted skill's folders (one version's, or all of them) from the skill store (blocking). Best
    effort: the store rows are already gone, so a failure is logged, never raised. A sandbox still linked to a
    removed version loses its files, as a replaced container would."""
    skill_folder = store_dir / skill_id
    folder = skill_folder if version is None else skill_folder / str(version)
    try:
        _remove(folder, strict=True)
    except OSError as exc:
        logger.warning("could not remove %s from the skill store: %s", folder, exc)


def _remove(folder: Path, *, strict: bool = False) -> None:
    """Removes a folder of read-only files (made listable and writable first, as deleting needs)."""
    if not folder.exists():
        return
    folder.chmod(0o755)
    for path in folder.rglob("*"):
        if path.is_dir():
            path.chmod(0o755)
    shutil.rmtree(folder, ignore_errors=not strict)


def _pinned(refs: Sequence[SkillRef]) -> list[tuple[str, int]]:
    """(skill_id, version) of a session's skills, which its snapshot pinned (an unpinned one is skipped)."""
    return [(r.skill_id, r.version) for r in refs if isinstance(r.version, int)]
