"""The SQLite store against real files: migrations, the append-only log, seqs under concurrent writers
(threads and processes), durability across `kill -9`, and the cached state matching the fold of the log."""

from __future__ import annotations

import json
import sqlite3
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from processes import LineChild, run_command
from store_rows import insert_session

from server.core.agents import FULL_TOOLSET, Agent, ModelConfig
from server.core.common import now_rfc3339
from server.core.config import ServerConfig
from server.core.errors import DataDirUnwritableError, NotFoundError
from server.core.events import EventBody, EventType, StopReason, Usage, raw_event
from server.core.ids import new_id
from server.core.state import SessionState, fold
from server.services.doctor import check_session_states
from server.store.ports import SessionFilter
from server.store.sqlite.migrations import MIGRATIONS, apply_migrations
from server.store.sqlite.store import Store

CHILD_DEADLINE_S = 60.0
"""Generous: a child pays for a Python start-up and the imports before it does anything."""

ALL_EVENTS = 1_000_000

TABLES = {"agents", "agent_versions", "environments", "sessions", "events", "files", "schema_migrations"}
TRIGGERS = {"agent_versions_immutable", "events_no_update", "events_no_delete"}

# Children import the store, report "ready", and wait for "go" on stdin, so every one of them starts
# its work at the same moment without the parent sleeping.
OPENER = """
import sys, traceback
from pathlib import Path
from server.store.sqlite.store import Store

print("ready", flush=True)
for line in sys.stdin:  # one new file per round, sent to every child at about the same moment
    try:
        Store.open(Path(line.strip())).close()
        print("opened", flush=True)
    except Exception as exc:
        print(f"failed: {exc!r} at {traceback.extract_tb(exc.__traceback__)[-1].line}", flush=True)
"""

APPENDER = """
import json, sys
from pathlib import Path
from server.store.sqlite.store import Store
from server.core.events import EventBody, raw_event

db_path, session_id, appends = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
store = Store.open(db_path)
print("ready", flush=True)
sys.stdin.readline()
batches = []
for i in range(appends):
    batch = [raw_event("agent.message", {"content": [{"type": "text", "text": f"{i}.{j}"}]}) for j in range(1 + i % 3)]
    batches.append([[e.seq, e.id] for e in store.append_events(session_id, batch)])
store.close()
print(json.dumps(batches), flush=True)
"""

# Prints each batch's seqs only after `append_events` returned, i.e. after the commit.
WRITER = """
import sys
from pathlib import Path
from server.store.sqlite.store import Store
from server.core.events import EventBody, raw_event

store = Store.open(Path(sys.argv[1]))
session_id = sys.argv[2]
for i in range(100_000):
    # Now and then a payload spanning several pages, so a kill can land in the middle of one.
    text = "x" * (20_000 if i % 17 == 0 else i % 300)
    batch = [raw_event("agent.message", {"content": [{"type": "text", "text": text}]}) for _ in range(1 + i % 3)]
    events = store.append_events(session_id, batch)
    print(" ".join(str(e.seq) for e in events), flush=True)
"""


ALL_MIGRATIONS = [name for name, _ in MIGRATIONS]


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "store.db"


@pytest.fixture
def store(db_path: Path) -> Iterator[Store]:
    opened = Store.open(db_path)
    yield opened
    opened.close()


def message(text: str) -> EventBody:
    return raw_event("agent.message", {"content": [{"type": "text", "text": text}]})


def cached_state(db_path: Path, session_id: str) -> SessionState:
    """The state column as stored, read past the store."""
    with closing(sqlite3.connect(db_path)) as db:
        row = db.execute("select state from sessions where session_id = ?", (session_id,)).fetchone()
    return SessionState.model_validate_json(row[0])


def assert_log_is_whole(store: Store, session_id: str) -> list[int]:
    """Checks seqs run 1..N with ids unique and the cache agreeing; returns the seqs."""
    events = store.read_events(session_id, after_seq=0, limit=ALL_EVENTS)
    seqs = [e.seq for e in events]
    assert seqs == list(range(1, len(events) + 1))
    assert len({e.id for e in events}) == len(events)
    session = store.get_session(session_id)
    assert store.last_seq(session_id) == len(events)
    assert session.stats.event_count == len(events)
    assert store.rebuild_state(session_id) == fold(events)
    return seqs


