"""A session's `file` resources: uploads that appear read-only in its sandbox before its first turn.

When a resource is recorded, the upload's bytes are linked (or copied) into the session's data dir, so the
session keeps its copy even if the upload is deleted later. Before each run the sandbox is told the full set of
read-only files (`SandboxBackend.place_files`); the backend puts them in every container it makes for the
session, so they are there again after a container is replaced.
"""

from __future__ import annotations

import os
import posixpath
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from server.brain.ports import ResourceDelivery
from server.core.blocking import in_thread
from server.core.common import now_rfc3339
from server.core.errors import ConflictError, InvalidRequestError, NotFoundError
from server.core.events import EventBody, SessionError
from server.core.ids import FileId, new_id
from server.core.sessions import AnySessionResource, FileSessionResource, Session
from server.hands.sandbox import SandboxBackend
from server.store.ports import FileStore, SessionStore

__all__ = [
    "UPLOADS",
    "FileResource",
    "ResourceDeleted",
    "SessionFiles",
    "SessionResourceDelivery",
    "check_mount_path",
]

UPLOADS = "/mnt/session/uploads"
MAX_FILE_RESOURCES = 999
MAX_MOUNT_PATH_CHARS = 1024
_AGENT_OWNED = ("/workspace", "/mnt/session/outputs", "/home", "/root", "/tmp", "/var/tmp")  # noqa: S108 - refused, not used
"""Folders the agent can write to: a file placed there could be removed or replaced, so not read-only."""
_SYSTEM = ("/proc", "/sys", "/dev", "/etc", "/usr", "/bin", "/sbin", "/lib", "/lib64", "/boot", "/run", "/var/run",
           "/opt/managed-sessions")  # fmt: skip


