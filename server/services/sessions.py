"""Session lifecycle: create, read, list, archive, delete, and reading the event log.

A session pins its agent (a snapshot of one version, or an inline agent) and
its environment (a snapshot) when it is created. Its status and usage are
never written directly: they follow from its events (see `state.py`).
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal, cast

import anyio
from pydantic import BaseModel, Field, JsonValue, StringConstraints

from server.core.agents import (
    FULL_TOOLSET,
    AgentSnapshot,
    AgentTool,
    McpServer,
    ModelConfig,
    SkillRef,
    check_agent_definition,
    check_skill_refs,
)
from server.core.blocking import in_thread, in_vault_thread, point_read
from server.core.common import PLAIN_TEXT, MetadataPatch, apply_metadata_patch, now_rfc3339
from server.core.environments import EnvironmentSpec
from server.core.errors import (
    ConflictError,
    InvalidRequestError,
    SessionBusyError,
    from_vault_error,
)
from server.core.events import (
    Event,
    EventBody,
    SessionUpdated,
    parse_body,
    preassigned_id,
    stored_fields,
    with_event_id,
)
from server.core.ids import is_id, new_id
from server.core.models import Providers
from server.core.pagination import NEXT_CURSOR, PUBLISHED_AS_OBJECTS, Listing, check_cursor, page_cursor
from server.core.redaction import REDACTOR
from server.core.sessions import AnySessionResource, EventPage, Session, SessionStats, SessionStatus
from server.hands.sandbox import SandboxBackend
from server.services.file_resources import FileResource, SessionFiles
from server.services.listing import Order, Page, TimeFilter, Walk, time_bounds
from server.services.notifier import EventNotifier
from server.services.resources import GitHubRepositoryResource, SessionRepositories
from server.services.skills import SkillService
from server.store.ports import EventFilter, SessionFilter, Storage
from server.store.sqlite.appender import Appender
from vault.errors import VaultError
from vault.redactor import JsonLike
from vault.vaults import Vaults

__all__ = [
    "LOG_LIMIT",
    "MAX_EVENT_FIELD_CHARS",
    "MAX_TITLE_CHARS",
    "EventQuery",
    "NewSession",
    "ResourceRequest",
    "SessionChanges",
    "SessionList",
    "SessionManager",
    "SessionQuery",
]

LOG_LIMIT = 1_000_000
"""Reading a log whole: no session comes near it (a week of busy work is some 100,000 events)."""
MAX_TITLE_CHARS = 1_000
MAX_EVENT_FIELD_CHARS = 8_000
"""Longer strings in events returned by tools are cut (the store keeps them whole): a tool result
has to fit a model's context, and one large file read should not crowd out everything else."""


class SessionList(Listing):
    sessions: Annotated[list[Session], PUBLISHED_AS_OBJECTS] = Field(
        description="Session objects, as get_session returns them."
    )
    next_cursor: str | None = Field(description=NEXT_CURSOR)


class SessionDeleted(BaseModel):
    id: str
    type: Literal["session_deleted"] = "session_deleted"
    deleted: Literal[True] = True


ResourceRequest = Annotated[GitHubRepositoryResource | FileResource, Field(discriminator="type")]
"""A resource named at create time: a git repository to clone, or an uploaded file to mount read-only."""


class NewSession(BaseModel):
    """Arguments of create_session."""

    agent_id: str | None = None
    agent_version: int | None = None
    model: str | None = None
    system: str | None = None
    environment_id: str | None = None
    title: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    resources: list[ResourceRequest] = Field(default_factory=list)
    vault_ids: list[str] = Field(default_factory=list)
    tools: list[AgentTool] | None = None
    """Replaces the agent's tools for this session (None: the agent's own)."""
    mcp_servers: list[McpServer] | None = None
    """Replaces the agent's MCP servers for this session (None: the agent's own)."""
    skills: list[SkillRef] | None = None
    """Replaces the agent's skills for this session (None: the agent's own)."""


class SessionChanges(BaseModel):
    """An update of a session: a title (null clears it) and a metadata patch. Only fields given change."""

    title: Annotated[str, StringConstraints(max_length=MAX_TITLE_CHARS), PLAIN_TEXT] | None = None
    metadata: MetadataPatch | None = None


