"""Many sessions on one machine: server RSS, containers' memory and read latency as the store grows.

One data dir grows through the sizes (default 50, 500 and 5,000 stored sessions). At each size a fresh
`python -m server serve` child is started on it and driven over stdio by the SDK's `Client`, with:

- 50 sessions holding a started container (real Docker, default image): made through the server at the
  first size (where they are every stored session) by a message whose scripted answer is one `bash true`;
  at later sizes the new server re-attaches to them with one more such message each (the previous size's
  loopers get new containers: interrupting a running tool removes its container);
- 10 of them running tool loops for the whole measurement: the scripted model (`tests/model_server.py` in a
  child process, this script with `--serve-model`) answers every turn with `bash sleep 0.2` until it is
  interrupted; each size uses its own 10 sessions, so no loop's history carries over;
- every other stored session filled in this process between sizes through `Store` (`insert_session` and
  `append_events`, the real migrations), each with a realistic log from `_events.py` (a user message, 4 to 12
  tool turns of five events each, the idle at the end: ~45 events).

Measured at each size, in interleaved blocks: `list_sessions` (the first page, and one filtered by
status=running), `get_events` (a page of 50 from a session with a real log) over the stdio connection,
median and p99; the server's RSS (VmRSS of the child, sampled after each round; VmHWM at the end); the
containers' total memory (each one's cgroup usage, and that less inactive file cache: the figure `docker
stats` shows); the server's CPU per loop turn (/proc/<pid>/stat over the measurement). Once the loops are
interrupted, the first `list_sessions` page and `get_events` again ("quiet"), with the server's CPU per call.

Baseline, same run and interleaved: the SDK's floor (`_trivial_server.py`'s constant tool, same client) and
its RSS; the same SQL as each read through bare `sqlite3` on the same file.

Targets (flatness): the largest size's figure within 1.5x of the smallest's, for the medians of both
`list_sessions` calls and of `get_events`, for the server's RSS and for the containers' total memory.

    .venv/bin/python benchmarks/bench_many_sessions.py [--sizes 50,500,5000] [--containers 50] [--loops 10]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import sqlite3
import statistics
import sys
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import docker
from _common import (
    PYTHON,
    REPO_ROOT,
    ModelChild,
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
from mcp import Client, StdioServerParameters

from server.core.common import now_rfc3339
from server.core.config import DEFAULT_IMAGE
from server.core.events import EventBody, raw_event
from server.core.ids import new_id
from server.hands.docker.sandbox import LABEL_STORE
from server.store.sqlite.store import Store

sys.path.insert(0, str(REPO_ROOT / "tests"))

FLAT_RATIO = 1.5
MODEL = "claude-test"
LOOP_CHAIN = 1_000_000  # a loop ends only when interrupted
PAGE_LIMIT = 50
TRIVIAL_SERVER = Path(__file__).resolve().parent / "_trivial_server.py"
CGROUP_ROOT = Path("/sys/fs/cgroup")
WARM_UP_AT_ONCE = 10
WAIT_S = 55.0
PHASE_TIMEOUT_S = 240


# The scripted model, in a child process ------------------------------------------------------------


def script(request: Any) -> Any:
    """`chain=K cmd=C` in the current user message: `bash C` until K tool results follow it, then text."""
    from model_server import reply, tool_use

    done, said = 0, ""
    for message in reversed(request.messages):
        if message.get("role") != "user":
            continue
        content = message.get("content")
        blocks = content if isinstance(content, list) else [{"type": "text", "text": str(content)}]
        # After an interrupt the next message shares a user turn with the cut-off tool's result: its text rules.
        said = " ".join(str(b.get("text", "")) for b in blocks if b.get("type") == "text")
        if said:
            break
        done += 1
    chain = int(m.group(1)) if (m := re.search(r"chain=(\d+)", said)) else 0
    command = m.group(1) if (m := re.search(r"cmd=([^\n]*)", said)) else "true"
    return reply(tool_use("bash", {"command": command.strip()})) if done < chain else reply("done")


def serve_model() -> None:
    """Child mode: serves the script until stdin closes, then prints the violations as one JSON line."""
    from model_server import ModelServer

    with ModelServer() as server:
        server.enqueue(*([script] * 500_000))
        print(server.base_url, flush=True)
        sys.stdin.read()
        violations = server.violations
        server._requests.clear()
    print(json.dumps({"violations": violations[:5], "violation_count": len(violations)}), flush=True)


# Filling the store ----------------------------------------------------------------------------------


def stored_log(rng: random.Random) -> list[EventBody]:
    """One finished run: a user message, 4 to 12 tool turns (five events each), the idle."""
    events = realistic_events(seed=rng.randrange(1 << 30))
    head = [next(events) for _ in range(2 + 5 * rng.randint(4, 12))]
    return [*head, raw_event("session.status_idle", {"stop_reason": {"type": "end_turn"}})]


def fill(db_path: Path, template_id: str, count: int, seed: int) -> dict[str, Any]:
    """Adds `count` idle sessions shaped like the template, each with its own log (the server is down)."""
    rng = random.Random(seed)
    start = now()
    events = 0
    store = Store.open(db_path)
    try:
        template = store.get_session(template_id)
        for index in range(count):
            stamp = now_rfc3339()
            update = {"id": new_id("sesn"), "title": f"stored {seed}-{index}", "created_at": stamp, "updated_at": stamp}
            session = template.model_copy(update=update)
            store.insert_session(session)
            events += len(store.append_events(session.id, stored_log(rng)))
    finally:
        store.close()
    return {"sessions": count, "events": events, "seconds": round(now() - start, 2)}


# Processes, memory ------------------------------------------------------------------------------------


def server_pid(data_dir: Path) -> int:
    """The pid of the `python -m server serve` child serving `data_dir` (found through /proc)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            env = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"serve" in cmdline and f"MANAGED_SESSIONS_DATA_DIR={data_dir}".encode() in env:
            return int(entry.name)
    raise RuntimeError(f"no server process found for {data_dir}")


