"""What the services need of a store: the definitions (agents, environments) and the sessions with their
append-only event logs. `sqlite/Store` is today's adapter; another store implements these Protocols and is
passed as `open_runtime(config, store=...)`.

Calls are synchronous (the services run them in a worker thread) and atomic: an append writes all its events and
the session's folded state (`core/state.py`) in one transaction, or nothing. A point read may run on the event loop
instead, through `read_now`; a store with no cheap way to tell that a read will not wait answers `Busy.BUSY`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Protocol

from server.core.agents import Agent
from server.core.blocking import InlineReads
from server.core.environments import Environment
from server.core.errors import NotFoundError
from server.core.events import Event, EventBody
from server.core.files import FileMetadata
from server.core.sessions import AnySessionResource, Session, SessionStatus
from server.core.skills import CheckedSkill, Skill, SkillSource, SkillVersion
from server.core.state import SessionState

__all__ = [
    "DefinitionStore",
    "EventFilter",
    "FileStore",
    "OutputRecord",
    "SessionFilter",
    "SessionStore",
    "SkillStore",
    "Storage",
    "TimeBounds",
]


@dataclass(frozen=True)
class TimeBounds:
    """RFC 3339 bounds (`...T10:00:00.123Z`, as the store writes times), compared as strings; None: unbounded."""

    gt: str | None = None
    gte: str | None = None
    lt: str | None = None
    lte: str | None = None


@dataclass(frozen=True)
class SessionFilter:
    """Which sessions a list holds, and in which direction it walks (by id, which sorts by creation time)."""

    status: SessionStatus | None = None
    agent_id: str | None = None
    include_archived: bool = False
    statuses: tuple[SessionStatus, ...] = ()
    agent_version: int | None = None
    created_at: TimeBounds = field(default_factory=TimeBounds)
    ascending: bool = False
    """Oldest first; the cursor (`before`) then means ids above it."""


@dataclass(frozen=True)
class EventFilter:
    """Which of a session's events a list holds, walking from `after_seq` (exclusive) in its direction."""

    after_seq: int | None = None
    ascending: bool = True
    types: tuple[str, ...] = ()
    processed_at: TimeBounds = field(default_factory=TimeBounds)


class DefinitionStore(InlineReads, Protocol):
    """Agents (immutable versions) and environments. Lookups of unknown ids raise `NotFoundError`."""

    def insert_agent(self, agent: Agent) -> None: ...
    def add_agent_version(self, agent: Agent) -> None: ...
    def get_agent(self, agent_id: str, version: int | None = None) -> Agent: ...
    def list_agents(
        self,
        limit: int,
        before: str | None,
        include_archived: bool,
        created_gte: str | None = None,
        created_lte: str | None = None,
    ) -> list[Agent]: ...
    def list_agent_versions(self, agent_id: str, limit: int, below: int | None) -> list[Agent]: ...
    def archive_agent(self, agent_id: str, at: str) -> None: ...
    def insert_environment(self, env: Environment) -> None: ...
    def replace_environment(self, env: Environment) -> None: ...
    def get_environment(self, environment_id: str) -> Environment: ...
    def list_environments(self, limit: int, before: str | None, include_archived: bool) -> list[Environment]: ...
    def archive_environment(self, environment_id: str, at: str) -> None: ...
    def delete_environment(self, environment_id: str) -> None: ...


class SkillStore(Protocol):
    """Skills and their immutable versions, files included. Unknown ids and versions raise `NotFoundError`."""

    def add_skill_version(self, checked: CheckedSkill, at: str) -> SkillVersion:
        """Stores `checked` as the next version of the skill of its name (version 1 of a new skill if none)."""
        ...

    def get_skill(self, skill: str) -> Skill:
        """A skill by id (skill_...) or by name."""
        ...

    def list_skills(self, limit: int, before: str | None) -> list[Skill]: ...
    def get_skill_version(self, skill_id: str, version: int | None = None) -> SkillVersion: ...
    def list_skill_versions(self, skill_id: str) -> list[SkillVersion]: ...
    def skill_files(self, skill_id: str, version: int) -> list[SkillSource]: ...
    def delete_skill(self, skill_id: str) -> None: ...
    def delete_skill_version(self, skill_id: str, version: int) -> None: ...


