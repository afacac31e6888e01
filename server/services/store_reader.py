"""Reading a data dir's sessions and event logs while no HTTP server serves them (`sessions list|watch`).

Read-only, and without the data dir's lock: a stdio server may own the data dir meanwhile, and this must never
stand in its way or change what it wrote. New events are found by polling, since the server's notifier lives
in the server's process. A store nobody had open is read as immutable (nothing is created beside it) until a
server opens it; then it is reopened, so that server's new events show.
"""

from __future__ import annotations

from pathlib import Path

from server.core.config import ServerConfig
from server.core.events import Event
from server.core.sessions import Session
from server.store.ports import SessionFilter
from server.store.sqlite.read_only import is_quiet, open_read_only
from server.store.sqlite.store import Store

__all__ = ["StoreReader"]


class StoreReader:
    """Sessions and events from the data dir's store, opened read-only. Close it when done."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._quiet = is_quiet(path)
        self._opened = open_read_only(path, immutable=self._quiet)

    @classmethod
    def open(cls, config: ServerConfig) -> StoreReader:
        return cls(config.database_path)

    def sessions(self, limit: int, include_archived: bool) -> list[Session]:
        """The newest `limit` sessions, newest first."""
        return self._store().list_sessions(limit, None, SessionFilter(include_archived=include_archived))

    def session(self, session_id: str) -> Session:
        """Raises `NotFoundError` for an unknown id."""
        return self._store().get_session(session_id)

    def events_after(self, session_id: str, after: str | None, limit: int) -> list[Event]:
        """Up to `limit` of the session's events after the event id `after` (from the start, when None)."""
        events, _ = self._store().read_page(session_id, after, limit)
        return events

    def close(self) -> None:
        self._opened.close()

    def _store(self) -> Store:
        """The connection, reopened as a plain read-only one once a server has the store open."""
        if self._quiet and not is_quiet(self._path):
            self._opened.close()
            self._quiet = False
            self._opened = open_read_only(self._path, immutable=False)
        return self._opened