def trivial_pid() -> int:
    me = str(os.getpid())
    for entry in Path("/proc").iterdir():
        try:
            if not entry.name.isdigit() or str(TRIVIAL_SERVER).encode() not in (entry / "cmdline").read_bytes():
                continue
            status = (entry / "status").read_text()
        except OSError:
            continue
        if re.search(rf"^PPid:\s+{me}$", status, re.M):
            return int(entry.name)
    raise RuntimeError("no trivial server process found")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far (utime and stime of /proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def status_mib(pid: int, field: str) -> float:
    """VmRSS or VmHWM of a process, in MiB."""
    found = re.search(rf"^{field}:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text(), re.M)
    assert found, field
    return round(int(found.group(1)) / 1024, 1)


def container_ids(store_id: str) -> list[str]:
    client = docker.from_env()
    try:
        running = client.containers.list(filters={"label": f"{LABEL_STORE}={store_id}", "status": "running"})
        return [str(c.id) for c in running]
    finally:
        client.close()


def container_memory_bytes(container_id: str) -> tuple[int, int]:
    """One container's memory from its cgroup: usage, and usage less inactive file cache (v1 or v2 layouts)."""
    for group, usage_file, inactive_key in (
        (CGROUP_ROOT / "memory" / "docker" / container_id, "memory.usage_in_bytes", "total_inactive_file"),
        (CGROUP_ROOT / "system.slice" / f"docker-{container_id}.scope", "memory.current", "inactive_file"),
        (CGROUP_ROOT / "docker" / container_id, "memory.current", "inactive_file"),
    ):
        if (group / usage_file).exists():
            used = int((group / usage_file).read_text())
            stat = dict(line.split() for line in (group / "memory.stat").read_text().splitlines())
            return used, max(0, used - int(stat.get(inactive_key, 0)))
    raise RuntimeError(f"no memory cgroup found for container {container_id}")


def containers_memory_mib(ids: list[str]) -> dict[str, float]:
    """Total memory of the containers (the working set is what `docker stats` shows)."""
    usage = working = 0
    for container_id in ids:
        used, work = container_memory_bytes(container_id)
        usage += used
        working += work
    return {"usage_mib": round(usage / 2**20, 1), "working_set_mib": round(working / 2**20, 1)}


def sweep(store_id: str) -> dict[str, int]:
    """Removes every container and volume labelled with this store (also after a failure)."""
    client = docker.from_env()
    label = {"label": f"{LABEL_STORE}={store_id}"}
    try:
        containers = client.containers.list(all=True, filters=label)
        for container in containers:
            container.remove(force=True)
        volumes = client.volumes.list(filters=label)
        for volume in volumes:
            volume.remove(force=True)
    finally:
        client.close()
    return {"containers_removed": len(containers), "volumes_removed": len(volumes)}


# Driving the server -----------------------------------------------------------------------------------


async def call(client: Client, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    result = await client.call_tool(tool, arguments)
    if result.is_error:
        raise RuntimeError(f"{tool}: {result.content}")
    return dict(result.structured_content or {})


async def warm_up(client: Client, session_ids: list[str], chain: int) -> None:
    """`chain` turns of `bash true` in each session (starting or re-attaching its container), a few at once."""
    limiter = anyio.CapacityLimiter(WARM_UP_AT_ONCE)

    async def one(session_id: str) -> None:
        async with limiter:
            out = await call(client, "send_message", {"session_id": session_id, "text": f"chain={chain} cmd=true"})
            if out["status"] != "idle":
                out = await call(client, "send_message", {"session_id": session_id, "text": "chain=0"})
        if out["status"] != "idle":
            raise RuntimeError(f"session {session_id}: {out['status']} after its warm-up")

    async with anyio.create_task_group() as tg:
        for session_id in session_ids:
            tg.start_soon(one, session_id)


async def wait_status(client: Client, session_ids: list[str], wanted: str, timeout_s: float) -> None:
    deadline = now() + timeout_s
    pending = list(session_ids)
    while pending:
        pending = [s for s in pending if (await call(client, "get_session", {"session_id": s}))["status"] != wanted]
        if pending and now() > deadline:
            raise RuntimeError(f"{len(pending)} session(s) not {wanted} after {timeout_s} s")
        await anyio.sleep(0.1)


def tool_results(db_path: Path, session_ids: list[str]) -> int:
    """How many tool turns the sessions have logged (read from the store, read-only)."""
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, isolation_level=None)
    try:
        marks = ",".join("?" * len(session_ids))
        sql = f"select count(*) from events where type = 'agent.tool_result' and session_id in ({marks})"
        return int(db.execute(sql, session_ids).fetchone()[0])
    finally:
        db.close()


async def timed(client: Client, tool: str, arguments: dict[str, Any], count: int) -> list[float]:
    samples = []
    for _ in range(count):
        start = now()
        result = await client.call_tool(tool, arguments)
        samples.append(now() - start)
        if result.is_error:
            raise RuntimeError(f"{tool}: {result.content}")
    return samples


def bare_reads(db: sqlite3.Connection, reference: str, after_seq: int, count: int) -> dict[str, list[float]]:
    """The reads' SQL alone (as `Store.list_sessions` and `Store.read_page` run it), through bare sqlite3."""
    queries = {
        "list_sessions": (
            "select body, updated_at, archived_at, state from sessions where (0 or archived_at is null)"
            " order by session_id desc limit ?",
            (21,),
        ),
        "list_sessions_running": (
            "select body, updated_at, archived_at, state from sessions where (0 or archived_at is null)"
            " and status in (?) order by session_id desc limit ?",
            ("running", 21),
        ),
        "get_events": (
            "select seq, event_id, type, processed_at, payload from events"
            " where session_id = ? and seq > ? order by seq limit ?",
            (reference, after_seq, PAGE_LIMIT + 1),
        ),
    }
    samples: dict[str, list[float]] = {name: [] for name in queries}
    for name, (sql, params) in queries.items():
        for _ in range(count):
            start = now()
            db.execute(sql, params).fetchall()
            samples[name].append(now() - start)
    return samples


class Phase:
    """One size: a fresh server on the grown store, loops started, interleaved reads, loops stopped."""

    def __init__(self, args: argparse.Namespace, data_dir: Path, model_url: str) -> None:
        self.args = args
        self.data_dir = data_dir
        self.model_url = model_url

    def server_params(self) -> StdioServerParameters:
        env = child_env(self.data_dir) | {
            "ANTHROPIC_BASE_URL": self.model_url,
            "ANTHROPIC_API_KEY": "test-key",
            "MANAGED_SESSIONS_MODEL": MODEL,
            "MANAGED_SESSIONS_IMAGE": self.args.image,
        }
        return StdioServerParameters(command=PYTHON, args=["-m", "server", "serve"], env=env, cwd=REPO_ROOT)

    async def setup(self) -> tuple[list[str], float]:
        """Makes the sessions that hold containers and starts them; the last one's log gets 20 tool turns (the
        `get_events` page is read from it). Returns their ids and the seconds it took."""
        start = now()
        async with Client(self.server_params()) as server:
            containers = [
                (await call(server, "create_session", {"title": f"bench {number}"}))["id"]
                for number in range(self.args.containers)
            ]
            await warm_up(server, containers[-1:], 20)
            await warm_up(server, containers[:-1], 1)
        return containers, now() - start

    async def run(self, index: int, containers: list[str], store_id: str) -> dict[str, Any]:
        floor_params = StdioServerParameters(command=PYTHON, args=[str(TRIVIAL_SERVER)], env=child_env(), cwd=REPO_ROOT)
        async with AsyncExitStack() as stack:
            server = await stack.enter_async_context(Client(self.server_params()))
            floor = await stack.enter_async_context(Client(floor_params))
            start = now()
            await warm_up(server, containers, 1)
            warm_s = now() - start
            log(f"many_sessions: {len(containers)} sandboxes re-attached in {warm_s:.1f} s")
            reads = await Reads.prepare(self.args, server, floor, self.data_dir, containers[-1])
            loopers = [containers[(index * self.args.loops + k) % len(containers)] for k in range(self.args.loops)]
            loop_text = f"chain={LOOP_CHAIN} cmd={self.args.loop_command}"
            for session_id in loopers:
                await call(server, "send_message", {"session_id": session_id, "text": loop_text, "wait_seconds": 0})
            await wait_status(server, loopers, "running", 30)
            await anyio.sleep(1.0)  # the loops into their stride
            try:
                figures = await self.loaded(server, reads, loopers, store_id)
            finally:
                with anyio.CancelScope(shield=True):
                    for session_id in loopers:
                        await call(server, "interrupt_session", {"session_id": session_id})
                    await wait_status(server, loopers, "idle", 60)
            quiet = await reads.rounds(max(1, self.args.rounds // 2), ("list_sessions", "get_events", "sdk_floor"))
            figures["quiet"] = {
                "reads": {name: latency_ms(quiet.samples[name]) for name in ("list_sessions", "get_events")},
                "sdk_floor": latency_ms(quiet.samples["sdk_floor"]),
                "server_cpu_percent": quiet.cpu_percent,
                "server_cpu_ms_per_call": {
                    name: quiet.cpu_ms_per_call(name) for name in ("list_sessions", "get_events")
                },
            }
            figures["warm_up_s"] = round(warm_s, 2)
            return figures

    async def loaded(self, server: Client, reads: Reads, loopers: list[str], store_id: str) -> dict[str, Any]:
        """The reads while the loops run, with the server's RSS and the containers' memory after each round."""
        ids = await anyio.to_thread.run_sync(container_ids, store_id)
        turns_before = tool_results(reads.db_path, loopers)
        measured = await reads.rounds(self.args.rounds, tuple(reads.plan), ids)
        turns = tool_results(reads.db_path, loopers) - turns_before
        running = await call(server, "list_sessions", {"status": "running", "limit": 100})
        return {
            "reads": {name: latency_ms(measured.samples[name]) for name in reads.plan if name != "sdk_floor"},
            "response_bytes": await reads.response_bytes(),
            "server_rss_mib": {
                "median": statistics.median(measured.rss),
                "max": max(measured.rss),
                "hwm": status_mib(reads.pid, "VmHWM"),
            },
            "server_cpu_percent": measured.cpu_percent,
            "containers": {
                "running": len(ids),
                "usage_mib": statistics.median(m["usage_mib"] for m in measured.memory),
                "working_set_mib": statistics.median(m["working_set_mib"] for m in measured.memory),
            },
            "loops": {
                "sessions": len(loopers),
                "running_at_end": len(running["sessions"]),
                "tool_turns_during_measurement": turns,
                "tool_turns_per_s_est": round(turns / measured.seconds, 1),
                "server_cpu_ms_per_turn_est": round(measured.cpu_s / turns * 1e3, 2) if turns else None,
            },
            "measurement_s": round(measured.seconds, 2),
            "baseline": {
                "sdk_floor": latency_ms(measured.samples["sdk_floor"]),
                "sdk_floor_rss_mib": status_mib(reads.floor_pid, "VmRSS"),
                "bare_sqlite": {name: latency_ms(values) for name, values in measured.bare.items()},
            },
        }


@dataclass
class Measured:
    samples: dict[str, list[float]]
    bare: dict[str, list[float]]
    rss: list[float]
    memory: list[dict[str, float]]
    seconds: float
    cpu_s: float
    cpu_by_read: dict[str, float] = field(default_factory=dict)
    """The server's CPU seconds during each read's blocks (with loops running, theirs too)."""

    def cpu_ms_per_call(self, name: str) -> float:
        return round(self.cpu_by_read[name] / len(self.samples[name]) * 1e3, 3)

    @property
    def cpu_percent(self) -> float:
        return round(self.cpu_s / self.seconds * 100, 1)


@dataclass
class Reads:
    """The timed reads of one size, each with its client and arguments, and the processes behind them."""

    args: argparse.Namespace
    plan: dict[str, tuple[Client, str, dict[str, Any]]]
    pid: int
    floor_pid: int
    db_path: Path
    reference: str
    after_seq: int

    @classmethod
    async def prepare(
        cls, args: argparse.Namespace, server: Client, floor: Client, data_dir: Path, reference: str
    ) -> Reads:
        after = (await call(server, "get_events", {"session_id": reference, "limit": 5}))["events"][-1]
        plan = {
            "list_sessions": (server, "list_sessions", {}),
            "list_sessions_running": (server, "list_sessions", {"status": "running"}),
            "get_events": (server, "get_events", {"session_id": reference, "after": after["id"], "limit": PAGE_LIMIT}),
            "sdk_floor": (floor, "constant", {"session_id": reference}),
        }
        for client, tool, arguments in plan.values():
            await timed(client, tool, arguments, args.warmup)
        db_path = data_dir / "store.db"
        return cls(args, plan, server_pid(data_dir), trivial_pid(), db_path, reference, after["seq"])

    async def rounds(self, count: int, names: tuple[str, ...], container_ids: list[str] | None = None) -> Measured:
        """`count` rounds of a block of each read in turn (and of the bare SQL), sampling memory after each."""
        measured = Measured({name: [] for name in names}, {}, [], [], 0.0, 0.0)
        db = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, isolation_level=None)
        cpu_before, start = cpu_seconds(self.pid), now()
        try:
            for _ in range(count):
                for name in names:
                    client, tool, arguments = self.plan[name]
                    before = cpu_seconds(self.pid)
                    measured.samples[name] += await timed(client, tool, arguments, self.args.block)
                    measured.cpu_by_read[name] = measured.cpu_by_read.get(name, 0.0) + cpu_seconds(self.pid) - before
                for name, values in bare_reads(db, self.reference, self.after_seq, self.args.block).items():
                    measured.bare.setdefault(name, []).extend(values)
                measured.rss.append(status_mib(self.pid, "VmRSS"))
                if container_ids is not None:
                    measured.memory.append(containers_memory_mib(container_ids))
        finally:
            db.close()
        measured.seconds, measured.cpu_s = now() - start, cpu_seconds(self.pid) - cpu_before
        return measured

    async def response_bytes(self) -> dict[str, int]:
        sizes = {}
        for name, (client, tool, arguments) in self.plan.items():
            if name != "sdk_floor":
                sizes[name] = len(json.dumps(await call(client, tool, arguments)))
        return sizes


# The run --------------------------------------------------------------------------------------------------


def store_id_of(db_path: Path) -> str:
    store = Store.open(db_path)
    try:
        return store.store_id
    finally:
        store.close()


async def sizes_run(args: argparse.Namespace, data_dir: Path, model_url: str, store_id: str) -> dict[str, Any]:
    """The containers' sessions first, then each size in turn, the store filled up to it in between."""
    phase = Phase(args, data_dir, model_url)
    with anyio.fail_after(PHASE_TIMEOUT_S):
        containers, setup_s = await phase.setup()
    log(f"many_sessions: {len(containers)} sessions with a started container in {setup_s:.1f} s")
    stored = len(containers)
    results: dict[str, Any] = {"setup_s": round(setup_s, 2), "by_size": {}}
    for index, size in enumerate(args.sizes):
        filled = None
        if size > stored:
            filled = await anyio.to_thread.run_sync(fill, data_dir / "store.db", containers[0], size - stored, index)
            log(
                f"many_sessions: filled {filled['sessions']} sessions, {filled['events']} events, {filled['seconds']} s"
            )
            stored = size
        log(f"many_sessions: measuring at {size} stored sessions")
        with anyio.fail_after(PHASE_TIMEOUT_S):
            figures = await phase.run(index, containers, store_id)
        results["by_size"][str(size)] = figures | {"filled": filled}
    return results


def flat(results: dict[str, Any], sizes: list[int]) -> dict[str, Any]:
    """Each figure at the largest size over the same at the smallest (what the targets bound)."""
    small, large = results["by_size"][str(sizes[0])], results["by_size"][str(sizes[-1])]
    ratios = {
        f"{name}_median": ratio(large["reads"][name]["median_ms"], small["reads"][name]["median_ms"])
        for name in ("list_sessions", "list_sessions_running", "get_events")
    }
    ratios["server_rss"] = ratio(large["server_rss_mib"]["median"], small["server_rss_mib"]["median"])
    ratios["containers_working_set"] = ratio(
        large["containers"]["working_set_mib"], small["containers"]["working_set_mib"]
    )
    for name in ("list_sessions", "get_events"):
        ratios[f"{name}_quiet_median"] = ratio(
            large["quiet"]["reads"][name]["median_ms"], small["quiet"]["reads"][name]["median_ms"]
        )
        ratios[f"{name}_quiet_server_cpu_per_call"] = ratio(
            large["quiet"]["server_cpu_ms_per_call"][name], small["quiet"]["server_cpu_ms_per_call"][name]
        )
    ratios["server_cpu_ms_per_loop_turn"] = ratio(
        large["loops"]["server_cpu_ms_per_turn_est"] or 0, small["loops"]["server_cpu_ms_per_turn_est"] or 0
    )
    ratios["sdk_floor_median"] = ratio(
        large["baseline"]["sdk_floor"]["median_ms"], small["baseline"]["sdk_floor"]["median_ms"]
    )
    return ratios


def table(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per size: the figures of issue 14, item 6."""
    rows = []
    for size, figures in results["by_size"].items():
        reads, quiet = figures["reads"], figures["quiet"]["reads"]
        rows.append(
            {
                "stored_sessions": int(size),
                "server_rss_mib": figures["server_rss_mib"]["median"],
                "containers_running": figures["containers"]["running"],
                "containers_working_set_mib": figures["containers"]["working_set_mib"],
                "loops_running": figures["loops"]["running_at_end"],
                "loop_turns_per_s": figures["loops"]["tool_turns_per_s_est"],
                "server_cpu_percent": figures["server_cpu_percent"],
                "server_cpu_ms_per_loop_turn": figures["loops"]["server_cpu_ms_per_turn_est"],
                **{f"{name}_median_ms": reads[name]["median_ms"] for name in reads},
                **{f"{name}_p99_ms": reads[name]["p99_ms"] for name in reads},
                "sdk_floor_median_ms": figures["baseline"]["sdk_floor"]["median_ms"],
                **{f"{name}_quiet_median_ms": figures["quiet"]["reads"][name]["median_ms"] for name in quiet},
                "sdk_floor_quiet_median_ms": figures["quiet"]["sdk_floor"]["median_ms"],
                **{
                    f"{name}_quiet_server_cpu_ms": cpu
                    for name, cpu in figures["quiet"]["server_cpu_ms_per_call"].items()
                },
            }
        )
    return rows


def report(args: argparse.Namespace, results: dict[str, Any], model: dict[str, Any], cleanup: dict[str, int]) -> dict:
    sizes = args.sizes
    growth = flat(results, sizes)
    targets = [
        check(f"{name}.{sizes[-1]}_over_{sizes[0]}", "<=", FLAT_RATIO, "ratio", growth[name])
        for name in (
            "list_sessions_median",
            "list_sessions_running_median",
            "get_events_median",
            "server_rss",
            "containers_working_set",
        )
    ]
    largest = results["by_size"][str(sizes[-1])]
    return {
        "benchmark": "many_sessions",
        "targets": targets,
        "meets_target": all(t["meets"] for t in targets),
        "table": table(results),
        "by_size": results["by_size"],
        "setup_s": results["setup_s"],
        "baseline": {size: figures["baseline"] for size, figures in results["by_size"].items()},
        "ratios": {
            "largest_over_smallest": growth,
            "largest_over_sdk_floor": {
                name: ratio(largest["reads"][name]["median_ms"], largest["baseline"]["sdk_floor"]["median_ms"])
                for name in largest["reads"]
            },
            "largest_server_rss_over_sdk_floor_rss": ratio(
                largest["server_rss_mib"]["median"], largest["baseline"]["sdk_floor_rss_mib"]
            ),
        },
        "model_server": model,
        "cleanup": cleanup,
        "params": {
            "sizes": sizes,
            "containers": args.containers,
            "loops": args.loops,
            "loop_command": args.loop_command,
            "rounds": args.rounds,
            "block": args.block,
            "warmup": args.warmup,
            "page_limit": PAGE_LIMIT,
            "image": args.image,
            "model_server": "tests/model_server.py in a child process, answering at once (streamed)",
        },
        "env": environment() | {"docker": docker.from_env().version().get("Version")},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="50,500,5000", help="stored sessions at each measurement, ascending")
    parser.add_argument("--containers", type=int, default=50, help="sessions holding a started container")
    parser.add_argument("--loops", type=int, default=10, help="of those, sessions running a tool loop")
    parser.add_argument("--loop-command", default="sleep 0.2", help="the loops' bash command")
    parser.add_argument("--rounds", type=int, default=15, help="interleaved rounds of reads per size")
    parser.add_argument("--block", type=int, default=20, help="calls of each read per round")
    parser.add_argument("--warmup", type=int, default=20, help="untimed calls of each read per size")
    parser.add_argument("--image", default=DEFAULT_IMAGE, help="the sessions' base image")
    parser.add_argument("--serve-model", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_model:
        serve_model()
        return
    args.sizes = sorted({int(part) for part in args.sizes.split(",") if part.strip()})
    if not args.sizes or args.sizes[0] < args.containers or args.loops > args.containers:
        parser.error("--sizes must start at --containers or above, and --loops may not exceed --containers")
    docker.from_env().images.get(args.image)  # fails early if the image is missing
    model = ModelChild(__file__, "--serve-model")
    try:
        with temp_dir("many-sessions") as scratch:
            data_dir = scratch / "data"
            store_id = store_id_of(data_dir / "store.db")
            try:
                results = anyio.run(sizes_run, args, data_dir, model.base_url, store_id)
            finally:
                cleanup = sweep(store_id)
                log(f"many_sessions: cleanup {cleanup}")
    finally:
        model_result = model.close()
    emit(report(args, results, model_result, cleanup))


if __name__ == "__main__":
    main()
