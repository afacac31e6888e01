"""A session's skills: unpacked read-only under /mnt/skills/<name>/, listed in its system prompt, invoked by
`/name`.

The files reach a sandbox as one tar archive per set of pinned skill versions, made once from the store under
`<data_dir>/skills/` and reused by every session with that set (versions are immutable, so an archive never goes
stale): starting a session with skills costs one `put_archive`, not a copy per file. Members are root-owned, files
0444 (0555 when executable) in 0555 folders, so the agent (uid 1000) reads and runs them but cannot change them.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import posixpath
import tarfile
import uuid
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from server.core.agents import SkillRef
from server.core.blocking import in_thread
from server.core.errors import NotFoundError
from server.core.events import EventBody
from server.core.sessions import Session
from server.core.skills import SKILL_FILE, SKILLS_ROOT, InvokedSkill, SkillSummary, SkillVersion, invoked_name
from server.hands.sandbox import SandboxBackend
from server.store.ports import SkillStore

__all__ = ["SessionSkills"]

logger = logging.getLogger(__name__)


class SessionSkills:
    """What a session's pinned skills need from the store and the sandbox."""

    def __init__(self, store: SkillStore, cache_dir: Path, sandboxes: SandboxBackend) -> None:
        self._store = store
        self._cache_dir = cache_dir
        self._sandboxes = sandboxes

    async def deliver(self, session: Session) -> list[EventBody]:
        """Unpacks the session's skills into its sandbox (a no-op when that sandbox has them)."""
        if session.agent.skills:
            archive = await in_thread(self._archive, _pinned(session.agent.skills))
            await self._sandboxes.place_archives(session.id, session.environment, [archive])
        return []

    async def summaries(self, session: Session) -> list[SkillSummary]:
        """Each skill's name and description, for the system prompt."""
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

    def _archive(self, pinned: Sequence[tuple[str, int]]) -> Path:
        """The archive of these versions, made on first use (blocking); written aside, then renamed into place."""
        key = hashlib.sha256(repr(sorted(pinned)).encode()).hexdigest()[:32]
        path = self._cache_dir / f"{key}.tar"
        if path.exists():
            return path
        self._cache_dir.mkdir(parents=True, exist_ok=True)
        scratch = self._cache_dir / f".{key}.{uuid.uuid4().hex}.tmp"
        try:
            with tarfile.open(scratch, "w", format=tarfile.PAX_FORMAT) as tar:
                _add_dir(tar, SKILLS_ROOT, 0)
                for version in self._versions(pinned):
                    self._add_version(tar, version)
            os.replace(scratch, path)
        finally:
            scratch.unlink(missing_ok=True)
        return path

    def _add_version(self, tar: tarfile.TarFile, version: SkillVersion) -> None:
        root = f"{SKILLS_ROOT}/{version.name}"
        mtime = int(datetime.fromisoformat(version.created_at).timestamp())
        _add_dir(tar, root, mtime)
        made = {root}
        for file in self._store.skill_files(version.skill_id, version.version):
            target = f"{root}/{file.path}"
            for folder in _parents(target, root):
                if folder not in made:
                    _add_dir(tar, folder, mtime)
                    made.add(folder)
            info = _member(target, tarfile.REGTYPE, 0o555 if file.executable else 0o444, mtime)
            info.size = len(file.content)
            tar.addfile(info, io.BytesIO(file.content))


def _pinned(refs: Sequence[SkillRef]) -> list[tuple[str, int]]:
    """(skill_id, version) of a session's skills, which its snapshot pinned (an unpinned one is skipped)."""
    return [(r.skill_id, r.version) for r in refs if isinstance(r.version, int)]


def _parents(target: str, root: str) -> list[str]:
    """The folders between `root` and `target`, outermost first."""
    folders = []
    folder = posixpath.dirname(target)
    while folder != root:
        folders.append(folder)
        folder = posixpath.dirname(folder)
    return folders[::-1]


def _add_dir(tar: tarfile.TarFile, path: str, mtime: int) -> None:
    tar.addfile(_member(path, tarfile.DIRTYPE, 0o555, mtime))


def _member(path: str, kind: bytes, mode: int, mtime: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(path.lstrip("/"))
    info.type, info.mode, info.mtime = kind, mode, mtime
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info
