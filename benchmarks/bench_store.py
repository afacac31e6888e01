"""The event log: reading a page of 100 from a 100,000-event session, and appends per second.

(a) Reads. One session is filled with 100,000 realistic events (`_events.py`, appended in batches),
then pages of 100 are read after random cursors, the same cursors for every path:
  - `store`:      `Store.read_events` (SQL, JSON and pydantic per event),
  - `manager`:    `SessionManager.events` (async: thread hops, cursor lookup, session read, cut),
  - `tool`:       the `get_events` tool through the in-memory `Client(build_server(runtime))`,
  - `tool_stdio`: the same tool over a real stdio connection (`python -m server serve` child).
Baseline: the same `select ... limit 100` through a bare `sqlite3` connection.
Target: a page of 100 in <= 5 ms through the `get_events` tool (in-memory client).

(b) Appends, one event per `append_events` call (each its own transaction): one session through
`Store.append_events` and through `SessionManager.append`; ten sessions at once as ten anyio tasks
through `SessionManager.append`, and as ten threads through `Store.append_events`.
Baseline: a bare `sqlite3` connection inserting one event row per transaction (same schema, WAL,
`synchronous=normal`); also the store's whole transaction (read state, insert, update) in bare SQL.
Target: >= 5,000 appends/s in every scenario.

    .venv/bin/python benchmarks/bench_store.py [--events 100000] [--reads 500] [--appends 5000]
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import threading
from collections.abc import Awaitable, Callable
from itertools import islice
from pathlib import Path
from typing import Any

import anyio
from _common import (
    PYTHON,
    REPO_ROOT,
    SQLITE_PRAGMAS,
    check,
    child_env,
    emit,
    environment,
    latency_ms,
    log,
    now,
    ratio,
    temp_dir,
)
from _events import realistic_events
from anyio.abc import TaskGroup
from mcp import Client, StdioServerParameters

from server.core.common import now_rfc3339
from server.core.config import ServerConfig
from server.core.events import EventBody, stored_fields
from server.core.log import configure_logging
from server.core.redaction import REDACTOR
from server.core.state import SessionState
from server.egress.web_fetch import FetchPolicy
from server.fronts.mcp.server import build_server
from server.hands.docker.pool import SandboxPool
from server.hands.docker.sandbox import SandboxSettings
from server.services.resources import SessionRepositories
from server.services.runtime import open_runtime
from server.services.sessions import NewSession, SessionManager
from server.store.sqlite.store import Store
from vault.vaults import Vaults

READ_TARGET_MS = 5.0
APPEND_TARGET_PER_S = 5_000.0
PAGE = 100
FILL_BATCH = 1_000
READ_BLOCK = 25
VALIDATIONS = 100
ROUNDS = 2  # append scenarios run interleaved, in this many rounds
THREADS = 10
# The scenarios; `manager_one_session` and `raw_store_sql` are reported beside them for the breakdown.
TARGET_APPEND_SCENARIOS = ("store_one_session", "manager_ten_sessions", "store_ten_threads")
PAGE_SQL = (
    "select seq, event_id, type, processed_at, payload from events"
    " where session_id = ? and seq > ? order by seq limit ?"
)


def raw_connection(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    for pragma in SQLITE_PRAGMAS:
        db.execute(pragma)
    return db


def open_services(data_dir: Path, task_group: TaskGroup) -> tuple[ServerConfig, Store, SessionManager]:
    """The store and the session manager as the server wires them (no sandbox or vault is used here)."""
    config = ServerConfig(data_dir=data_dir, model="claude-bench-model", image="managed-sessions-sandbox:bench")
    store = Store.open(config.database_path)
    vaults = Vaults(config.vault_index_path, redactor=REDACTOR)
    settings = SandboxSettings(store_id=store.store_id)
    sandboxes = SandboxPool(settings, config.image, FetchPolicy(), task_group)
    repositories = SessionRepositories(data_dir, vaults, sandboxes, REDACTOR)
    manager = SessionManager(
        store,
        data_dir,
        default_model=config.model,
        default_image=config.image,
        sandboxes=sandboxes,
        vaults=vaults,
        repositories=repositories,
    )
    return config, store, manager


# (a) Reads ------------------------------------------------------------------------------------------


async def fill(store: Store, manager: SessionManager, count: int) -> tuple[str, float]:
    session = await manager.create(NewSession(title=f"{count} events"))
    stream = realistic_events()
    start = now()
    for done in range(0, count, FILL_BATCH):
        store.append_events(session.id, list(islice(stream, min(FILL_BATCH, count - done))))
        if (done // FILL_BATCH) % 20 == 19:
            log(f"store: filled {done + FILL_BATCH:,} events")
    return session.id, now() - start


ReadPath = Callable[[int], Awaitable[int]]


async def read_paths(
    config: ServerConfig, store: Store, manager: SessionManager, session_id: str, reads: int
) -> dict[str, Any]:
    """Times every path on the same cursors; returns samples and page sizes."""
    raw = raw_connection(config.database_path)
    event_ids = dict(raw.execute("select seq, event_id from events where session_id = ?", (session_id,)))
    stdio = StdioServerParameters(
        command=PYTHON, args=["-m", "server", "serve"], env=child_env(config.data_dir), cwd=REPO_ROOT
    )
    async with open_runtime(config) as runtime, Client(build_server(runtime)) as client, Client(stdio) as stdio_client:

        async def tool_call(target: Client, seq: int) -> int:
            arguments = {"session_id": session_id, "after": event_ids[seq], "limit": PAGE}
            result = await target.call_tool("get_events", arguments)
            if result.is_error:
                raise RuntimeError(f"get_events failed: {result.content}")
            events = result.structured_content["events"]  # type: ignore[index]
            assert events[0]["seq"] == seq + 1
            return len(events)

        async def raw_read(seq: int) -> int:
            return len(raw.execute(PAGE_SQL, (session_id, seq, PAGE)).fetchall())

        async def store_read(seq: int) -> int:
            return len(store.read_events(session_id, seq, PAGE))

        async def manager_read(seq: int) -> int:
            return len((await manager.events(session_id, event_ids[seq], PAGE, None, 0)).events)

        paths: dict[str, ReadPath] = {
            "baseline_raw_sqlite": raw_read,
            "store": store_read,
            "manager": manager_read,
            "tool": lambda seq: tool_call(client, seq),
            "tool_stdio": lambda seq: tool_call(stdio_client, seq),
        }
        sizes = await page_sizes(client, session_id, event_ids[1])
        samples = await timed_reads(paths, len(event_ids), reads)
        samples["tool_client_output_validation"] = await client_validation(client, session_id, event_ids)
    raw.close()
    return {"samples": samples, "sizes": sizes}


async def client_validation(client: Client, session_id: str, event_ids: dict[int, str]) -> list[float]:
    """The client-side part of the `tool` path: `ClientSession.call_tool` checks every result against
    the tool's output schema (jsonschema); timed alone here, on pages after random cursors."""
    rng, samples = random.Random(13), []
    for _ in range(VALIDATIONS):
        after = event_ids[rng.randint(1, len(event_ids) - PAGE)]
        result = await client.call_tool("get_events", {"session_id": session_id, "after": after, "limit": PAGE})
        start = now()
        await client.session.validate_tool_result("get_events", result)
        samples.append(now() - start)
    return samples