class Child(LineChild):
    """A Python child running `script`."""

    def __init__(self, script: str, tmp_path: Path, *args: str) -> None:
        stderr_path = tmp_path / f"child-{new_id('sevt')}.stderr"
        super().__init__([sys.executable, "-c", script, *args], stderr_path, deadline_s=CHILD_DEADLINE_S)


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Callable[..., Child]]:
    """Starts children; any still running when the test ends is killed."""
    children: list[Child] = []

    def start(script: str, *args: str) -> Child:
        children.append(Child(script, tmp_path, *args))
        return children[-1]

    yield start
    for child in children:
        child.stop()


def release_together(children: list[Child]) -> None:
    """Waits until every child is ready, then tells them all to go."""
    for child in children:
        assert child.next_line() == "ready"
    for child in children:
        child.say("go")


# Migrations ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("existing", ["no file", "empty file"])
def test_opening_a_new_store_creates_every_table_and_records_the_migration(db_path: Path, existing: str) -> None:
    if existing == "empty file":
        db_path.touch()

    Store.open(db_path).close()

    with closing(sqlite3.connect(db_path)) as db:
        tables = {row[0] for row in db.execute("select name from sqlite_master where type = 'table'")}
        triggers = {row[0] for row in db.execute("select name from sqlite_master where type = 'trigger'")}
        migrations = [row[0] for row in db.execute("select name from schema_migrations order by rowid")]
        journal_mode = db.execute("pragma journal_mode").fetchone()[0]
    assert tables >= TABLES
    assert triggers >= TRIGGERS
    assert migrations == ALL_MIGRATIONS
    assert journal_mode == "wal"


def test_migrations_apply_once_and_reopening_keeps_the_data(db_path: Path) -> None:
    with closing(sqlite3.connect(db_path, isolation_level=None)) as db:
        assert apply_migrations(db) == ALL_MIGRATIONS
        assert apply_migrations(db) == []
    store = Store.open(db_path)
    session_id = insert_session(store)
    store.append_events(session_id, [message("kept")])
    store.close()

    with closing(sqlite3.connect(db_path, isolation_level=None)) as db:
        assert apply_migrations(db) == []
    reopened = Store.open(db_path)
    try:
        events = reopened.read_events(session_id, after_seq=0, limit=10)
        assert [e.payload() for e in events] == [{"content": [{"type": "text", "text": "kept"}]}]
        assert reopened.get_session(session_id).stats.event_count == 1
    finally:
        reopened.close()


def test_a_migration_another_connection_applied_while_this_one_waited_is_not_applied_again(db_path: Path) -> None:
    racer_applied: list[str] = []

    with (
        closing(sqlite3.connect(db_path, isolation_level=None)) as racer,
        closing(sqlite3.connect(db_path, isolation_level=None)) as db,
    ):

        def race(sql: str) -> None:
            # Runs as `db` starts its BEGIN IMMEDIATE, after it read which migrations were done:
            # the racer gets the write lock first and applies them all.
            if sql.strip().lower() == "begin immediate" and not racer_applied:
                racer_applied.extend(apply_migrations(racer))

        db.set_trace_callback(race)
        applied = apply_migrations(db)
        recorded = [row[0] for row in db.execute("select name from schema_migrations")]

    assert racer_applied == ALL_MIGRATIONS
    assert applied == []
    assert recorded == ALL_MIGRATIONS


OPENING_ROUNDS = 30
"""The race is narrow (a few milliseconds per round); thirty rounds hit it nearly every run."""


def test_processes_opening_a_new_file_at_once_all_succeed_and_apply_each_migration_once(
    tmp_path: Path, spawn: Callable[..., Child]
) -> None:
    children = [spawn(OPENER) for _ in range(6)]
    for child in children:
        assert child.next_line() == "ready"

    failures: list[str] = []
    for round_index in range(OPENING_ROUNDS):
        path = tmp_path / f"round-{round_index}.db"
        for child in children:
            child.say(str(path))
        outcomes = [child.next_line() for child in children]
        failures += [f"round {round_index}: {outcome}" for outcome in outcomes if outcome != "opened"]
        with closing(sqlite3.connect(path)) as db:
            assert [row[0] for row in db.execute("select name from schema_migrations")] == ALL_MIGRATIONS
            assert db.execute("pragma journal_mode").fetchone()[0] == "wal"

    assert failures == []


# The append-only log ------------------------------------------------------------------------------------