@dataclass(frozen=True)
class SessionQuery:
    """A REST list of sessions: filters, order and a cursor from a previous page (either direction)."""

    limit: int = 20
    page: str | None = None
    order: Order = "desc"
    statuses: tuple[SessionStatus, ...] = ()
    agent_id: str | None = None
    agent_version: int | None = None
    created_at: TimeFilter = field(default_factory=TimeFilter)
    include_archived: bool = False


@dataclass(frozen=True)
class EventQuery:
    """A REST list of a session's events (compared on `processed_at`), oldest first unless `order` says."""

    limit: int = 20
    page: str | None = None
    order: Order = "asc"
    types: tuple[str, ...] = ()
    created_at: TimeFilter = field(default_factory=TimeFilter)


class SessionManager:
    """Owns sessions and their logs for one data dir."""

    def __init__(
        self,
        store: Storage,
        data_dir: Path,
        default_model: str,
        default_image: str,
        *,
        sandboxes: SandboxBackend,
        vaults: Vaults,
        repositories: SessionRepositories,
        files: SessionFiles | None = None,
        providers: Providers | None = None,
        skills: SkillService | None = None,
    ) -> None:
        self._store = store
        self._skills = skills
        self._providers = providers or Providers()
        self._data_dir = data_dir
        self._default_model = default_model
        self._default_image = default_image
        self._sandboxes = sandboxes
        self._vaults = vaults
        self.repositories = repositories
        self.files = files
        self.notifier = EventNotifier()
        self._appender = Appender(store)
        self.latest_seq: dict[str, int] = {}
        """The newest seq appended through this manager, per session (lets a run skip re-reading its log)."""

    def _shown(self, session: Session) -> Session:
        """The session with its sandbox posture, which follows from its environment and this server."""
        if self._sandboxes is None:
            return session
        mcp_hosts = [server.host_entry for server in session.agent.mcp_servers]
        posture = self._sandboxes.posture(session.id, session.environment, mcp_hosts=mcp_hosts)
        return session.model_copy(update={"sandbox": posture.shown()})

    async def create(self, request: NewSession) -> Session:
        agent = await self._agent_snapshot(request)
        environment = await self._environment_snapshot(request.environment_id)
        await self._check_vault_ids(request.vault_ids)
        session_id = new_id("sesn")
        repositories = [r for r in request.resources if isinstance(r, GitHubRepositoryResource)]
        files = [r for r in request.resources if isinstance(r, FileResource)]
        if files:
            if self.files is None:
                raise InvalidRequestError("this server keeps no files; file resources are not available")
            await self.files.check(files, [r.target for r in repositories])
        resources: list[AnySessionResource] = []
        if repositories:
            resources.extend(await self.repositories.record(repositories))
        if files and self.files is not None:
            resources.extend(await self.files.record(session_id, files))
        now = now_rfc3339()
        session = Session(
            id=session_id,
            status="idle",
            title=request.title or None,
            agent=agent,
            environment_id=request.environment_id,
            environment=environment,
            metadata=request.metadata,
            resources=resources,
            vault_ids=request.vault_ids,
            stats=SessionStats(event_count=0),
            created_at=now,
            updated_at=now,
        )
        try:
            await in_thread(self._store.insert_session, session)
        except BaseException:
            with anyio.CancelScope(shield=True):  # the files' copies go with the session that was not made
                await in_thread(shutil.rmtree, self._data_dir / "sessions" / session_id, ignore_errors=True)
            raise
        return self._shown(session)

    async def _check_vault_ids(self, vault_ids: Sequence[str]) -> None:
        if not vault_ids:
            return
        if len(set(vault_ids)) != len(vault_ids):
            raise InvalidRequestError(f"vault_ids names a vault twice ({list(vault_ids)}); name each once")
        try:
            await in_vault_thread(self._vaults.check_vault_ids, vault_ids)
        except VaultError as exc:
            raise from_vault_error(exc) from exc

    async def _agent_snapshot(self, request: NewSession) -> AgentSnapshot:
        snapshot = await self._chosen_agent(request)
        self._providers.check(snapshot.model.id)  # an unknown provider fails here, not at the first turn
        if not snapshot.skills:
            return snapshot
        if self._skills is None:
            raise InvalidRequestError("this server keeps no skills; remove `skills`")
        return snapshot.model_copy(update={"skills": await self._skills.resolve(snapshot.skills, pin=True)})

    async def _chosen_agent(self, request: NewSession) -> AgentSnapshot:
        if request.agent_id is None:
            if request.agent_version is not None:
                raise InvalidRequestError("agent_version needs an agent_id; pass both, or neither for an inline agent")
            return _with_tools(
                AgentSnapshot(
                    id=None,
                    version=None,
                    name="inline",
                    model=ModelConfig(id=request.model or self._default_model),
                    system=request.system or None,
                    tools=FULL_TOOLSET,
                ),
                request,
            )
        agent = await in_thread(self._store.get_agent, request.agent_id, request.agent_version)
        if agent.archived_at is not None:
            raise ConflictError(f"agent {agent.id!r} is archived; new sessions cannot use it")
        overrides: dict[str, object] = {}
        if request.model:
            overrides["model"] = ModelConfig(id=request.model)
        if request.system is not None:
            overrides["system"] = request.system or None
        snapshot = AgentSnapshot.model_validate(agent.model_dump(include=set(AgentSnapshot.model_fields)))
        return _with_tools(snapshot.model_copy(update=overrides), request)

    async def _environment_snapshot(self, environment_id: str | None) -> EnvironmentSpec:
        if environment_id is None:
            return EnvironmentSpec(image=self._default_image)
        environment = await in_thread(self._store.get_environment, environment_id)
        if environment.archived_at is not None:
            raise ConflictError(f"environment {environment_id!r} is archived; new sessions cannot use it")
        spec = environment.spec()
        return spec.model_copy(update={"image": spec.image or self._default_image})

    async def get(self, session_id: str) -> Session:
        return self._shown(await point_read(self._store, self._store.get_session, session_id))

    async def list_page(
        self,
        limit: int,
        cursor: str | None,
        status: SessionStatus | None,
        agent_id: str | None,
        include_archived: bool,
    ) -> SessionList:
        before = check_cursor(cursor, "sesn")
        where = SessionFilter(status=status, agent_id=agent_id, include_archived=include_archived)
        sessions = await in_thread(self._store.list_sessions, limit + 1, before, where)
        shown = [self._shown(s) for s in sessions[:limit]]
        return SessionList(sessions=shown, next_cursor=page_cursor([s.id for s in sessions], limit))

    async def list_sessions(self, query: SessionQuery) -> Page[Session]:
        """A page of sessions as the REST API lists them: filtered, in `order`, with cursors both ways."""
        if query.agent_version is not None and query.agent_id is None:
            raise InvalidRequestError("agent_version filters one agent's sessions; pass agent_id with it")
        walk = Walk.start(query.page, query.order)
        where = SessionFilter(
            agent_id=query.agent_id,
            include_archived=query.include_archived,
            statuses=query.statuses,
            agent_version=query.agent_version,
            created_at=time_bounds(query.created_at),
            ascending=walk.ascending,
        )
        read = await in_thread(self._store.list_sessions, query.limit + 1, walk.anchor, where)
        return walk.page([self._shown(s) for s in read], query.limit, lambda s: s.id)

    async def update(self, session_id: str, changes: SessionChanges) -> Session:
        """Sets the title and patches the metadata; records `session.updated` with only what changed (nothing
        when nothing did). Refused once the session is archived. Two updates at once: the later one wins."""
        session = await self.get(session_id)
        if session.archived_at is not None:
            raise ConflictError(f"session {session_id!r} is archived; it is read-only")
        title = (changes.title or None) if "title" in changes.model_fields_set else session.title
        try:
            metadata = apply_metadata_patch(session.metadata, changes.metadata or {})
        except ValueError as exc:
            raise InvalidRequestError(f"metadata: {exc}") from exc
        changed: dict[str, JsonValue] = {}
        if title != session.title:
            changed["title"] = title
        if metadata != session.metadata:
            changed["metadata"] = cast(JsonValue, metadata)
        if not changed:
            return session
        event: EventBody = SessionUpdated(**changed)
        if REDACTOR:
            event = _redacted(event)
        appended = await in_thread(self._store.update_session, session_id, title, metadata, event)
        self.latest_seq[session_id] = max(self.latest_seq.get(session_id, 0), appended[-1].seq)
        self.notifier.notify(session_id, settled=False)
        return await self.get(session_id)

    async def archive(self, session_id: str) -> Session:
        session = await self.get(session_id)
        if session.archived_at is not None:
            return session
        _refuse_while_running(session, "archive")
        await in_thread(self._store.archive_session, session_id, now_rfc3339())
        self.notifier.notify(session_id, settled=True)
        await self._sandboxes.stop(session_id, session.environment)
        return await self.get(session_id)

    async def delete(self, session_id: str) -> SessionDeleted:
        session = await self.get(session_id)
        _refuse_while_running(session, "delete")
        await in_thread(self._store.delete_session, session_id)
        await self.repositories.forget(session)
        await self._sandboxes.destroy(session_id, session.environment)
        await in_thread(shutil.rmtree, self._data_dir / "sessions" / session_id, ignore_errors=True)
        self.notifier.notify(session_id, settled=True)
        return SessionDeleted(id=session_id)

    async def output_files(self, session_id: str) -> OutputFiles:
        session = await self.get(session_id)
        async with self._outputs_of(session) as sandboxes:
            files = await sandboxes.list_outputs(session.id, session.environment)
        return OutputFiles(session_id=session_id, files=[OutputFile(**dataclasses.asdict(f)) for f in files])

    async def read_output(self, session_id: str, path: str, offset: int, max_bytes: int) -> OutputChunk:
        session = await self.get(session_id)
        checked = check_output_path(path)
        async with self._outputs_of(session) as sandboxes:
            chunk = await sandboxes.read_output(session.id, session.environment, checked, offset, max_bytes)
        return OutputChunk(
            session_id=session_id,
            path=path,
            mime_type=chunk.mime_type,
            size_bytes=chunk.size_bytes,
            offset=offset,
            data=chunk.data,
            eof=chunk.eof,
        )

    @asynccontextmanager
    async def _outputs_of(self, session: Session) -> AsyncIterator[SandboxBackend]:
        """The sandboxes, to read output files. Reads never start a sandbox, but an archived session's may be given
        a container (created, never started) to read its files through; it is removed after."""
        try:
            yield self._sandboxes
        finally:
            if session.archived_at is not None:
                await self._sandboxes.stop(session.id, session.environment)

    async def append(self, session_id: str, events: Sequence[EventBody]) -> list[Event]:
        """Appends events (redacted: no secret the server used is ever stored) and wakes their waiters."""
        if REDACTOR:
            events = [_redacted(e) for e in events]
        appended = await self._appender.append(session_id, events)
        if appended:
            self.latest_seq[session_id] = max(self.latest_seq.get(session_id, 0), appended[-1].seq)
        settled = any(e.type in ("session.status_idle", "session.status_terminated") for e in appended)
        self.notifier.notify(session_id, settled=settled)
        return appended

    async def read_events(self, session_id: str, after_seq: int) -> list[Event]:
        """The whole log after `after_seq` (the agent loop's read; `events` is the clients' paged one)."""
        return await in_thread(self._store.read_events, session_id, after_seq, LOG_LIMIT)

    def newest_seq(self, session_id: str) -> int | None:
        return self.latest_seq.get(session_id)

    def run_ended(self, session_id: str) -> None:
        """A run's end is news too: a waiter that saw the last idle while the run was winding down looks again."""
        self.notifier.notify(session_id, settled=True)

    async def list_events(self, session_id: str, query: EventQuery) -> Page[Event]:
        """A page of the session's events as the REST API lists them (whole: nothing cut)."""
        walk = Walk.start(query.page, query.order)
        after_seq = None
        if walk.anchor is not None:
            if not walk.anchor.isdigit():
                raise InvalidRequestError(f"page {query.page!r} is not an event cursor; pass next_page back unchanged")
            after_seq = int(walk.anchor)
        where = EventFilter(
            after_seq=after_seq,
            ascending=walk.ascending,
            types=query.types,
            processed_at=time_bounds(query.created_at),
        )
        read = await in_thread(self._store.list_events, session_id, query.limit + 1, where)
        return walk.page(read, query.limit, lambda e: str(e.seq))

    async def events(
        self,
        session_id: str,
        after: str | None,
        limit: int,
        types: Sequence[str] | None,
        wait_s: float,
    ) -> EventPage:
        """A page of events after the cursor; with `wait_s`, a long poll for the first new one."""
        if after and not is_id(after, "sevt"):
            raise InvalidRequestError(f"after={after!r} is not an event id; pass an id (sevt_...) from get_events")
        deadline = anyio.current_time() + wait_s
        while True:
            signal = self.notifier.arm(session_id)  # armed before the read: no lost wake-up
            events, state = await in_thread(self._store.read_page, session_id, after, limit + 1, types)
            remaining = deadline - anyio.current_time()
            if events or remaining <= 0:
                break
            with anyio.move_on_after(remaining):
                await signal.wait()
        page = events[:limit]
        return EventPage(
            session_id=session_id,
            events=[bounded(e) for e in page],
            next_cursor=page[-1].id if page else after,
            has_more=len(events) > limit,
            status=state.status,
            stop_reason=state.stop_reason,
        )


