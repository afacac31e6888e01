"""The SQLite store: definitions, sessions, and each session's append-only event log.

Design:

- One database file (`store.db`) in the data dir, in WAL mode with
  `synchronous=NORMAL`: a committed transaction survives the process being
  killed at any moment (only a power loss can take the last few back), and
  readers never block the writer.
- The event log is the truth. Events are never updated; they are deleted only
  together with their session (triggers enforce both). `seq` is the event's
  1-based position in its session's log: it is assigned inside `BEGIN
  IMMEDIATE` from the session row's `last_seq`, and `(session_id, seq)` is the
  primary key, so seqs are gap-free and unique even with concurrent writers.
- A session row carries a cache of `state.fold(events)` (status, stop reason,
  usage, counts), updated in the same transaction as each append, so reading
  a session never replays its log. `stale_state_ids` replays each log to find
  a cache that disagrees (`managed-sessions doctor`), and `rebuild_state`
  rewrites it from the log (`doctor --repair`), e.g. after a change to the fold.
- Agents are stored as immutable versions; environments and sessions as JSON
  bodies beside the columns that lists filter on.

All methods are synchronous and thread-safe (one connection behind a lock);
async callers run them in a worker thread, or, for a point read while no
other thread holds the lock, on the event loop (`read_now`).

A write that fails for lack of space, a read-only file system or an I/O error
is rolled back whole and raised as `DataDirUnwritableError`, which names the
data dir and the fix: the log never holds half a batch, and the connection
stays usable for the writes that follow once the cause is gone.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from pydantic import ValidationError

from server.core.agents import Agent
from server.core.blocking import Busy
from server.core.common import now_rfc3339
from server.core.environments import Environment
from server.core.errors import ConflictError, DataDirUnwritableError, NotFoundError
from server.core.events import Event, EventBody, SessionStatusTerminated, preassigned_id
from server.core.ids import new_id
from server.core.sessions import AnySessionResource, Session, SessionStats
from server.core.skills import CheckedSkill, Skill, SkillSource, SkillVersion
from server.core.state import SessionState, fold
from server.store.ports import EventFilter, SessionFilter, TimeBounds
from server.store.sqlite import skills as skill_rows
from server.store.sqlite.migrations import apply_migrations

__all__ = ["Store"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

BUSY_TIMEOUT_MS = 10_000
WAL_AUTOCHECKPOINT_PAGES = 4_000


class Store:
    """Typed access to `store.db`. Open with `Store.open(path)`; close with `close()`."""

    def __init__(self, db: sqlite3.Connection, path: Path) -> None:
        self._db = db
        self._path = path
        self._lock = threading.RLock()

    @classmethod
    def open(cls, path: Path) -> Store:
        """Opens (creating if needed) the database and applies pending migrations."""
        path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1000)
        _enable_wal(db)
        db.execute("pragma synchronous = normal")
        # A checkpoint fsyncs inside whichever commit triggers it; checkpointing every ~16 MiB of WAL
        # instead of SQLite's default ~4 MiB spreads that cost over four times as many appends.
        db.execute(f"pragma wal_autocheckpoint = {WAL_AUTOCHECKPOINT_PAGES}")
        db.execute("pragma foreign_keys = on")
        db.execute(f"pragma busy_timeout = {BUSY_TIMEOUT_MS}")
        apply_migrations(db)
        return cls(db, path)

    @property
    def store_id(self) -> str:
        """This store's random id (the label that marks its sandboxes)."""
        return str(self._read("select value from meta where key = 'store_id'")[0][0])

    def session_ids(self) -> dict[str, bool]:
        """Every session's id, mapped to whether it is archived."""
        return {row[0]: row[1] is not None for row in self._read("select session_id, archived_at from sessions")}

    def running_session_ids(self) -> list[str]:
        """Sessions whose log says a run was going (after a crash: the ones to resume)."""
        return [
            row[0]
            for row in self._read("select session_id from sessions where status = 'running' and archived_at is null")
        ]

    def session_volumes(self, session_id: str) -> str | None:
        """The key of the volume set the session owns, if it took a pooled one (None: the volumes named after it)."""
        rows = self._read("select volumes from session_volumes where session_id = ?", (session_id,))
        return str(rows[0][0]) if rows else None

    def own_volumes(self, session_id: str, volumes: str) -> None:
        """Records that the session owns the volume set `volumes` (before any of its files are written there)."""
        with self._write() as db:
            db.execute("insert into session_volumes values (?, ?)", (session_id, volumes))

    def volume_owners(self) -> dict[str, str]:
        """Every recorded volume set, mapped to the session that owns it."""
        return {str(row[0]): str(row[1]) for row in self._read("select volumes, session_id from session_volumes")}

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def read_now(self, read: Callable[[], T], /) -> T | Busy:
        """`read()` on the calling thread if no other thread is using the connection, else `Busy.BUSY` at once.

        For point reads from the event loop (`core.blocking.point_read`). With the lock taken, SQLite does not
        make the read wait either: in WAL mode a reader never waits on a writer, this process's or another's
        (and the data dir lock, `core.lock.hold_data_dir`, keeps other servers out of the file)."""
        if not self._lock.acquire(blocking=False):
            return Busy.BUSY
        try:
            return read()
        finally:
            self._lock.release()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; `BEGIN IMMEDIATE` takes the write lock up front.

        A failed statement or commit rolls the whole transaction back. SQLite may already have rolled it
        back itself (it does on SQLITE_FULL and some I/O errors), so the rollback runs only if one is open."""
        with self._lock, self._unwritable_as_error():
            self._db.execute("begin immediate")
            try:
                yield self._db
                self._db.execute("commit")
            except BaseException:
                if self._db.in_transaction:
                    with contextlib.suppress(sqlite3.Error):  # the original failure is the one to report
                        self._db.execute("rollback")
                raise

    @contextmanager
    def _unwritable_as_error(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            unwritable = _unwritable_reason(exc)
            if unwritable is None:
                raise
            reason, fix = unwritable
            logger.error("store %s: a write failed: %s (%s)", self._path, exc, getattr(exc, "sqlite_errorname", ""))
            raise DataDirUnwritableError(
                f"the data dir {str(self._path.parent)!r} cannot take writes: {reason}. {fix}, then retry; "
                "everything recorded before is intact, and a session whose turn was cut short goes on with its "
                "next message"
            ) from exc

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    # Agents ---------------------------------------------------------------------------------------------

    def insert_agent(self, agent: Agent) -> None:
        with self._write() as db:
            db.execute("insert into agents values (?, ?, ?, null)", (agent.id, agent.version, agent.created_at))
            self._insert_agent_version(db, agent)

    def add_agent_version(self, agent: Agent) -> None:
        """Stores `agent` as the next version; `agent.version` must be latest + 1."""
        with self._write() as db:
            row = db.execute("select latest_version from agents where agent_id = ?", (agent.id,)).fetchone()
            if row is None:
                raise NotFoundError(f"no agent {agent.id!r}")
            if row[0] != agent.version - 1:
                raise ConflictError(
                    f"agent {agent.id!r} is at version {row[0]}, not {agent.version - 1}; get_agent and retry"
                )
            db.execute("update agents set latest_version = ? where agent_id = ?", (agent.version, agent.id))
            self._insert_agent_version(db, agent)

    @staticmethod
    def _insert_agent_version(db: sqlite3.Connection, agent: Agent) -> None:
        body = agent.model_dump_json(exclude={"archived_at"})
        db.execute("insert into agent_versions values (?, ?, ?, ?)", (agent.id, agent.version, body, agent.updated_at))

    def get_agent(self, agent_id: str, version: int | None = None) -> Agent:
        rows = self._read(
            "select v.body, a.archived_at, a.latest_version from agents a join agent_versions v using (agent_id)"
            " where a.agent_id = ? and v.version = coalesce(?, a.latest_version)",
            (agent_id, version),
        )
        if not rows:
            if version is not None and self._read("select 1 from agents where agent_id = ?", (agent_id,)):
                latest = self._read("select latest_version from agents where agent_id = ?", (agent_id,))[0][0]
                raise NotFoundError(f"agent {agent_id!r} has no version {version}; versions run 1 to {latest}")
            raise NotFoundError(f"no agent {agent_id!r}; list_agents shows the ones that exist")
        body, archived_at, _ = rows[0]
        return Agent.model_validate({**json.loads(body), "archived_at": archived_at})

    def list_agents(
        self,
        limit: int,
        before: str | None,
        include_archived: bool,
        created_gte: str | None = None,
        created_lte: str | None = None,
    ) -> list[Agent]:
        """Latest versions, newest agent first, ids below `before` (the cursor), created within the bounds
        (RFC 3339 UTC strings in `now_rfc3339`'s form, so they compare as text)."""
        rows = self._read(
            "select v.body, a.archived_at from agents a join agent_versions v"
            " on v.agent_id = a.agent_id and v.version = a.latest_version"
            " where (? is null or a.agent_id < ?) and (? or a.archived_at is null)"
            " and (? is null or a.created_at >= ?) and (? is null or a.created_at <= ?)"
            " order by a.agent_id desc limit ?",
            (before, before, include_archived, created_gte, created_gte, created_lte, created_lte, limit),
        )
        return [Agent.model_validate({**json.loads(body), "archived_at": at}) for body, at in rows]

    def list_agent_versions(self, agent_id: str, limit: int, below: int | None) -> list[Agent]:
        """One agent's versions, newest first, those below version `below` (the cursor)."""
        rows = self._read(
            "select v.body, a.archived_at from agents a join agent_versions v using (agent_id)"
            " where a.agent_id = ? and (? is null or v.version < ?) order by v.version desc limit ?",
            (agent_id, below, below, limit),
        )
        if not rows and not self._read("select 1 from agents where agent_id = ?", (agent_id,)):
            raise NotFoundError(f"no agent {agent_id!r}; list_agents shows the ones that exist")
        return [Agent.model_validate({**json.loads(body), "archived_at": at}) for body, at in rows]

    def archive_agent(self, agent_id: str, at: str) -> None:
        with self._write() as db:
            db.execute("update agents set archived_at = coalesce(archived_at, ?) where agent_id = ?", (at, agent_id))

    # Environments ---------------------------------------------------------------------------------------

    def insert_environment(self, env: Environment) -> None:
        try:
            with self._write() as db:
                db.execute(
                    "insert into environments values (?, ?, ?, ?, ?, null)",
                    (env.id, env.name, _env_body(env), env.created_at, env.updated_at),
                )
        except sqlite3.IntegrityError as exc:
            raise ConflictError(f"an environment named {env.name!r} exists already; pick another name") from exc

    def replace_environment(self, env: Environment) -> None:
        try:
            with self._write() as db:
                db.execute(
                    "update environments set name = ?, body = ?, updated_at = ? where environment_id = ?",
                    (env.name, _env_body(env), env.updated_at, env.id),
                )
        except sqlite3.IntegrityError as exc:
            raise ConflictError(f"an environment named {env.name!r} exists already; pick another name") from exc

    def get_environment(self, environment_id: str) -> Environment:
        rows = self._read("select body, archived_at from environments where environment_id = ?", (environment_id,))
        if not rows:
            raise NotFoundError(f"no environment {environment_id!r}; list_environments shows the ones that exist")
        return Environment.model_validate({**json.loads(rows[0][0]), "archived_at": rows[0][1]})

    def list_environments(self, limit: int, before: str | None, include_archived: bool) -> list[Environment]:
        rows = self._read(
            "select body, archived_at from environments where (? is null or environment_id < ?)"
            " and (? or archived_at is null) order by environment_id desc limit ?",
            (before, before, include_archived, limit),
        )
        return [Environment.model_validate({**json.loads(body), "archived_at": at}) for body, at in rows]

    def archive_environment(self, environment_id: str, at: str) -> None:
        with self._write() as db:
            db.execute(
                "update environments set archived_at = coalesce(archived_at, ?), updated_at = ?"
                " where environment_id = ?",
                (at, at, environment_id),
            )

    def delete_environment(self, environment_id: str) -> None:
        with self._write() as db:
            db.execute("delete from environments where environment_id = ?", (environment_id,))

    # Skills (the statements are in skills.py) ------------------------------------------------------------

    def add_skill_version(self, checked: CheckedSkill, at: str) -> SkillVersion:
        with self._write() as db:
            return skill_rows.insert_skill_version(db, checked, at)

    def get_skill(self, skill: str) -> Skill:
        with self._lock:
            return skill_rows.select_skill(self._db, skill)

    def list_skills(self, limit: int, before: str | None) -> list[Skill]:
        with self._lock:
            return skill_rows.select_skills(self._db, limit, before)

    def get_skill_version(self, skill_id: str, version: int | None = None) -> SkillVersion:
        with self._lock:
            return skill_rows.select_skill_version(self._db, skill_id, version)

    def list_skill_versions(self, skill_id: str) -> list[SkillVersion]:
        with self._lock:
            return skill_rows.select_skill_versions(self._db, skill_id)

    def skill_files(self, skill_id: str, version: int) -> list[SkillSource]:
        with self._lock:
            return skill_rows.select_skill_files(self._db, skill_id, version)

    def delete_skill(self, skill_id: str) -> None:
        with self._write() as db:
            skill_rows.delete_skill(db, skill_id)

    def delete_skill_version(self, skill_id: str, version: int) -> None:
        with self._write() as db:
            skill_rows.delete_skill_version(db, skill_id, version)

    # Sessions -------------------------------------------------------------------------------------------

    def insert_session(self, session: Session) -> None:
        state = SessionState()
        with self._write() as db:
            db.execute(
                "insert into sessions values (?, ?, ?, ?, ?, ?, ?, null, ?, ?, 0)",
                (
                    session.id,
                    session.agent.id,
                    session.agent.version,
                    session.environment_id,
                    _session_body(session),
                    session.created_at,
                    session.updated_at,
                    state.status,
                    state.model_dump_json(),
                ),
            )

    def get_session(self, session_id: str) -> Session:
        rows = self._read(_SESSION_COLUMNS + " where session_id = ?", (session_id,))
        if not rows:
            raise NotFoundError(f"no session {session_id!r}; list_sessions shows the ones that exist")
        return _session_from_row(rows[0])

    def list_sessions(self, limit: int, before: str | None, where: SessionFilter) -> list[Session]:
        """Sessions past the cursor `before` in the filter's direction: newest first (ids below it) by default."""
        clauses = ["(? or archived_at is null)"]
        params: list[Any] = [where.include_archived]
        if before is not None:
            clauses.append("session_id > ?" if where.ascending else "session_id < ?")
            params.append(before)
        statuses = [*where.statuses, *([where.status] if where.status else [])]
        if statuses:
            clauses.append(f"status in ({','.join('?' * len(statuses))})")
            params.extend(statuses)
        for column, value in (("agent_id", where.agent_id), ("agent_version", where.agent_version)):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        _add_time_bounds("created_at", where.created_at, clauses, params)
        order = "asc" if where.ascending else "desc"
        # Only fixed column names and placeholders are interpolated; every value is bound.
        sql = f"{_SESSION_COLUMNS} where {' and '.join(clauses)} order by session_id {order} limit ?"
        return [_session_from_row(row) for row in self._read(sql, [*params, limit])]

    def update_session(
        self, session_id: str, title: str | None, metadata: dict[str, str], event: EventBody
    ) -> list[Event]:
        """Writes the new title and metadata into the session's body and appends `event`, in one transaction."""
        with self._write() as db:
            row = db.execute("select body, archived_at from sessions where session_id = ?", (session_id,)).fetchone()
            if row is None:
                raise NotFoundError(f"no session {session_id!r}; list_sessions shows the ones that exist")
            if row[1] is not None:
                raise ConflictError(f"session {session_id!r} is archived; it is read-only")
            body = {**json.loads(row[0]), "title": title, "metadata": metadata}
            db.execute("update sessions set body = ? where session_id = ?", (json.dumps(body), session_id))
            return self._append(db, session_id, [event])

    def replace_session_resources(self, session_id: str, resources: Sequence[AnySessionResource], at: str) -> None:
        """Sets the session's resources (a file resource added or removed after create), in its body."""
        with self._write() as db:
            row = db.execute("select body from sessions where session_id = ?", (session_id,)).fetchone()
            if row is None:
                raise NotFoundError(f"no session {session_id!r}; list_sessions shows the ones that exist")
            body = json.loads(row[0])
            body["resources"] = [r.model_dump(mode="json") for r in resources]
            db.execute(
                "update sessions set body = ?, updated_at = ? where session_id = ?", (json.dumps(body), at, session_id)
            )

    def delete_session(self, session_id: str) -> None:
        """Removes the session, then its events and file records (the trigger allows it only in this order)."""
        with self._write() as db:
            db.execute("delete from sessions where session_id = ?", (session_id,))
            db.execute("delete from events where session_id = ?", (session_id,))
            db.execute("delete from files where session_id = ?", (session_id,))
            db.execute("delete from session_volumes where session_id = ?", (session_id,))

    # Events ---------------------------------------------------------------------------------------------

    def append_events(self, session_id: str, new_events: Sequence[EventBody]) -> list[Event]:
        """Appends events in one transaction and updates the session's cached state; returns them."""
        with self._write() as db:
            return self._append(db, session_id, new_events)

    def append_many(self, requests: Sequence[tuple[str, Sequence[EventBody]]]) -> list[list[Event] | NotFoundError]:
        """Group commit: several appends in one transaction, each in its own savepoint.

        One request failing (its session is gone) leaves the others to commit; its slot in the
        result holds the error instead of the events.
        """
        results: list[list[Event] | NotFoundError] = []
        with self._write() as db:
            for session_id, new_events in requests:
                db.execute("savepoint one_append")
                try:
                    results.append(self._append(db, session_id, new_events))
                except NotFoundError as exc:
                    db.execute("rollback to one_append")
                    results.append(exc)
                db.execute("release one_append")
        return results

    def archive_session(self, session_id: str, at: str) -> list[Event]:
        """Records `session.status_terminated` and marks the session archived, atomically."""
        with self._write() as db:
            events = self._append(db, session_id, [SessionStatusTerminated()])
            db.execute("update sessions set archived_at = ? where session_id = ?", (at, session_id))
            return events

    @staticmethod
    def _append(db: sqlite3.Connection, session_id: str, new_events: Sequence[EventBody]) -> list[Event]:
        row = db.execute("select last_seq, state from sessions where session_id = ?", (session_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"no session {session_id!r}")
        seq, state = row[0], SessionState.model_validate_json(row[1])
        appended = []
        for new in new_events:
            seq += 1
            event_id = preassigned_id(new) or new_id("sevt")
            event = Event.stored(new, event_id=event_id, seq=seq, processed_at=now_rfc3339())
            db.execute(
                "insert into events values (?, ?, ?, ?, ?, ?)",
                (session_id, seq, event.id, event.type, event.processed_at, json.dumps(event.payload())),
            )
            state = state.apply(event)
            appended.append(event)
        db.execute(
            "update sessions set last_seq = ?, status = ?, state = ?, updated_at = coalesce(?, updated_at)"
            " where session_id = ?",
            (seq, state.status, state.model_dump_json(), state.last_event_at, session_id),
        )
        return appended

    def read_events(
        self, session_id: str, after_seq: int, limit: int, types: Sequence[str] | None = None
    ) -> list[Event]:
        """Events with `seq > after_seq`, oldest first, optionally only some types."""
        with self._lock:
            return self._select_events(self._db, session_id, after_seq, limit, types)

    def list_events(self, session_id: str, limit: int, where: EventFilter) -> list[Event]:
        """A page of the session's events in `seq` order (which is `processed_at` order), as the filter says."""
        clauses = ["session_id = ?"]
        params: list[Any] = [session_id]
        if where.after_seq is not None:
            clauses.append("seq > ?" if where.ascending else "seq < ?")
            params.append(where.after_seq)
        if where.types:
            clauses.append(f"type in ({','.join('?' * len(where.types))})")
            params.extend(where.types)
        _add_time_bounds("processed_at", where.processed_at, clauses, params)
        order = "asc" if where.ascending else "desc"
        # Only fixed column names and placeholders are interpolated; every value is bound.
        sql = (
            "select seq, event_id, type, processed_at, payload from events"  # noqa: S608
            f" where {' and '.join(clauses)} order by seq {order} limit ?"
        )
        with self._lock:
            if self._db.execute("select 1 from sessions where session_id = ?", (session_id,)).fetchone() is None:
                raise NotFoundError(f"no session {session_id!r}; list_sessions shows the ones that exist")
            return [_event_from_row(row) for row in self._db.execute(sql, [*params, limit])]

    def read_page(
        self, session_id: str, after_event_id: str | None, limit: int, types: Sequence[str] | None = None
    ) -> tuple[list[Event], SessionState]:
        """Events after a cursor (an event id) and the session's state, read together."""
        with self._lock:
            row = self._db.execute("select state from sessions where session_id = ?", (session_id,)).fetchone()
            if row is None:
                raise NotFoundError(f"no session {session_id!r}; list_sessions shows the ones that exist")
            after_seq = 0
            if after_event_id:
                found = self._db.execute(
                    "select seq from events where session_id = ? and event_id = ?", (session_id, after_event_id)
                ).fetchone()
                if found is None:
                    raise NotFoundError(
                        f"session {session_id!r} has no event {after_event_id!r}; pass an id from its own log"
                    )
                after_seq = found[0]
            events = self._select_events(self._db, session_id, after_seq, limit, types)
            return events, SessionState.model_validate_json(row[0])

    @staticmethod
    def _select_events(
        db: sqlite3.Connection, session_id: str, after_seq: int, limit: int, types: Sequence[str] | None
    ) -> list[Event]:
        if types:
            marks = ",".join("?" * len(types))
            # Only the placeholders are interpolated; every value is bound.
            sql = (
                "select seq, event_id, type, processed_at, payload from events"  # noqa: S608
                f" where session_id = ? and seq > ? and type in ({marks}) order by seq limit ?"
            )
            params: tuple[Any, ...] = (session_id, after_seq, *types, limit)
        else:
            sql = (
                "select seq, event_id, type, processed_at, payload from events"
                " where session_id = ? and seq > ? order by seq limit ?"
            )
            params = (session_id, after_seq, limit)
        return [_event_from_row(row) for row in db.execute(sql, params)]

    def last_seq(self, session_id: str) -> int:
        rows = self._read("select last_seq from sessions where session_id = ?", (session_id,))
        if not rows:
            raise NotFoundError(f"no session {session_id!r}")
        return int(rows[0][0])

    def rebuild_state(self, session_id: str) -> SessionState:
        """Replays the whole log; writes and returns the state it gives."""
        with self._write() as db:
            state = _replayed_state(db, session_id)
            db.execute(
                "update sessions set status = ?, state = ? where session_id = ?",
                (state.status, state.model_dump_json(), session_id),
            )
        return state

    def stale_state_ids(self) -> list[str]:
        """Sessions whose cached state (or status column) is not what replaying their log gives: a cache
        edited by hand, or written by a fold that has changed since. `rebuild_state` repairs each."""
        return [session_id for session_id in self.session_ids() if self._state_is_stale(session_id)]

    def _state_is_stale(self, session_id: str) -> bool:
        # One read transaction: a server appending meanwhile cannot make the cache look stale.
        with self._lock:
            self._db.execute("begin")
            try:
                row = self._db.execute(
                    "select status, state from sessions where session_id = ?", (session_id,)
                ).fetchone()
                replayed = _replayed_state(self._db, session_id)
            finally:
                self._db.execute("commit")
        if row is None:  # deleted since it was listed
            return False
        status, state_json = row
        return bool(status != replayed.status or _parsed_state(state_json) != replayed)

    def integrity_check(self) -> str:
        return str(self._read("pragma integrity_check")[0][0])


def _enable_wal(db: sqlite3.Connection) -> None:
    """Switches the file to WAL. SQLite does not apply the busy timeout to this pragma, so two processes
    opening a new file at once would see 'database is locked': retry within the same budget."""
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            if db.execute("pragma journal_mode = wal").fetchone()[0] == "wal":
                return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc):
                raise
        if time.monotonic() >= deadline:
            raise sqlite3.OperationalError("could not switch store.db to WAL mode: database is locked")
        time.sleep(0.01)


def _unwritable_reason(exc: sqlite3.Error) -> tuple[str, str] | None:
    """What keeps the data dir from taking writes and its fix, if that is what `exc` means (else None: a bug)."""
    name = getattr(exc, "sqlite_errorname", "")
    if name == "SQLITE_FULL":
        return "its disk is full", "Free space on that disk"
    if name.startswith("SQLITE_READONLY"):
        return "it is read-only", "Make it writable again (remount the file system, or fix its permissions)"
    if name.startswith("SQLITE_IOERR"):
        return f"the disk reported an I/O error ({name})", "Check the disk (dmesg, free space)"
    if name.startswith("SQLITE_CANTOPEN"):
        return "a file of the store cannot be opened", "Check that the data dir exists and is writable"
    return None


_SESSION_COLUMNS = "select body, updated_at, archived_at, state from sessions"


def _session_body(session: Session) -> str:
    derived = {"status", "stop_reason", "usage", "stats", "updated_at", "archived_at", "sandbox"}
    return session.model_dump_json(exclude=derived)


def _session_from_row(row: tuple[Any, ...]) -> Session:
    body, updated_at, archived_at, state_json = row
    state = SessionState.model_validate_json(state_json)
    return Session.model_validate(
        {
            **json.loads(body),
            "status": state.status,
            "stop_reason": state.stop_reason,
            "usage": state.usage,
            "stats": SessionStats(event_count=state.event_count, last_event_at=state.last_event_at),
            "updated_at": updated_at,
            "archived_at": archived_at,
        }
    )


def _add_time_bounds(column: str, bounds: TimeBounds, clauses: list[str], params: list[Any]) -> None:
    """Adds `column > ?` and the like for each bound given (times are RFC 3339 strings of one width)."""
    for op, value in ((">", bounds.gt), (">=", bounds.gte), ("<", bounds.lt), ("<=", bounds.lte)):
        if value is not None:
            clauses.append(f"{column} {op} ?")
            params.append(value)


def _env_body(env: Environment) -> str:
    return env.model_dump_json(exclude={"archived_at"})


def _replayed_state(db: sqlite3.Connection, session_id: str) -> SessionState:
    rows = db.execute(
        "select seq, event_id, type, processed_at, payload from events where session_id = ? order by seq",
        (session_id,),
    ).fetchall()
    return fold(_event_from_row(row) for row in rows)


def _parsed_state(state_json: str) -> SessionState | None:
    """The cached state, or None when the cache no longer parses (so it can only be rebuilt)."""
    try:
        return SessionState.model_validate_json(state_json)
    except ValidationError:
        return None


def _event_from_row(row: tuple[Any, ...]) -> Event:
    seq, event_id, event_type, processed_at, payload = row
    return Event.model_validate(
        {**json.loads(payload), "id": event_id, "seq": seq, "type": event_type, "processed_at": processed_at}
    )