def test_events_cannot_be_updated_or_deleted_while_their_session_exists(store: Store, db_path: Path) -> None:
    session_id = insert_session(store)
    store.append_events(session_id, [message("one"), message("two")])

    with closing(sqlite3.connect(db_path, isolation_level=None)) as db:
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            db.execute("update events set payload = '{}' where session_id = ?", (session_id,))
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            db.execute("delete from events where session_id = ?", (session_id,))
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            db.execute("delete from events")

    assert [e.payload()["content"] for e in store.read_events(session_id, 0, 10)] == [
        [{"type": "text", "text": "one"}],
        [{"type": "text", "text": "two"}],
    ]


def test_deleting_a_session_removes_its_events_and_leaves_other_sessions_alone(store: Store, db_path: Path) -> None:
    doomed, kept = insert_session(store), insert_session(store)
    store.append_events(doomed, [message("a"), message("b")])
    store.append_events(kept, [message("c")])

    store.delete_session(doomed)

    with closing(sqlite3.connect(db_path)) as db:
        counts = dict(db.execute("select session_id, count(*) from events group by session_id").fetchall())
    assert counts == {kept: 1}
    with pytest.raises(NotFoundError):
        store.get_session(doomed)
    assert store.read_events(doomed, 0, 10) == []
    assert_log_is_whole(store, kept)


def test_appending_to_an_unknown_session_raises_and_writes_nothing(store: Store, db_path: Path) -> None:
    with pytest.raises(NotFoundError, match="sesn_unknown"):
        store.append_events("sesn_unknown", [message("lost")])

    with closing(sqlite3.connect(db_path)) as db:
        assert db.execute("select count(*) from events").fetchone()[0] == 0


# Seqs under concurrent writers ----------------------------------------------------------------------------


def batch_of(tag: str, i: int) -> list[EventBody]:
    """One to three events, so batches of different sizes interleave."""
    return [message(f"{tag}.{i}.{j}") for j in range(1 + i % 3)]


def events_in_batches(appends_n: int) -> int:
    return sum(len(batch_of("", i)) for i in range(appends_n))


@pytest.mark.parametrize("connections", ["one per thread", "one shared"])
def test_threads_appending_to_one_session_get_gap_free_unique_seqs(
    store: Store, db_path: Path, connections: str
) -> None:
    session_id = insert_session(store)
    threads_n, appends_n = 8, 40
    start = threading.Barrier(threads_n)

    def append(index: int) -> list[list[int]]:
        own = Store.open(db_path) if connections == "one per thread" else store
        try:
            start.wait(timeout=CHILD_DEADLINE_S)
            return [[e.seq for e in own.append_events(session_id, batch_of(str(index), i))] for i in range(appends_n)]
        finally:
            if own is not store:
                own.close()

    with ThreadPoolExecutor(max_workers=threads_n) as pool:
        futures = [pool.submit(append, index) for index in range(threads_n)]
        batches = [batch for future in futures for batch in future.result(timeout=CHILD_DEADLINE_S)]

    total = events_in_batches(appends_n) * threads_n
    assert sorted(seq for batch in batches for seq in batch) == list(range(1, total + 1))
    assert all(batch == list(range(batch[0], batch[0] + len(batch))) for batch in batches)  # a batch is contiguous
    assert assert_log_is_whole(store, session_id) == list(range(1, total + 1))


def test_processes_appending_to_one_session_get_gap_free_unique_seqs(
    store: Store, db_path: Path, spawn: Callable[..., Child]
) -> None:
    session_id = insert_session(store)
    processes_n, appends_n = 4, 60
    children = [spawn(APPENDER, str(db_path), session_id, str(appends_n)) for _ in range(processes_n)]

    release_together(children)

    batches: list[list[list[Any]]] = [batch for child in children for batch in json.loads(child.next_line())]
    assert [child.wait() for child in children] == [0] * processes_n
    total = events_in_batches(appends_n) * processes_n
    returned_seqs = sorted(seq for batch in batches for seq, _ in batch)
    assert returned_seqs == list(range(1, total + 1))
    stored = store.read_events(session_id, after_seq=0, limit=ALL_EVENTS)
    assert {event_id for batch in batches for _, event_id in batch} == {e.id for e in stored}
    assert assert_log_is_whole(store, session_id) == list(range(1, total + 1))


# Durability -----------------------------------------------------------------------------------------------