class OutputFile(BaseModel):
    path: str = Field(description="Relative to /mnt/session/outputs/.")
    size_bytes: int
    mime_type: str
    sha256: str
    modified_at: str


class OutputFiles(BaseModel):
    session_id: str
    files: list[OutputFile]


class OutputChunk(BaseModel):
    """Part of an output file, as raw bytes (the MCP layer decides how to show them)."""

    session_id: str
    path: str
    mime_type: str
    size_bytes: int
    offset: int
    data: bytes
    eof: bool


def check_output_path(path: str) -> str:
    """Refuses paths that could leave the outputs folder before the sandbox sees them."""
    parts = path.replace("\\", "/").split("/")
    if not path or path.startswith("/") or ".." in parts or "\0" in path:
        raise InvalidRequestError(
            f"path {path!r} must be relative to /mnt/session/outputs/ with no '..'; list_output_files shows them"
        )
    return path


def _with_tools(snapshot: AgentSnapshot, request: NewSession) -> AgentSnapshot:
    """The snapshot with the session's own tools and MCP servers, where given (each replaces the agent's whole)."""
    tools = snapshot.tools if request.tools is None else request.tools
    mcp_servers = snapshot.mcp_servers if request.mcp_servers is None else request.mcp_servers
    skills = snapshot.skills if request.skills is None else request.skills
    try:
        check_agent_definition(tools, mcp_servers)
        check_skill_refs(tools, skills)
    except ValueError as exc:
        raise InvalidRequestError(f"the session's agent: {exc}") from exc
    return snapshot.model_copy(update={"tools": tools, "mcp_servers": mcp_servers, "skills": skills})