async def page_sizes(client: Client, session_id: str, after: str) -> dict[str, int]:
    result = await client.call_tool("get_events", {"session_id": session_id, "after": after, "limit": PAGE})
    return {
        "structured_content_bytes": len(json.dumps(result.structured_content)),
        "text_content_bytes": len(result.content[0].text),  # type: ignore[union-attr]
    }


async def timed_reads(paths: dict[str, ReadPath], events: int, reads: int) -> dict[str, list[float]]:
    rng = random.Random(11)
    cursors = [rng.randint(1, events - PAGE) for _ in range(reads)]
    for read in paths.values():  # warm-up: caches, lazy imports, compiled validators
        for seq in cursors[:20]:
            await read(seq)
    samples: dict[str, list[float]] = {name: [] for name in paths}
    for block in range(0, reads, READ_BLOCK):
        for name, read in paths.items():
            for seq in cursors[block : block + READ_BLOCK]:
                start = now()
                got = await read(seq)
                samples[name].append(now() - start)
                assert got == PAGE, (name, seq, got)
        if (block // READ_BLOCK) % 4 == 3:
            log(f"store: reads {block + READ_BLOCK}/{reads}")
    return samples


# (b) Appends ----------------------------------------------------------------------------------------


def one_by_one(store: Store, session_id: str, events: list[EventBody]) -> None:
    for event in events:
        store.append_events(session_id, [event])


async def manager_one_by_one(manager: SessionManager, session_id: str, events: list[EventBody]) -> None:
    for event in events:
        await manager.append(session_id, [event])


async def manager_concurrent(manager: SessionManager, session_ids: list[str], events: list[EventBody]) -> None:
    async with anyio.create_task_group() as tg:
        for index, session_id in enumerate(session_ids):
            tg.start_soon(manager_one_by_one, manager, session_id, events[index :: len(session_ids)])


def store_threads(store: Store, session_ids: list[str], events: list[EventBody]) -> None:
    barrier, errors = threading.Barrier(len(session_ids)), []

    def work(session_id: str, mine: list[EventBody]) -> None:
        barrier.wait()
        try:
            one_by_one(store, session_id, mine)
        except Exception as exc:  # noqa: BLE001 - re-raised in the main thread below
            errors.append(exc)

    threads = [
        threading.Thread(target=work, args=(session_id, events[index :: len(session_ids)]))
        for index, session_id in enumerate(session_ids)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


class RawLog:
    """The baselines: bare sqlite3 on a database with the store's schema and settings."""

    def __init__(self, path: Path) -> None:
        Store.open(path).close()  # same schema (migrations), same WAL file mode
        self.db = raw_connection(path)
        self.rows_made, self.insert_seq, self.elapsed = 0, 0, 0.0
        state, at = SessionState().model_dump_json(), now_rfc3339()
        self.db.execute(
            "insert into sessions values ('sesn_raw', null, null, null, '{}', ?, ?, null, 'idle', ?, 0)",
            (at, at, state),
        )

    def rows(self, events: list[EventBody]) -> list[tuple[str, str, str, str]]:
        """Everything a row needs, serialised before the clock starts."""
        at, first = now_rfc3339(), self.rows_made
        self.rows_made += len(events)
        return [(f"sevt_raw{first + i:021d}", e.type, at, json.dumps(stored_fields(e))) for i, e in enumerate(events)]

    def insert_per_transaction(self, events: list[EventBody]) -> None:
        """One `insert` per transaction (into a session with no row: nothing else to update)."""
        rows, db = self.rows(events), self.db
        start = now()
        for event_id, event_type, at, payload in rows:
            self.insert_seq += 1
            db.execute("begin immediate")
            db.execute(
                "insert into events values ('sesn_rawinsert', ?, ?, ?, ?, ?)",
                (self.insert_seq, event_id, event_type, at, payload),
            )
            db.execute("commit")
        self.elapsed = now() - start

    def store_sql_per_transaction(self, events: list[EventBody]) -> None:
        """The statements `Store.append_events` runs, without the Python around them."""
        rows, db = self.rows(events), self.db
        state = SessionState().model_dump_json()
        start = now()
        for event_id, event_type, at, payload in rows:
            db.execute("begin immediate")
            seq = db.execute("select last_seq, state from sessions where session_id = 'sesn_raw'").fetchone()[0] + 1
            db.execute(
                "insert into events values ('sesn_raw', ?, ?, ?, ?, ?)", (seq, event_id, event_type, at, payload)
            )
            db.execute(
                "update sessions set last_seq = ?, status = ?, state = ?, updated_at = coalesce(?, updated_at)"
                " where session_id = 'sesn_raw'",
                (seq, "running", state, at),
            )
            db.execute("commit")
        self.elapsed = now() - start


async def appends(scratch: Path, total: int, task_group: TaskGroup) -> dict[str, dict[str, float]]:
    _, store, manager = open_services(scratch / "appends", task_group)
    raw = RawLog(scratch / "baseline" / "store.db")
    ids = [(await manager.create(NewSession(title=f"appends {i}"))).id for i in range(2 + 2 * THREADS)]
    one, via_manager = ids[0], ids[1]
    ten_tasks, ten_threads = ids[2 : 2 + THREADS], ids[2 + THREADS :]
    stream = realistic_events(seed=3)
    totals: dict[str, list[float]] = {}

    async def timed(name: str, run: Callable[[list[EventBody]], Awaitable[float | None]], count: int) -> None:
        events = list(islice(stream, count))
        start = now()
        reported = await run(events)
        elapsed = reported if reported is not None else now() - start
        done, seconds = totals.get(name, [0.0, 0.0])
        totals[name] = [done + count, seconds + elapsed]

    async def sync(fn: Callable[[list[EventBody]], None], events: list[EventBody]) -> None:
        fn(events)

    async def raw_run(fn: Callable[[list[EventBody]], None], events: list[EventBody]) -> float:
        fn(events)
        return raw.elapsed  # excludes serialising the rows

    per_round = total // ROUNDS
    for round_ in range(ROUNDS):
        await timed("baseline_raw_insert", lambda e: raw_run(raw.insert_per_transaction, e), per_round)
        await timed("raw_store_sql", lambda e: raw_run(raw.store_sql_per_transaction, e), per_round)
        await timed("store_one_session", lambda e: sync(lambda x: one_by_one(store, one, x), e), per_round)
        await timed("manager_one_session", lambda e: manager_one_by_one(manager, via_manager, e), per_round)
        await timed("manager_ten_sessions", lambda e: manager_concurrent(manager, ten_tasks, e), per_round)
        await timed("store_ten_threads", lambda e: sync(lambda x: store_threads(store, ten_threads, x), e), per_round)
        log(f"store: append round {round_ + 1}/{ROUNDS} done")
    counts = {session_id: store.last_seq(session_id) for session_id in ids}
    assert sum(counts.values()) == 4 * per_round * ROUNDS, counts
    store.close()
    raw.db.close()
    return {
        name: {"appends": int(n), "seconds": round(s, 4), "per_s": round(n / s, 1)} for name, (n, s) in totals.items()
    }


# Report ---------------------------------------------------------------------------------------------


def report(
    args: argparse.Namespace, fill_s: float, read: dict[str, Any], append: dict[str, dict[str, float]]
) -> dict[str, Any]:
    pages = {name: latency_ms(samples) for name, samples in read["samples"].items()}
    floor = pages.pop("baseline_raw_sqlite")
    validation = pages.pop("tool_client_output_validation")
    pages["tool"] |= {
        "client_output_validation_median_ms": validation["median_ms"],
        "without_client_validation_median_ms_est": round(pages["tool"]["median_ms"] - validation["median_ms"], 4),
    }
    append_floor = append.pop("baseline_raw_insert")
    targets = [check("read_page_100.tool.median_ms", "<=", READ_TARGET_MS, "ms", pages["tool"]["median_ms"])]
    targets += [
        check(f"appends.{name}.per_s", ">=", APPEND_TARGET_PER_S, "appends/s", append[name]["per_s"])
        for name in TARGET_APPEND_SCENARIOS
    ]
    return {
        "benchmark": "store",
        "targets": targets,
        "meets_target": all(t["meets"] for t in targets),
        "read_page_100": pages | {"page_bytes": read["sizes"]},
        "appends": append,
        "baseline": {
            "read_page_100": {"name": "raw_sqlite_select_limit_100", **floor},
            "appends": {"name": "raw_sqlite_insert_one_row_per_transaction", **append_floor},
        },
        "ratios": {
            **{
                f"read_{name}_median_vs_baseline": ratio(p["median_ms"], floor["median_ms"])
                for name, p in pages.items()
            },
            **{f"append_{name}_vs_baseline": ratio(a["per_s"], append_floor["per_s"]) for name, a in append.items()},
        },
        "fill": {
            "events": args.events,
            "batch": FILL_BATCH,
            "seconds": round(fill_s, 3),
            "per_s": round(args.events / fill_s),
        },
        "params": {"events": args.events, "page": PAGE, "reads": args.reads, "appends": args.appends, "rounds": ROUNDS},
        "env": environment(),
    }


async def measure(args: argparse.Namespace, scratch: Path) -> dict[str, Any]:
    async with anyio.create_task_group() as task_group:
        config, store, manager = open_services(scratch / "reads", task_group)
        session_id, fill_s = await fill(store, manager, args.events)
        read = await read_paths(config, store, manager, session_id, args.reads)
        store.close()
        append = await appends(scratch, args.appends, task_group)
    return report(args, fill_s, read, append)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000, help="events in the session read from")
    parser.add_argument("--reads", type=int, default=500, help="timed page reads per path (a multiple of 25)")
    parser.add_argument("--appends", type=int, default=5_000, help="timed appends per scenario")
    args = parser.parse_args()
    configure_logging("INFO")  # as `serve` does: keeps the SDK's per-request lines off
    with temp_dir("store") as scratch:
        emit(anyio.run(measure, args, scratch))


if __name__ == "__main__":
    main()