def read_seqs_until(writer: Child, printed: set[int], *, count: int = 0, above: int = 0) -> None:
    """Collects printed seqs until `count` lines came in and one seq exceeds `above`."""
    for lines in range(ALL_EVENTS):
        if lines >= count and max(printed, default=0) > above:
            return
        printed.update(int(seq) for seq in writer.next_line().split())
    raise AssertionError("the writer never got there")


KILL_AFTER_LINES = (40, 150, 400)
"""Each round kills a writer after this many commits, so the kills land at different points of the log."""


def test_every_commit_survives_kill_9_and_the_log_stays_whole(db_path: Path, spawn: Callable[..., Child]) -> None:
    with closing(Store.open(db_path)) as store:
        session_id = insert_session(store)
    printed: set[int] = set()

    for lines in KILL_AFTER_LINES:
        first, second = spawn(WRITER, str(db_path), session_id), spawn(WRITER, str(db_path), session_id)
        read_seqs_until(first, printed, count=lines)
        first.kill_9()
        # The killed writer may have died holding the write lock; the other one must carry on past it.
        with closing(Store.open(db_path)) as peek:
            committed = peek.last_seq(session_id)
        read_seqs_until(second, printed, above=committed)
        second.kill_9()

        reopened = Store.open(db_path)
        try:
            assert reopened.integrity_check() == "ok"
            seqs = assert_log_is_whole(reopened, session_id)
            assert printed <= set(seqs), f"committed but lost: {sorted(printed - set(seqs))[:10]}"
        finally:
            reopened.close()

    assert len(printed) > sum(KILL_AFTER_LINES)


# The cached state and the fold ----------------------------------------------------------------------------


def a_turn(input_tokens: int, output_tokens: int) -> list[EventBody]:
    usage = {
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cache_read_input_tokens": 7,
        "cache_creation_input_tokens": 3,
    }
    return [
        raw_event("span.model_request_start", {}),
        raw_event("agent.message", {"content": [{"type": "text", "text": "Done."}]}),
        raw_event("span.model_request_end", {"model_request_start_id": "sevt_x", "model_usage": usage}),
    ]


def test_the_cached_state_follows_the_events_and_equals_the_fold(store: Store, db_path: Path) -> None:
    session_id = insert_session(store)
    store.append_events(
        session_id,
        [
            raw_event("user.message", {"content": [{"type": "text", "text": "Fix the tests"}]}),
            raw_event("session.status_running", {}),
        ],
    )
    running = store.get_session(session_id)
    assert (running.status, running.stop_reason) == ("running", None)

    store.append_events(session_id, a_turn(100, 20))
    last = store.append_events(
        session_id, [*a_turn(50, 5), raw_event("session.status_idle", {"stop_reason": {"type": "end_turn"}})]
    )

    idle = store.get_session(session_id)
    assert idle.status == "idle"
    assert idle.stop_reason == StopReason(type="end_turn")
    assert idle.usage == Usage(
        input_tokens=150, output_tokens=25, cache_read_input_tokens=14, cache_creation_input_tokens=6
    )
    assert idle.stats.event_count == 9
    assert idle.stats.last_event_at == last[-1].processed_at
    assert idle.updated_at == last[-1].processed_at
    cached = cached_state(db_path, session_id)
    assert store.rebuild_state(session_id) == cached == fold(store.read_events(session_id, 0, ALL_EVENTS))
    assert store.get_session(session_id) == idle


def test_a_new_turn_clears_the_stop_reason_and_keeps_adding_usage(store: Store) -> None:
    session_id = insert_session(store)
    waiting = {"type": "requires_action", "event_ids": ["sevt_tool"]}
    store.append_events(
        session_id,
        [
            raw_event("session.status_running", {}),
            *a_turn(10, 1),
            raw_event("session.status_idle", {"stop_reason": waiting}),
        ],
    )
    assert store.get_session(session_id).stop_reason == StopReason(type="requires_action", event_ids=["sevt_tool"])

    store.append_events(session_id, [raw_event("session.status_running", {}), *a_turn(10, 1)])

    session = store.get_session(session_id)
    assert (session.status, session.stop_reason) == ("running", None)
    assert (session.usage.input_tokens, session.usage.output_tokens) == (20, 2)
    assert store.rebuild_state(session_id) == fold(store.read_events(session_id, 0, ALL_EVENTS))