class SessionStore(InlineReads, Protocol):
    """Sessions and their event logs: `seq` is assigned by the store, 1-based and gap-free per session."""

    @property
    def store_id(self) -> str:
        """Names this store's sandboxes, so two stores on one engine never touch each other's."""
        ...

    def session_ids(self) -> dict[str, bool]: ...
    def session_volumes(self, session_id: str) -> str | None:
        """The volume set the session owns when it took a warm pool's container (None: the one named after it)."""
        ...

    def own_volumes(self, session_id: str, volumes: str) -> None:
        """Records that the session owns the volume set `volumes`; deleting the session forgets it."""
        ...

    def volume_owners(self) -> dict[str, str]:
        """Every recorded volume set, mapped to the session that owns it."""
        ...

    def running_session_ids(self) -> list[str]: ...
    def insert_session(self, session: Session) -> None: ...
    def get_session(self, session_id: str) -> Session: ...
    def list_sessions(self, limit: int, before: str | None, where: SessionFilter) -> list[Session]:
        """Sessions past the cursor `before` in the filter's direction (descending: ids below it)."""
        ...

    def update_session(
        self, session_id: str, title: str | None, metadata: dict[str, str], event: EventBody
    ) -> list[Event]:
        """Sets the session's title and metadata and appends `event` (its `session.updated`), atomically.
        Refused (`ConflictError`) once the session is archived."""
        ...

    def delete_session(self, session_id: str) -> None: ...
    def replace_session_resources(self, session_id: str, resources: Sequence[AnySessionResource], at: str) -> None: ...
    def archive_session(self, session_id: str, at: str) -> list[Event]: ...
    def append_events(self, session_id: str, new_events: Sequence[EventBody]) -> list[Event]: ...

    def append_many(self, requests: Sequence[tuple[str, Sequence[EventBody]]]) -> list[list[Event] | NotFoundError]:
        """Several sessions' appends in one transaction (group commit); a missing session fails alone."""
        ...

    def read_events(
        self, session_id: str, after_seq: int, limit: int, types: Sequence[str] | None = None
    ) -> list[Event]: ...

    def list_events(self, session_id: str, limit: int, where: EventFilter) -> list[Event]:
        """A page of the session's events as the filter says (`NotFoundError` for an unknown session)."""
        ...

    def read_page(
        self, session_id: str, after_event_id: str | None, limit: int, types: Sequence[str] | None = None
    ) -> tuple[list[Event], SessionState]:
        """Events after a cursor and the session's state, read together (one consistent snapshot)."""
        ...


@dataclass(frozen=True)
class OutputRecord:
    """The stable id given to a session's output file (its bytes stay in the sandbox)."""

    file_id: str
    session_id: str
    path: str
    created_at: str


class FileStore(Protocol):
    """Uploaded files (bytes and metadata) and the ids of sessions' output files. Unknown ids raise
    `NotFoundError`. `put` is atomic: a file half-written when the process died is never listed or read."""

    def put(self, metadata: FileMetadata, source: BinaryIO, max_bytes: int) -> FileMetadata:
        """Copies `source` in (`TooLargeError` past `max_bytes`, leaving nothing); returns it with its size."""
        ...

    def get(self, file_id: str) -> FileMetadata: ...
    def list_uploads(self, limit: int, before: str | None) -> list[FileMetadata]:
        """Uploads, newest first, those older than the file id `before`."""
        ...

    def content_path(self, file_id: str) -> Path:
        """Where an upload's bytes are (read-only to everyone: never written in place)."""
        ...

    def delete(self, file_id: str) -> None: ...
    def output_ids(self, session_id: str, paths: Sequence[str]) -> list[OutputRecord]:
        """The stable record of each output path (made on first sight; the same path keeps its id)."""
        ...

    def output_record(self, file_id: str) -> OutputRecord: ...


class Storage(DefinitionStore, SessionStore, SkillStore, Protocol):
    """Everything the services keep: what `open_runtime(config, store=...)` takes."""

    def close(self) -> None: ...
