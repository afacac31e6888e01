"""The agent loop with a model that answers at once: overhead per turn, many sessions at once, resume after kill -9.

The model is the scripted Messages API of `tests/model_server.py`, run in a child process (this script with
`--serve-model`), so its CPU and memory are not counted as ours. Its one turn is stateless: the session's
system prompt says `chain=K cmd=C`; while the current user message has fewer than K tool results the model
asks for `bash C`, then it answers with text. Sandboxes are real (default image, one container per session).

(a) Overhead per turn, in process through `runtime.inbox.send_message` (`open_runtime`). A turn is one model
call + one `bash true` + its events. Per round, interleaved: a message with chain=1 (2 model calls, 1 tool),
a message with chain=K, and `SandboxTools.execute("bash", {"command": "true"})` alone on the same session's
sandbox. A turn's time is the marginal cost of a tool turn, (T_K - T_1) / (K - 1), per round; the overhead
is that minus the median tool time of the round. Sessions are renewed every few rounds (history stays short).
Baseline: the tool alone (above) and a bare streamed `AsyncAnthropic.messages` call to the same scripted model.
Target: overhead <= 10 ms per turn (median). The same message over the in-memory MCP client is reported too.

(b) N sessions x M turns at once (one message each, chain=M): all complete; turns/s; this process's CPU
seconds (getrusage) and peak RSS. Baseline: the same N x M `bash true` calls through `SandboxTools.execute`.

(c) Resume after kill -9: a `python -m server serve` child (raw JSON-RPC lines over stdio) gets N sessions
running, each in a `sleep 60` tool call; it is killed with SIGKILL and started again; timed from the spawn
until every session's log has a new event (the store is polled read-only, from the spawn on, beside the
`initialize` handshake). Target <= 3 s.
Baseline: a spawn of the same server on an empty data dir to its `initialize` answer.

    .venv/bin/python benchmarks/bench_agent_loop.py [--rounds 30] [--chain 5] [--sessions 20] [--turns 50]
    .venv/bin/python benchmarks/bench_agent_loop.py --only resume    # (c) alone
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import signal
import sqlite3
import statistics
import sys
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import anthropic
import anyio
import docker
from _common import (
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
    seconds,
    temp_dir,
)

sys.path.insert(0, str(REPO_ROOT / "tests"))

from mcp import Client

from server.core.config import DEFAULT_IMAGE, ServerConfig
from server.core.log import configure_logging
from server.fronts.mcp.server import build_server
from server.hands.docker.sandbox import LABEL_STORE
from server.services.runtime import Runtime, open_runtime
from server.services.sessions import NewSession
from server.store.sqlite.store import Store

OVERHEAD_TARGET_MS = 10.0
RESUME_VS_EMPTY_START = 1.5
"""Issue 14: resume with the running sessions within 1.5x of an empty server's start."""
RESUME_TARGET_S = 3.0
ROUNDS_PER_SESSION = 10
TOOL_CALLS_PER_ROUND = 5
MODEL = "claude-test"
PHASE_TIMEOUT_S = 600


# The scripted model, in a child process ------------------------------------------------------------


def script(request: Any) -> Any:
    from model_server import reply, tool_use

    system = request.system_text
    chain = int(m.group(1)) if (m := re.search(r"chain=(\d+)", system)) else 0
    command = m.group(1) if (m := re.search(r"cmd=(.*)$", system)) else "true"
    done = 0
    for message in reversed(request.messages):
        if message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, list) and any(b.get("type") == "tool_result" for b in content):
            done += 1
        else:
            break
    if done < chain:
        return reply(tool_use("bash", {"command": command}))
    return reply("done")


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


# Shared ---------------------------------------------------------------------------------------------


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_rss_mib() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def sweep(store_id: str) -> dict[str, int]:
    client = docker.from_env()
    label = {"label": f"{LABEL_STORE}={store_id}"}
    containers = client.containers.list(all=True, filters=label)
    for container in containers:
        container.remove(force=True)
    volumes = client.volumes.list(filters=label)
    for volume in volumes:
        volume.remove(force=True)
    client.close()
    return {"leftover_containers_removed": len(containers), "leftover_volumes_removed": len(volumes)}