def _refuse_while_running(session: Session, action: str) -> None:
    if session.status == "running":
        raise SessionBusyError(
            f"session {session.id!r} is {session.status}; call interrupt_session, then {action} it once idle"
        )


def bounded(event: Event) -> Event:
    """The event with every long string cut to `MAX_EVENT_FIELD_CHARS` and a visible marker."""
    payload = event.payload()
    if not _has_long_string(payload):
        return event
    return event.with_payload({key: _cut(value) for key, value in payload.items()})


def _has_long_string(value: JsonValue) -> bool:
    if isinstance(value, str):
        return len(value) > MAX_EVENT_FIELD_CHARS
    if isinstance(value, list):
        return any(_has_long_string(item) for item in value)
    if isinstance(value, dict):
        return any(_has_long_string(item) for item in value.values())
    return False


def _cut(value: JsonValue) -> JsonValue:
    if isinstance(value, str) and len(value) > MAX_EVENT_FIELD_CHARS:
        hidden = len(value) - MAX_EVENT_FIELD_CHARS
        return value[:MAX_EVENT_FIELD_CHARS] + f"\n…[cut: {hidden} more chars; the store keeps the whole event]"
    if isinstance(value, list):
        return [_cut(item) for item in value]
    if isinstance(value, dict):
        return {key: _cut(item) for key, item in value.items()}
    return value


def _redacted(body: EventBody) -> EventBody:
    """The body with every secret the server used masked (its stored fields redacted, then read back)."""
    fields = cast(dict[str, JsonValue], REDACTOR.redact_json(cast(JsonLike, stored_fields(body))))
    redacted = parse_body(body.type, fields, lenient=True)
    event_id = preassigned_id(body)
    return redacted if event_id is None else with_event_id(redacted, event_id)
