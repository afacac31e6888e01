"""`SessionFeed` over the data dir's store, read-only, for when no HTTP server runs (see `feeds`)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

from server.core.config import ServerConfig
from server.core.errors import NotFoundError
from server.fronts.cli.feeds import CAUGHT_UP, FeedItem
from server.services.store_reader import StoreReader

__all__ = ["POLL_S", "StoreFeed"]

POLL_S = 0.25
"""How often a quiet log is read again: the server's notifier is in its own process, out of reach."""
BATCH = 500


class StoreFeed:
    """Read by a watch's reader thread while the main thread may close it (Ctrl-C): every read holds `_reading`,
    and `close` takes it too, so the connection is never closed under a read (which could hang the exit)."""

    def __init__(self, reader: StoreReader, where: str) -> None:
        self._reader = reader
        self._where = where
        self._reading = threading.Lock()
        self._closed = threading.Event()

    @classmethod
    def open(cls, config: ServerConfig) -> StoreFeed:
        return cls(StoreReader.open(config), str(config.data_dir))

    @property
    def source(self) -> str:
        return f"the data dir {self._where} (read-only; no HTTP server runs on it)"

    def sessions(self, limit: int, include_archived: bool) -> list[dict[str, Any]]:
        return [session.model_dump(mode="json") for session in self._reader.sessions(limit, include_archived)]

    def session(self, session_id: str) -> dict[str, Any]:
        return self._reader.session(session_id).model_dump(mode="json")

    def events(self, session_id: str) -> Iterator[FeedItem]:
        cursor: str | None = None
        caught_up = False
        while True:
            with self._reading:
                if self._closed.is_set():
                    return
                try:
                    batch = self._reader.events_after(session_id, cursor, BATCH)
                except NotFoundError:
                    batch = None
            if batch is None:
                yield {"type": "session.deleted"}
                return
            for event in batch:
                yield event.model_dump(mode="json")
            if batch:
                cursor = batch[-1].id
            if len(batch) < BATCH:
                if not caught_up:
                    caught_up = True
                    yield CAUGHT_UP
                self._closed.wait(POLL_S)

    def close(self) -> None:
        self._closed.set()
        with self._reading:
            self._reader.close()