async def new_session(runtime: Runtime, created: list[str], system: str) -> str:
    session = await runtime.sessions.create(NewSession(title="bench", system=system))
    created.append(session.id)
    return session.id


async def send(runtime: Runtime, session_id: str, text: str, turns: int) -> float:
    before = runtime.store.last_seq(session_id)
    start = now()
    outcome = await runtime.inbox.send_message(session_id, text, 55.0, None)
    elapsed = now() - start
    # The reply carries only the newest events: count from the log itself.
    new_events = runtime.store.read_events(session_id, before, 1_000_000)
    results = sum(1 for e in new_events if e.type == "agent.tool_result")
    if results != turns or outcome.status != "idle":
        raise RuntimeError(f"session {session_id}: {results} tool results (wanted {turns}), status {outcome.status}")
    return elapsed


# (a) Overhead per turn ------------------------------------------------------------------------------


async def per_turn(runtime: Runtime, args: argparse.Namespace, base_url: str, created: list[str]) -> dict[str, Any]:
    samples: dict[str, list[float]] = {"message_chain_1": [], "message_chain_k": [], "tool": [], "bare_model": []}
    turn: list[float] = []
    overhead: list[float] = []
    bare = anthropic.AsyncAnthropic(base_url=base_url, api_key="test-key", max_retries=0)
    one = chained = ""
    tools = None
    for r in range(args.rounds):
        if r % ROUNDS_PER_SESSION == 0:
            for sid in (one, chained):
                if sid:
                    await runtime.sessions.delete(sid)
                    created.remove(sid)
            one = await new_session(runtime, created, "chain=1")
            chained = await new_session(runtime, created, f"chain={args.chain}")
            await send(runtime, one, "warm up", 1)  # the first tool call starts the container: not timed
            await send(runtime, chained, "warm up", args.chain)
            session = await runtime.sessions.get(chained)
            tools = runtime.sandboxes.tools(session.id, session.environment)
        assert tools is not None
        t1 = await send(runtime, one, f"round {r}", 1)
        tk = await send(runtime, chained, f"round {r}", args.chain)
        tool_times = []
        for _ in range(TOOL_CALLS_PER_ROUND):
            start = now()
            result = await tools.execute("bash", {"command": "true"})
            tool_times.append(now() - start)
            assert not result.is_error, result
        start = now()
        async with bare.messages.stream(
            model=MODEL, max_tokens=1024, system="chain=0", messages=[{"role": "user", "content": "hi"}]
        ) as stream:
            await stream.get_final_message()
        samples["bare_model"].append(now() - start)
        samples["message_chain_1"].append(t1)
        samples["message_chain_k"].append(tk)
        samples["tool"].extend(tool_times)
        marginal = (tk - t1) / (args.chain - 1)
        turn.append(marginal)
        overhead.append(marginal - statistics.median(tool_times))
        if r % 10 == 9:
            log(f"agent_loop: round {r + 1}/{args.rounds}: turn {statistics.median(turn) * 1e3:.2f} ms")
    await bare.close()
    return {"samples": samples, "turn": turn, "overhead": overhead}