def test_a_model_usage_with_null_cache_counts_still_counts_its_tokens(store: Store) -> None:
    # The anthropic SDK's Usage has Optional cache fields, so a dumped usage can carry nulls.
    session_id = insert_session(store)
    usage = {
        "input_tokens": 100,
        "output_tokens": 20,
        "cache_read_input_tokens": None,
        "cache_creation_input_tokens": None,
    }
    store.append_events(session_id, [raw_event("span.model_request_end", {"model_usage": usage})])

    assert store.get_session(session_id).usage == Usage(input_tokens=100, output_tokens=20)


def test_an_archived_session_stays_terminated_whatever_comes_after(store: Store, db_path: Path) -> None:
    session_id = insert_session(store)
    store.append_events(session_id, [raw_event("session.status_idle", {"stop_reason": {"type": "end_turn"}})])

    terminated = store.archive_session(session_id, now_rfc3339())
    store.append_events(
        session_id,
        [
            raw_event("session.status_running", {}),
            raw_event("session.status_idle", {"stop_reason": {"type": "end_turn"}}),
        ],
    )

    assert [e.type for e in terminated] == ["session.status_terminated"]
    session = store.get_session(session_id)
    assert session.status == "terminated"
    assert session.archived_at is not None
    assert session.stats.event_count == 4
    assert store.rebuild_state(session_id) == cached_state(db_path, session_id)
    assert store.rebuild_state(session_id).status == "terminated"
    assert store.list_sessions(10, None, SessionFilter()) == []
    assert [s.id for s in store.list_sessions(10, None, SessionFilter(include_archived=True))] == [session_id]


def corrupt_state_cache(db_path: Path, session_id: str, status: str, state_json: str) -> None:
    """Writes the session row's cache past the store, as a hand edit or an older fold would have."""
    with closing(sqlite3.connect(db_path)) as db, db:
        db.execute("update sessions set status = ?, state = ? where session_id = ?", (status, state_json, session_id))


def an_idle_session_after_one_turn(store: Store) -> str:
    session_id = insert_session(store)
    store.append_events(
        session_id,
        [
            raw_event("session.status_running", {}),
            *a_turn(100, 20),
            raw_event("session.status_idle", {"stop_reason": {"type": "end_turn"}}),
        ],
    )
    return session_id


def test_a_stale_or_unreadable_state_cache_is_found_and_rebuilt_from_the_events(store: Store, db_path: Path) -> None:
    stale, unreadable, untouched = (an_idle_session_after_one_turn(store) for _ in range(3))
    truths = {session_id: cached_state(db_path, session_id) for session_id in (stale, unreadable, untouched)}
    assert store.stale_state_ids() == []

    corrupt_state_cache(db_path, stale, "running", SessionState(status="running", event_count=1).model_dump_json())
    corrupt_state_cache(db_path, unreadable, "idle", '{"status": "no such status"}')

    assert sorted(store.stale_state_ids()) == sorted([stale, unreadable])
    assert store.get_session(stale).status == "running"  # readers trust the cache: hence the repair
    assert store.rebuild_state(stale) == truths[stale] == fold(store.read_events(stale, 0, ALL_EVENTS))
    assert store.rebuild_state(unreadable) == truths[unreadable]
    assert store.stale_state_ids() == []
    assert store.get_session(stale).status == "idle"
    assert [s.id for s in store.list_sessions(10, None, SessionFilter(status="running"))] == []
    assert cached_state(db_path, untouched) == truths[untouched]


def session_state_line(stdout: str) -> str:
    """Doctor's `session state` line, with the padding that aligns the names squeezed out."""
    line = next(line for line in stdout.splitlines() if "session state" in line)
    return " ".join(line.split())


def test_doctor_reports_a_stale_state_cache_and_doctor_repair_rebuilds_it(
    subprocess_env: dict[str, str], data_dir: Path
) -> None:
    db_path = data_dir / "store.db"
    with closing(Store.open(db_path)) as store:
        session_id = an_idle_session_after_one_turn(store)
    truth = cached_state(db_path, session_id)
    corrupt_state_cache(db_path, session_id, "running", SessionState(status="running").model_dump_json())
    env = {
        **subprocess_env,
        "DOCKER_HOST": "unix:///nonexistent/docker.sock",
        "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring",
    }

    found = run_command(["doctor"], env)
    assert session_state_line(found.stdout).startswith("[FAIL] session state 1 session(s)"), found.stdout
    assert session_id in session_state_line(found.stdout)
    assert "fix: run 'managed-sessions doctor --repair'" in found.stdout
    assert cached_state(db_path, session_id) != truth  # finding it changes nothing

    repaired = run_command(["doctor", "--repair"], env)
    assert session_state_line(repaired.stdout) == (
        f"[ok ] session state rebuilt 1 session(s)' state from the event log: {session_id}"
    ), repaired.stdout
    assert cached_state(db_path, session_id) == truth
    again = run_command(["doctor"], env)
    assert session_state_line(again.stdout) == "[ok ] session state every session's cached state matches its event log"