class FileResource(BaseModel):
    """An uploaded file to mount read-only in the session's sandbox."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    type: Literal["file"]
    file_id: FileId
    mount_path: str | None = Field(
        default=None, description=f"Absolute path in the sandbox; default {UPLOADS}/<file_id>. Parents are created."
    )

    @field_validator("mount_path")
    @classmethod
    def _checked(cls, mount_path: str | None) -> str | None:
        return None if mount_path is None else check_mount_path(mount_path)

    @property
    def target(self) -> str:
        return self.mount_path or f"{UPLOADS}/{self.file_id}"


class ResourceDeleted(BaseModel):
    id: str
    type: Literal["session_resource_deleted"] = "session_resource_deleted"


def check_mount_path(path: str) -> str:
    """An absolute, normalized path outside the agent's writable folders and the system's."""
    if len(path) > MAX_MOUNT_PATH_CHARS or not path.startswith("/") or "\0" in path:
        raise ValueError(f"mount_path {path[:80]!r} must be an absolute path of at most {MAX_MOUNT_PATH_CHARS} chars")
    if posixpath.normpath(path) != path or path == "/":
        raise ValueError(f"mount_path {path!r} must be normalized (no '..', '.', '//' or trailing '/')")
    for folder in _AGENT_OWNED + _SYSTEM:
        if path == folder or path.startswith(folder + "/"):
            raise ValueError(
                f"mount_path {path!r} is under {folder}, where the file could not stay read-only or would shadow "
                f"the system; use a path under {UPLOADS}/ or another new folder such as /data/"
            )
    return path


class SessionFiles:
    """Records, lists and removes a session's file resources, and places them in its sandbox."""

    def __init__(self, files: FileStore, sessions: SessionStore, data_dir: Path, sandboxes: SandboxBackend) -> None:
        self._files = files
        self._sessions = sessions
        self._data_dir = data_dir
        self._sandboxes = sandboxes

    async def check(self, requested: Sequence[FileResource], taken: Sequence[str]) -> None:
        """Refuses unknown uploads, too many files and two resources at one path, before anything is written."""
        if len(requested) > MAX_FILE_RESOURCES:
            raise InvalidRequestError(f"a session takes at most {MAX_FILE_RESOURCES} file resources")
        targets = [*taken, *(r.target for r in requested)]
        if len(set(targets)) != len(targets):
            raise InvalidRequestError(f"two resources would land at the same mount_path ({targets}); set mount_path")
        for resource in requested:
            await in_thread(self._files.content_path, resource.file_id)

    async def record(self, session_id: str, requested: Sequence[FileResource]) -> list[FileSessionResource]:
        """The session's own copy of each upload (a hard link where it can), as its resources."""
        now = now_rfc3339()
        recorded = []
        for resource in requested:
            made = FileSessionResource(
                id=new_id("sesrsc"),
                file_id=resource.file_id,
                mount_path=resource.target,
                created_at=now,
                updated_at=now,
            )
            source = await in_thread(self._files.content_path, resource.file_id)
            await in_thread(_link, source, self._copy_path(session_id, made.id))
            recorded.append(made)
        return recorded

    async def add(self, session_id: str, resource: FileResource) -> FileSessionResource:
        session = await in_thread(self._sessions.get_session, session_id)
        if session.archived_at is not None:
            raise ConflictError(f"session {session_id!r} is archived; resources cannot be added to it")
        await self.check([resource], [r.mount_path for r in session.resources])
        (made,) = await self.record(session_id, [resource])
        try:
            await in_thread(
                self._sessions.replace_session_resources, session_id, [*session.resources, made], now_rfc3339()
            )
        except BaseException:
            await in_thread(self._copy_path(session_id, made.id).unlink, True)
            raise
        return made

    async def list_resources(self, session_id: str) -> list[AnySessionResource]:
        return list((await in_thread(self._sessions.get_session, session_id)).resources)

    async def get(self, session_id: str, resource_id: str) -> AnySessionResource:
        for resource in await self.list_resources(session_id):
            if resource.id == resource_id:
                return resource
        raise NotFoundError(f"session {session_id!r} has no resource {resource_id!r}; list its resources")

    async def delete(self, session_id: str, resource_id: str) -> ResourceDeleted:
        session = await in_thread(self._sessions.get_session, session_id)
        resource = await self.get(session_id, resource_id)
        if not isinstance(resource, FileSessionResource):
            raise InvalidRequestError(f"resource {resource_id!r} is a {resource.type}; only file resources are removed")
        if session.status == "running":
            raise ConflictError(f"session {session_id!r} is running; interrupt it, then remove the resource")
        kept = [r for r in session.resources if r.id != resource_id]
        await in_thread(self._sessions.replace_session_resources, session_id, kept, now_rfc3339())
        await self._sandboxes.place_files(session_id, session.environment, self._placed(session_id, kept))
        await in_thread(self._copy_path(session_id, resource_id).unlink, True)
        return ResourceDeleted(id=resource_id)

    async def deliver(self, session: Session) -> list[EventBody]:
        """Tells the sandbox the session's read-only files; a copy gone from the data dir is a `session.error`."""
        placed = self._placed(session.id, session.resources)
        missing = [target for target, source in placed.items() if not await in_thread(source.is_file)]
        if missing:
            return [
                SessionError.of("unknown_error", f"the session's copy of the file for {missing} is gone", "exhausted")
            ]
        if placed:
            await self._sandboxes.place_files(session.id, session.environment, placed)
        return []

    def _placed(self, session_id: str, resources: Sequence[AnySessionResource]) -> dict[str, Path]:
        return {
            r.mount_path: self._copy_path(session_id, r.id) for r in resources if isinstance(r, FileSessionResource)
        }

    def _copy_path(self, session_id: str, resource_id: str) -> Path:
        return self._data_dir / "sessions" / session_id / "uploads" / resource_id


def _link(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:  # another file system, or links not supported: a copy does
        shutil.copyfile(source, target)


class SessionResourceDelivery:
    """Everything a session's sandbox needs before a turn: its repositories cloned, its files and skills placed."""

    def __init__(
        self, repositories: ResourceDelivery, files: SessionFiles, skills: ResourceDelivery | None = None
    ) -> None:
        self._repositories = repositories
        self._files = files
        self._skills = skills

    async def deliver(self, session: Session) -> list[EventBody]:
        skills = [] if self._skills is None else await self._skills.deliver(session)
        return [*skills, *await self._files.deliver(session), *await self._repositories.deliver(session)]