async def per_turn_mcp(config: ServerConfig, args: argparse.Namespace) -> dict[str, Any]:
    """The chain=1 and chain=K messages through the in-memory MCP client (`send_message`, own data dir)."""
    samples: dict[str, list[float]] = {"message_chain_1": [], "message_chain_k": []}
    rounds = max(1, args.rounds // 2)
    async with open_runtime(config) as runtime, Client(build_server(runtime)) as client:

        async def call(tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
            result = await client.call_tool(tool, arguments)
            if result.is_error:
                raise RuntimeError(f"{tool}: {result.content}")
            return dict(result.structured_content or {})

        ids: list[str] = []
        try:
            for r in range(rounds):
                if r % ROUNDS_PER_SESSION == 0:
                    pair = []
                    for chain in (1, args.chain):
                        sid = (await call("create_session", {"system": f"chain={chain}"}))["id"]
                        ids.append(sid)
                        pair.append(sid)
                        await call("send_message", {"session_id": sid, "text": "warm up", "wait_seconds": 55})
                for key, sid in zip(("message_chain_1", "message_chain_k"), pair, strict=True):
                    start = now()
                    out = await call("send_message", {"session_id": sid, "text": f"r{r}", "wait_seconds": 55})
                    samples[key].append(now() - start)
                    assert out["status"] == "idle", out["status"]
        finally:
            with anyio.CancelScope(shield=True):
                for sid in ids:
                    await call("delete_session", {"session_id": sid})
    turn = (statistics.median(samples["message_chain_k"]) - statistics.median(samples["message_chain_1"])) / (
        args.chain - 1
    )
    return {"samples": samples, "turn_s": turn}


# (b) Many sessions at once --------------------------------------------------------------------------


async def concurrent(runtime: Runtime, args: argparse.Namespace, created: list[str]) -> dict[str, Any]:
    ids = [await new_session(runtime, created, f"chain={args.turns}") for _ in range(args.sessions)]
    # Containers start outside the timing: one warm-up message of one turn each would change the chain, so
    # the sandboxes are started through the tools instead.
    sessions = [await runtime.sessions.get(sid) for sid in ids]
    tools = [runtime.sandboxes.tools(s.id, s.environment) for s in sessions]
    async with anyio.create_task_group() as tg:
        for t in tools:
            tg.start_soon(t.execute, "bash", {"command": "true"})
    times: dict[str, float] = {}
    errors: list[str] = []

    async def one(sid: str) -> None:
        try:
            times[sid] = await send(runtime, sid, "go", args.turns)
        except Exception as exc:  # noqa: BLE001 - counted and reported
            errors.append(f"{sid}: {exc}")

    rss_before = peak_rss_mib()
    cpu_before = cpu_s()
    start = now()
    async with anyio.create_task_group() as tg:
        for sid in ids:
            tg.start_soon(one, sid)
    wall = now() - start
    cpu = cpu_s() - cpu_before
    total_turns = args.sessions * args.turns
    log(f"agent_loop: {args.sessions} x {args.turns} turns in {wall:.2f} s, {len(errors)} errors")

    # Baseline: the same number of tool calls, no loop.
    cpu_before_b = cpu_s()
    start = now()

    async def calls(t: Any) -> None:
        for _ in range(args.turns):
            await t.execute("bash", {"command": "true"})

    async with anyio.create_task_group() as tg:
        for t in tools:
            tg.start_soon(calls, t)
    wall_b = now() - start
    cpu_b = cpu_s() - cpu_before_b
    return {
        "sessions": args.sessions,
        "turns_per_session": args.turns,
        "completed_sessions": len(times),
        "errors": len(errors),
        "error_samples": errors[:3],
        "wall_s": round(wall, 3),
        "turns_per_s": round(total_turns / wall, 1),
        "process_cpu_s": round(cpu, 3),
        "cpu_ms_per_turn": round(cpu / total_turns * 1e3, 3),
        "peak_rss_mib_before": rss_before,
        "peak_rss_mib": peak_rss_mib(),
        "session_wall_s": seconds(list(times.values())) if times else None,
        "baseline_tool_calls": {
            "wall_s": round(wall_b, 3),
            "per_s": round(total_turns / wall_b, 1),
            "process_cpu_s": round(cpu_b, 3),
            "cpu_ms_per_call": round(cpu_b / total_turns * 1e3, 3),
        },
    }


# (c) Resume after kill -9 ---------------------------------------------------------------------------


def server_env(data_dir: Path, base_url: str, image: str) -> dict[str, str]:
    env = {**os.environ, **child_env(data_dir)}
    env.update(
        MANAGED_SESSIONS_WARM_POOL="0",  # children are killed (-9): a temp store's pool container would outlive them
        ANTHROPIC_BASE_URL=base_url,
        ANTHROPIC_API_KEY="test-key",
        MANAGED_SESSIONS_MODEL=MODEL,
        MANAGED_SESSIONS_IMAGE=image,
        PYTHONPATH=os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p),
    )
    return env


def running_since(db: sqlite3.Connection, kill_seqs: dict[str, int]) -> dict[str, str]:
    """Sessions whose log has a `session.status_running` after their seq at the kill: session -> processed_at."""
    # A resumed run may go on without a new `session.status_running` (the status stayed running through the
    # kill), so the first event the new process logs for the session counts.
    out: dict[str, str] = {}
    for sid, seq in kill_seqs.items():
        row = db.execute(
            "select processed_at from events where session_id = ? and seq > ? order by seq limit 1", (sid, seq)
        ).fetchone()
        if row:
            out[sid] = row[0]
    return out


class LogWatch:
    """Polls the store read-only in a thread (one cheap query on the sessions' cached last seq, every 5 ms) until
    every session has an event after its seq at the kill. Started before the spawn, so the figure is not held
    back by the wait for the new server's `initialize` answer."""

    def __init__(self, database: Path, kill_seqs: dict[str, int], deadline_s: float) -> None:
        self._database = database
        self._kill_seqs = kill_seqs
        self._deadline_s = deadline_s
        self.seen: float | None = None
        """perf_counter time when every session had logged a new event."""
        self._thread = threading.Thread(target=self._poll, name="log-watch", daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        db = sqlite3.connect(f"file:{self._database}?mode=ro", uri=True, isolation_level=None)
        deadline = now() + self._deadline_s
        try:
            while now() < deadline:
                rows = db.execute("select session_id, last_seq from sessions").fetchall()
                if sum(seq > self._kill_seqs.get(sid, seq) for sid, seq in rows) == len(self._kill_seqs):
                    self.seen = now()
                    return
                time.sleep(0.005)
        finally:
            db.close()

    def wait(self) -> float | None:
        self._thread.join()
        return self.seen


def resume(args: argparse.Namespace, base_url: str, scratch: Path) -> dict[str, Any]:
    from stdio_child import StdioServer as Server

    data_dir = scratch / "resume"
    env = server_env(data_dir, base_url, args.image)
    # Baseline: the same server on an empty data dir, spawn to `initialize` answered.
    baseline = []
    for i in range(3):
        start = now()
        empty = Server(server_env(scratch / f"empty{i}", base_url, args.image), scratch / f"empty{i}.log")
        baseline.append(empty.initialized - start)
        empty.stop()

    first = Server(env, scratch / "first.log")
    ids = [first.call("create_session", {"system": "chain=1 cmd=sleep 60"})["id"] for _ in range(args.resume_sessions)]
    for sid in ids:
        first.call("send_message", {"session_id": sid, "text": "sleep", "wait_seconds": 0})
    db = sqlite3.connect(f"file:{data_dir / 'store.db'}?mode=ro", uri=True, isolation_level=None)
    deadline = now() + 120
    while True:  # every session inside its `sleep 60` (the tool_use logged; its container up)
        using = {r[0] for r in db.execute("select distinct session_id from events where type = 'agent.tool_use'")}
        if set(ids) <= using or now() > deadline:
            break
        time.sleep(0.05)
    time.sleep(1.0)  # let the sleeps start in their containers
    statuses = [first.call("get_session", {"session_id": sid})["status"] for sid in ids]
    log(f"agent_loop: before kill: {statuses.count('running')}/{len(ids)} running")
    os.kill(first.proc.pid, signal.SIGKILL)
    first.proc.wait(timeout=30)
    kill_seqs = dict(db.execute("select session_id, max(seq) from events group by session_id").fetchall())

    kill_seqs = {sid: kill_seqs[sid] for sid in ids}
    watch = LogWatch(data_dir / "store.db", kill_seqs, deadline_s=60)
    wall0 = time.time()
    spawn = now()
    second = Server(env, scratch / "second.log")
    initialized = second.initialized - spawn
    seen = watch.wait()
    polled = (seen if seen is not None else now()) - spawn
    resumed = running_since(db, kill_seqs)
    logged = [datetime.fromisoformat(at.replace("Z", "+00:00")).timestamp() - wall0 for at in resumed.values()]
    # They go on: each interrupted tool is answered and the model's text ends the turn.
    idle = 0
    for sid in ids:
        page = second.call("get_events", {"session_id": sid, "types": ["session.status_idle"], "wait_seconds": 20})
        idle += any(e["seq"] > kill_seqs[sid] for e in page["events"])
    all_idle = now() - spawn
    for sid in ids:
        second.call("delete_session", {"session_id": sid})
    second.stop()
    first.stop()
    db.close()
    store = Store.open(data_dir / "store.db")
    store_id = store.store_id
    store.close()
    swept = sweep(store_id)
    return {
        "sessions": len(ids),
        "running_before_kill": statuses.count("running"),
        "resumed": len(resumed),
        "idle_after_resume": idle,
        "spawn_to_initialize_s": round(initialized, 4),
        "spawn_to_all_running_polled_s": round(polled, 4),
        "spawn_to_all_running_logged_s": round(max(logged), 4) if logged else None,
        "spawn_to_first_running_logged_s": round(min(logged), 4) if logged else None,
        "spawn_to_all_idle_s": round(all_idle, 4),
        "baseline_empty_spawn_to_initialize": seconds(baseline),
        "cleanup": swept,
    }


# The run --------------------------------------------------------------------------------------------


async def in_process(args: argparse.Namespace, base_url: str, scratch: Path) -> dict[str, Any]:
    config = ServerConfig(data_dir=scratch / "data", image=args.image, model=MODEL, model_key_present=True)
    created: list[str] = []
    async with open_runtime(config) as runtime:
        store_id = runtime.store.store_id
        try:
            with anyio.fail_after(PHASE_TIMEOUT_S):
                turns = await per_turn(runtime, args, base_url, created)
            with anyio.fail_after(PHASE_TIMEOUT_S):
                many = await concurrent(runtime, args, created)
        finally:
            with anyio.CancelScope(shield=True):
                for sid in list(created):
                    try:
                        await runtime.sessions.delete(sid)
                    except Exception as exc:  # noqa: BLE001 - the sweep catches what is left
                        log(f"agent_loop: could not delete {sid}: {exc}")
    cleanup = await anyio.to_thread.run_sync(sweep, store_id)
    mcp_config = ServerConfig(data_dir=scratch / "mcp", image=args.image, model=MODEL, model_key_present=True)
    mcp_store_id = ""
    mcp: dict[str, Any] | None = None
    if not args.skip_mcp:
        with anyio.fail_after(PHASE_TIMEOUT_S):
            mcp = await per_turn_mcp(mcp_config, args)
        store = Store.open(mcp_config.database_path)
        mcp_store_id = store.store_id
        store.close()
        cleanup_mcp = await anyio.to_thread.run_sync(sweep, mcp_store_id)
        cleanup = {k: cleanup[k] + cleanup_mcp[k] for k in cleanup}
    return {"turns": turns, "many": many, "mcp": mcp, "cleanup": cleanup}


def report_resume(args: argparse.Namespace, res: dict[str, Any], model: dict[str, Any]) -> dict:
    """The report of (c) alone (`--only resume`)."""
    resume_s = res["spawn_to_all_running_polled_s"]
    empty_s = res["baseline_empty_spawn_to_initialize"]["median_s"]
    targets = [
        check("resume_all_running_after_kill9", "<=", RESUME_TARGET_S, "s", resume_s),
        check("resume_over_empty_start", "<=", RESUME_VS_EMPTY_START, "x", ratio(resume_s, empty_s)),
    ]
    return {
        "benchmark": "agent_loop",
        "only": "resume",
        "targets": targets,
        "meets_target": all(t["meets"] for t in targets),
        "resume": res,
        "baseline": {"empty_server_spawn_to_initialize": res["baseline_empty_spawn_to_initialize"]},
        "ratios": {"resume_over_empty_start": ratio(resume_s, empty_s)},
        "model_server": model,
        "params": {"resume_sessions": args.resume_sessions, "image": args.image},
        "env": environment() | {"docker": docker.from_env().version().get("Version")},
    }


def report(args: argparse.Namespace, inproc: dict[str, Any], res: dict[str, Any], model: dict[str, Any]) -> dict:
    s = inproc["turns"]["samples"]
    tool_ms = statistics.median(s["tool"]) * 1e3
    model_ms = statistics.median(s["bare_model"]) * 1e3
    overhead_ms = round(statistics.median(inproc["turns"]["overhead"]) * 1e3, 3)
    turn_ms = statistics.median(inproc["turns"]["turn"]) * 1e3
    many = inproc["many"]
    mcp = inproc["mcp"]
    resume_s = res["spawn_to_all_running_polled_s"]
    targets = [
        check("turn_overhead_beyond_tool_median", "<=", OVERHEAD_TARGET_MS, "ms", overhead_ms),
        check("concurrent_sessions_completed", ">=", args.sessions, "sessions", many["completed_sessions"]),
        check("resume_all_running_after_kill9", "<=", RESUME_TARGET_S, "s", resume_s),
        check(
            "resume_over_empty_start",
            "<=",
            RESUME_VS_EMPTY_START,
            "x",
            ratio(resume_s, res["baseline_empty_spawn_to_initialize"]["median_s"]),
        ),
    ]
    figures: dict[str, Any] = {
        "per_turn": {
            "turn_marginal": latency_ms(inproc["turns"]["turn"]),
            "overhead_beyond_tool": latency_ms(inproc["turns"]["overhead"]),
            "overhead_beyond_tool_and_bare_model_median_ms": round(overhead_ms - model_ms, 3),
            "message_chain_1": latency_ms(s["message_chain_1"]),
            "message_chain_k": latency_ms(s["message_chain_k"]),
        },
        "per_turn_mcp_client": None
        if mcp is None
        else {
            "turn_marginal_ms": round(mcp["turn_s"] * 1e3, 3),
            "overhead_beyond_tool_ms": round(mcp["turn_s"] * 1e3 - tool_ms, 3),
            "message_chain_1": latency_ms(mcp["samples"]["message_chain_1"]),
            "message_chain_k": latency_ms(mcp["samples"]["message_chain_k"]),
        },
        "concurrent": many,
        "resume": res,
    }
    return {
        "benchmark": "agent_loop",
        "targets": targets,
        "meets_target": all(t["meets"] for t in targets),
        **figures,
        "baseline": {
            "tool_bash_true": latency_ms(s["tool"]),
            "bare_model_call_streamed": latency_ms(s["bare_model"]),
            "concurrent_tool_calls": many["baseline_tool_calls"],
            "empty_server_spawn_to_initialize": res["baseline_empty_spawn_to_initialize"],
        },
        "ratios": {
            "turn_over_tool": ratio(turn_ms, tool_ms),
            "turn_over_tool_plus_bare_model": ratio(turn_ms, tool_ms + model_ms),
            "concurrent_turns_per_s_over_tool_calls_per_s": ratio(
                many["turns_per_s"], many["baseline_tool_calls"]["per_s"]
            ),
            "resume_over_empty_start": ratio(resume_s, res["baseline_empty_spawn_to_initialize"]["median_s"]),
        },
        "model_server": model,
        "cleanup": inproc["cleanup"],
        "params": {
            "rounds": args.rounds,
            "chain": args.chain,
            "rounds_per_session": ROUNDS_PER_SESSION,
            "tool_calls_per_round": TOOL_CALLS_PER_ROUND,
            "sessions": args.sessions,
            "turns": args.turns,
            "resume_sessions": args.resume_sessions,
            "image": args.image,
            "model_server": "tests/model_server.py in a child process, answering at once (streamed)",
        },
        "env": environment() | {"docker": docker.from_env().version().get("Version")},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30, help="timed rounds of (a): chain=1 + chain=K + 5 tool calls")
    parser.add_argument("--chain", type=int, default=5, help="K: tool turns in the long message of (a)")
    parser.add_argument("--sessions", type=int, default=20, help="(b) sessions at once")
    parser.add_argument("--turns", type=int, default=50, help="(b) tool turns per session")
    parser.add_argument("--resume-sessions", type=int, default=20, help="(c) sessions running at the kill")
    parser.add_argument("--skip-mcp", action="store_true", help="skip (a) through the in-memory MCP client")
    parser.add_argument("--image", default=DEFAULT_IMAGE, help="the sessions' base image")
    parser.add_argument("--only", choices=["resume"], help="run one part alone: resume is (c)")
    parser.add_argument("--serve-model", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_model:
        serve_model()
        return
    assert args.chain >= 2, "--chain must be at least 2"
    configure_logging("WARNING")
    docker.from_env().images.get(args.image)  # fails early if the image is missing
    model = ModelChild(__file__, "--serve-model")
    os.environ["ANTHROPIC_BASE_URL"] = model.base_url
    os.environ["ANTHROPIC_API_KEY"] = "test-key"
    try:
        with temp_dir("agent-loop") as scratch:
            inproc = None if args.only == "resume" else anyio.run(in_process, args, model.base_url, scratch)
            res = resume(args, model.base_url, scratch)
    finally:
        model_result = model.close()
    emit(report_resume(args, res, model_result) if inproc is None else report(args, inproc, res, model_result))


if __name__ == "__main__":
    main()
