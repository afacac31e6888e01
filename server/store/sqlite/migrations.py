"""Schema migrations: named, forward-only, run in order at start-up.

Each migration is a function appended to `MIGRATIONS` by `@migration`. It runs
inside the transaction that records its name in `schema_migrations`, so a
migration either applies completely or not at all. A released migration is
never edited; a change to the schema is a new migration.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Callable

__all__ = ["MIGRATIONS", "apply_migrations"]

Migration = Callable[[sqlite3.Connection], None]
MIGRATIONS: list[tuple[str, Migration]] = []


def migration(fn: Migration) -> Migration:
    MIGRATIONS.append((fn.__name__, fn))
    return fn


@migration
def m001_initial(db: sqlite3.Connection) -> None:
    _run_script(
        db,
        """
        create table agents (
            agent_id text primary key,
            latest_version integer not null,
            created_at text not null,
            archived_at text
        ) strict;
        create table agent_versions (
            agent_id text not null references agents(agent_id),
            version integer not null,
            body text not null,
            created_at text not null,
            primary key (agent_id, version)
        ) strict;
        create trigger agent_versions_immutable before update on agent_versions
        begin select raise(abort, 'agent versions are immutable'); end;

        create table environments (
            environment_id text primary key,
            name text not null unique,
            body text not null,
            created_at text not null,
            updated_at text not null,
            archived_at text
        ) strict;

        create table sessions (
            session_id text primary key,
            agent_id text,
            agent_version integer,
            environment_id text,
            body text not null,
            created_at text not null,
            updated_at text not null,
            archived_at text,
            -- A cache of the fold of the session's events (see server/store/sqlite/state.py).
            status text not null,
            state text not null,
            last_seq integer not null default 0
        ) strict;
        create index sessions_by_agent on sessions(agent_id, session_id);
        create index sessions_by_status on sessions(status, session_id);

        create table events (
            session_id text not null,
            seq integer not null,
            event_id text not null unique,
            type text not null,
            processed_at text,
            payload text not null,
            primary key (session_id, seq)
        ) strict, without rowid;
        create index events_by_type on events(session_id, type, seq);
        create trigger events_no_update before update on events
        begin select raise(abort, 'events are append-only'); end;
        -- Events go only with their session: delete the session row first.
        create trigger events_no_delete before delete on events
        when exists (select 1 from sessions where session_id = old.session_id)
        begin select raise(abort, 'events are append-only'); end;

        create table files (
            session_id text not null,
            path text not null,
            size_bytes integer not null,
            mime_type text not null,
            sha256 text not null,
            modified_at text not null,
            primary key (session_id, path)
        ) strict;
        """,
    )


@migration
def m002_store_identity(db: sqlite3.Connection) -> None:
    """A random id for this store: sandboxes are labelled with it, so a server reaps only its own."""
    db.execute("create table meta (key text primary key, value text not null) strict")
    db.execute("insert into meta values ('store_id', ?)", (uuid.uuid4().hex,))


@migration
def m003_session_volumes(db: sqlite3.Connection) -> None:
    """Which volume set a session owns, when it is not the one named after the session: a session that took a
    warm pool's container owns the volumes that container was made with (Docker cannot rename or relabel them)."""
    db.execute("create table session_volumes (session_id text primary key, volumes text not null unique) strict")


@migration
def m004_skills(db: sqlite3.Connection) -> None:
    """Skills and their immutable versions; each version's files are stored once, here, and every session that
    uses the version reads them from here (the sandbox side caches them per version, never per session)."""
    _run_script(
        db,
        """
        create table skills (
            skill_id text primary key,
            name text not null unique,
            latest_version integer not null,
            -- The highest version ever made: a deleted version's number is never given to another.
            versions_made integer not null,
            created_at text not null,
            updated_at text not null
        ) strict;
        create table skill_versions (
            skill_id text not null references skills(skill_id),
            version integer not null,
            body text not null,
            created_at text not null,
            primary key (skill_id, version)
        ) strict;
        create trigger skill_versions_immutable before update on skill_versions
        begin select raise(abort, 'skill versions are immutable'); end;
        create table skill_files (
            skill_id text not null,
            version integer not null,
            path text not null,
            content blob not null,
            primary key (skill_id, version, path),
            foreign key (skill_id, version) references skill_versions(skill_id, version)
        ) strict;
        create trigger skill_files_immutable before update on skill_files
        begin select raise(abort, 'skill files are immutable'); end;
        """,
    )


def _run_script(db: sqlite3.Connection, script: str) -> None:
    """Runs a script statement by statement: `executescript` would commit first."""
    pending = ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            db.execute(pending)
            pending = ""
    if pending.strip():
        raise ValueError(f"incomplete SQL statement in migration: {pending.strip()[:80]!r}")


def apply_migrations(db: sqlite3.Connection) -> list[str]:
    """Applies every migration not yet recorded; returns the names applied now."""
    db.execute("create table if not exists schema_migrations (name text primary key, applied_at text not null) strict")
    done = {row[0] for row in db.execute("select name from schema_migrations")}
    applied = []
    for name, fn in MIGRATIONS:
        if name in done:
            continue
        db.execute("begin immediate")
        try:
            # Another process may have applied it while we waited for the lock.
            if db.execute("select 1 from schema_migrations where name = ?", (name,)).fetchone() is None:
                fn(db)
                db.execute("insert into schema_migrations values (?, datetime('now'))", (name,))
                applied.append(name)
            db.execute("commit")
        except BaseException:
            db.execute("rollback")
            raise
    return applied
