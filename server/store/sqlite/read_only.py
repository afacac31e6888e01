"""Opening `store.db` for reading only, beside a server that may be writing it (or with none running).

The connection is SQLite's read-only mode with `query_only` on: it never takes the write lock, never applies a
migration and cannot change a row, so it is safe next to a live server. WAL lets it read while the server
writes. A store that the running code's migrations are ahead of is refused with a message, not half-read.

Even a read-only connection makes the WAL's companion files (`store.db-wal`, `-shm`) when they are missing, which
they are when nothing has the store open. So a store nobody has open (`is_quiet`) is opened as immutable: SQLite
then reads the file alone and creates nothing. Its reader reopens it normally once a server appears.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from urllib.parse import quote

from server.core.errors import ConfigError, NotFoundError
from server.store.sqlite.migrations import MIGRATIONS
from server.store.sqlite.store import BUSY_TIMEOUT_MS, Store

__all__ = ["is_quiet", "open_read_only"]


def is_quiet(path: Path) -> bool:
    """Whether no connection has the store open: a WAL-mode connection keeps `-wal` beside it while open."""
    return not path.with_name(path.name + "-wal").exists()


def open_read_only(path: Path, immutable: bool) -> Store:
    """A `Store` on `path` whose reads work and whose writes fail (`NotFoundError` when there is no store).

    `immutable` only when `is_quiet(path)` said so: an immutable connection would not see a writer's changes."""
    if not path.is_file():
        raise NotFoundError(f"no store at {str(path)!r}: no server has run on this data dir yet")
    db = sqlite3.connect(
        f"file:{quote(str(path.resolve()))}?mode=ro{'&immutable=1' if immutable else ''}",
        uri=True,
        isolation_level=None,
        check_same_thread=False,
        timeout=BUSY_TIMEOUT_MS / 1000,
    )
    try:
        db.execute("pragma query_only = on")
        db.execute(f"pragma busy_timeout = {BUSY_TIMEOUT_MS}")
        _check_schema(db, path)
    except BaseException:
        db.close()
        raise
    return Store(db, path)


def _check_schema(db: sqlite3.Connection, path: Path) -> None:
    try:
        applied = {row[0] for row in db.execute("select name from schema_migrations")}
    except sqlite3.OperationalError:
        applied = set()
    missing = [name for name, _ in MIGRATIONS if name not in applied]
    if missing:
        raise ConfigError(
            f"the store {str(path)!r} predates this version ({len(missing)} migration(s) not applied): "
            "start the server once on this data dir to upgrade it, then read it again"
        )
