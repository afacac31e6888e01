"""Session lifecycle: create, read, list, archive, delete, and reading the event log.

A session pins its agent (a snapshot of one version, or an inline agent) and
its environment (a snapshot) when it is created. Its status and usage are
never written directly: they follow from its events (see `state.py`).
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import anyio
from pydantic import BaseModel, Field, JsonValue

from server.errors import ConflictError, InvalidRequestError, SessionBusyError
from server.ids import is_id, new_id
from server.models.agents import FULL_TOOLSET, AgentSnapshot, ModelConfig
from server.models.common import now_rfc3339
from server.models.environments import EnvironmentSpec
from server.models.events import Event
from server.models.sessions import EventPage, Session, SessionStats, SessionStatus
from server.pagination import check_cursor, page_cursor
from server.session.appender import Appender
from server.session.blocking import in_thread
from server.session.notifier import EventNotifier
from server.session.store import NewEvent, SessionFilter, Store

__all__ = ["MAX_EVENT_FIELD_CHARS", "NewSession", "SessionManager", "SessionPage"]

MAX_EVENT_FIELD_CHARS = 8_000
"""Longer strings in events returned by tools are cut (the store keeps them whole): a tool result
has to fit a model's context, and one large file read should not crowd out everything else."""


class SessionPage(BaseModel):
    sessions: list[Session]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last one.")


class SessionDeleted(BaseModel):
    id: str
    type: Literal["session_deleted"] = "session_deleted"
    deleted: Literal[True] = True


class NewSession(BaseModel):
    """Arguments of create_session."""

    agent_id: str | None = None
    agent_version: int | None = None
    model: str | None = None
    system: str | None = None
    environment_id: str | None = None
    title: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)


class SessionManager:
    """Owns sessions and their logs for one data dir."""

    def __init__(self, store: Store, data_dir: Path, default_model: str, default_image: str) -> None:
        self._store = store
        self._data_dir = data_dir
        self._default_model = default_model
        self._default_image = default_image
        self.notifier = EventNotifier()
        self._appender = Appender(store)

    async def create(self, request: NewSession) -> Session:
        agent = await self._agent_snapshot(request)
        environment = await self._environment_snapshot(request.environment_id)
        now = now_rfc3339()
        session = Session(
            id=new_id("sesn"),
            status="idle",
            title=request.title or None,
            agent=agent,
            environment_id=request.environment_id,
            environment=environment,
            metadata=request.metadata,
            stats=SessionStats(event_count=0),
            created_at=now,
            updated_at=now,
        )
        await in_thread(self._store.insert_session, session)
        return session

    async def _agent_snapshot(self, request: NewSession) -> AgentSnapshot:
        if request.agent_id is None:
            if request.agent_version is not None:
                raise InvalidRequestError("agent_version needs an agent_id; pass both, or neither for an inline agent")
            return AgentSnapshot(
                id=None,
                version=None,
                name="inline",
                model=ModelConfig(id=request.model or self._default_model),
                system=request.system or None,
                tools=FULL_TOOLSET,
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
        return snapshot.model_copy(update=overrides)

    async def _environment_snapshot(self, environment_id: str | None) -> EnvironmentSpec:
        if environment_id is None:
            return EnvironmentSpec(image=self._default_image)
        environment = await in_thread(self._store.get_environment, environment_id)
        if environment.archived_at is not None:
            raise ConflictError(f"environment {environment_id!r} is archived; new sessions cannot use it")
        spec = environment.spec()
        return spec.model_copy(update={"image": spec.image or self._default_image})

    async def get(self, session_id: str) -> Session:
        return await in_thread(self._store.get_session, session_id)

    async def list_page(
        self,
        limit: int,
        cursor: str | None,
        status: SessionStatus | None,
        agent_id: str | None,
        include_archived: bool,
    ) -> SessionPage:
        before = check_cursor(cursor, "sesn")
        where = SessionFilter(status=status, agent_id=agent_id, include_archived=include_archived)
        sessions = await in_thread(self._store.list_sessions, limit + 1, before, where)
        return SessionPage(sessions=sessions[:limit], next_cursor=page_cursor([s.id for s in sessions], limit))

    async def archive(self, session_id: str) -> Session:
        session = await self.get(session_id)
        if session.archived_at is not None:
            return session
        _refuse_while_running(session, "archive")
        await in_thread(self._store.archive_session, session_id, now_rfc3339())
        self.notifier.notify(session_id)
        return await self.get(session_id)

    async def delete(self, session_id: str) -> SessionDeleted:
        session = await self.get(session_id)
        _refuse_while_running(session, "delete")
        await in_thread(self._store.delete_session, session_id)
        await in_thread(shutil.rmtree, self._data_dir / "sessions" / session_id, ignore_errors=True)
        self.notifier.notify(session_id)
        return SessionDeleted(id=session_id)

    async def append(self, session_id: str, events: Sequence[NewEvent]) -> list[Event]:
        appended = await self._appender.append(session_id, events)
        self.notifier.notify(session_id)
        return appended

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


def _refuse_while_running(session: Session, action: str) -> None:
    if session.status in ("running", "rescheduling"):
        raise SessionBusyError(
            f"session {session.id!r} is {session.status}; call interrupt_session, then {action} it once idle"
        )


def bounded(event: Event) -> Event:
    """The event with every long string cut to `MAX_EVENT_FIELD_CHARS` and a visible marker."""
    if not _has_long_string(event.payload()):
        return event
    payload = {key: _cut(value) for key, value in event.payload().items()}
    return Event.model_validate(
        {**payload, "id": event.id, "seq": event.seq, "type": event.type, "processed_at": event.processed_at}
    )


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