def test_doctor_reports_a_store_it_cannot_read_instead_of_crashing(db_path: Path) -> None:
    db_path.write_bytes(b"not a database, " * 1000)

    check = check_session_states(ServerConfig(data_dir=db_path.parent), repair=True)

    assert (check.name, check.level) == ("session state", "FAIL")
    assert "store.db" in check.detail
    assert "backup" in check.fix


# Reading the log ------------------------------------------------------------------------------------------


def test_read_events_pages_after_a_seq_and_filters_by_type(store: Store) -> None:
    session_id = insert_session(store)
    types: list[EventType] = [
        "user.message",
        "session.status_running",
        "agent.message",
        "agent.thinking",
        "agent.message",
    ] * 2
    appended = store.append_events(session_id, [raw_event(t, {"n": n}) for n, t in enumerate(types)])

    page = store.read_events(session_id, after_seq=3, limit=4)
    messages = store.read_events(session_id, after_seq=0, limit=100, types=["agent.message"])
    mixed = store.read_events(session_id, after_seq=3, limit=3, types=["agent.message", "user.message"])

    assert [e.seq for e in page] == [4, 5, 6, 7]
    assert page == appended[3:7]
    assert [e.seq for e in messages] == [3, 5, 8, 10]
    assert [e.payload() for e in messages] == [{"n": 2}, {"n": 4}, {"n": 7}, {"n": 9}]
    assert [(e.seq, e.type) for e in mixed] == [(5, "agent.message"), (6, "user.message"), (8, "agent.message")]
    assert store.read_events(session_id, after_seq=10, limit=5) == []
    assert store.read_events(session_id, after_seq=0, limit=100, types=["session.error"]) == []


def test_a_page_cursor_names_an_event_only_in_its_own_session(store: Store) -> None:
    session_id, other_id = insert_session(store), insert_session(store)
    mine = store.append_events(session_id, [message("a"), message("b"), message("c")])
    theirs = store.append_events(other_id, [message("d")])

    page, state = store.read_page(session_id, mine[0].id, limit=10)
    assert [e.seq for e in page] == [2, 3]
    assert state.event_count == 3
    with pytest.raises(NotFoundError, match=theirs[0].id):
        store.read_page(session_id, theirs[0].id, limit=10)
    with pytest.raises(NotFoundError):
        store.read_page(session_id, new_id("sevt"), limit=10)


def test_a_write_the_full_disk_refuses_is_rolled_back_whole_and_says_what_to_do(store: Store, db_path: Path) -> None:
    """SQLite's page limit gives the real SQLITE_FULL that a full disk gives (the tmpfs version is in tests/faults)."""
    session_id = insert_session(store)
    store.append_events(session_id, [message("kept")])
    pages = store._db.execute("pragma page_count").fetchone()[0]
    store._db.execute(f"pragma max_page_count = {pages}")

    big = [message("x" * 20_000) for _ in range(5)]
    with pytest.raises(DataDirUnwritableError) as refused:
        store.append_events(session_id, [message("first of a batch"), *big])
    assert str(db_path.parent) in str(refused.value)
    assert "disk is full" in str(refused.value)
    assert "Free space on that disk" in str(refused.value)
    with pytest.raises(DataDirUnwritableError):
        store.insert_agent(agent_for_test())

    assert [e.payload()["content"] for e in store.read_events(session_id, 0, ALL_EVENTS)] == [
        [{"type": "text", "text": "kept"}]
    ]  # none of the refused batch, not even its small first event
    store._db.execute("pragma max_page_count = 1073741823")
    store.append_events(session_id, [message("after")])
    assert assert_log_is_whole(store, session_id) == [1, 2]


def agent_for_test() -> Agent:
    now = now_rfc3339()
    return Agent(
        id=new_id("agent"),
        version=1,
        name="a" * 50_000,
        model=ModelConfig(id="claude-test-model"),
        tools=FULL_TOOLSET,
        created_at=now,
        updated_at=now,
    )
