"""Issue 14's warm pool: a new session's first tool call against a later one, pool on and pool off, and 20 new
sessions' first calls at once.

Two in-process runtimes (`open_runtime`, the default sandbox image, temp data dirs) run side by side: one with
`warm_pool=1` (the default of `MANAGED_SESSIONS_WARM_POOL`), one with `warm_pool=0`. Every call goes through
`SandboxTools.execute("bash", {"command": "true"})`, as the agent loop makes it.

  (a) First call / later call: per round and per runtime (the two alternate, which goes first too), a new session,
      its first call (timed), then `--later` calls on it (their median is the round's later call), then the
      session is deleted (not timed). The pool runtime's rounds start once its pool is full again: sessions
      arriving no faster than the pool refills, which is what a pool of 1 is for. Target: with the pool, the
      median first call <= 3x the median later call. The same ratio without the pool is the baseline.
  (b) `--sessions` new sessions' first calls at once (anyio tasks), wall time from the first call's start to the
      last one's end, with pools of 0, 1 and `--big-pool` containers (each runtime's pool full first), `--bursts`
      times each. No target set (issue 14 gives today's figure, ~4.5 s on its machine); reported.

Every session is deleted afterwards, and whatever still carries a run's store label is removed, also on failure.

    .venv/bin/python benchmarks/bench_warm_pool.py [--rounds 10] [--later 20] [--sessions 20] [--bursts 2]
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import docker
from _common import check, emit, environment, latency_ms, log, now, ratio, seconds, temp_dir

from server.core.config import DEFAULT_IMAGE, MAX_WARM_POOL, ServerConfig
from server.core.log import configure_logging
from server.hands.docker.pool import SandboxPool
from server.hands.docker.sandbox import LABEL_STORE
from server.hands.toolset import SandboxTools
from server.services.runtime import Runtime, open_runtime
from server.services.sessions import NewSession

RATIO_TARGET = 3.0
PHASE_TIMEOUT_S = 900.0  # tool calls carry their own timeouts; this bounds a phase as a whole
FILL_TIMEOUT_S = 120.0


class Side:
    """One runtime and its pool size."""

    def __init__(self, name: str, runtime: Runtime, size: int) -> None:
        self.name = name
        self.runtime = runtime
        self.size = size
        pool = runtime.sandboxes
        assert isinstance(pool, SandboxPool)
        self.pool = pool

    async def full(self) -> None:
        """Waits until the pool holds its size (at once for size 0)."""
        with anyio.fail_after(FILL_TIMEOUT_S):
            while len(self.pool.warm.waiting(self.pool.default_environment)) < self.size:
                await self.pool.warm.changed.wait()

    async def new_session(self) -> tuple[str, SandboxTools]:
        session = await self.runtime.sessions.create(NewSession(title="bench"))
        return session.id, self.runtime.sandboxes.tools(session.id, session.environment)

    async def delete(self, session_id: str) -> None:
        await self.runtime.sessions.delete(session_id)


async def bash_true(tools: SandboxTools) -> float:
    start = now()
    result = await tools.execute("bash", {"command": "true"})
    elapsed = now() - start
    if result.is_error:
        raise RuntimeError(f"bash true failed: {result.as_text()[:200]}")
    return elapsed


async def one_round(side: Side, later_calls: int) -> tuple[float, float]:
    """A new session's first call and the median of its later calls, in seconds."""
    await side.full()
    session_id, tools = await side.new_session()
    try:
        first = await bash_true(tools)
        later = [await bash_true(tools) for _ in range(later_calls)]
    finally:
        await side.delete(session_id)
    return first, statistics.median(later)


async def first_and_later(on: Side, off: Side, args: argparse.Namespace) -> dict[str, dict[str, list[float]]]:
    samples = {side.name: {"first": [], "later": []} for side in (on, off)}
    await one_round(on, args.later)  # warm-up: code paths, the image's layers in the page cache
    await one_round(off, args.later)
    for index in range(args.rounds):
        for side in (on, off) if index % 2 == 0 else (off, on):
            first, later = await one_round(side, args.later)
            samples[side.name]["first"].append(first)
            samples[side.name]["later"].append(later)
        log(
            f"warm_pool: round {index + 1}/{args.rounds}: first call pool on "
            f"{samples['pool_on']['first'][-1] * 1e3:.1f} ms, off {samples['pool_off']['first'][-1] * 1e3:.1f} ms"
        )
    return samples


async def burst(side: Side, count: int) -> tuple[float, int]:
    """`count` new sessions' first calls at once: the wall time, and how many failed."""
    await side.full()
    sessions = [await side.new_session() for _ in range(count)]
    failures = 0

    async def first(tools: SandboxTools) -> None:
        nonlocal failures
        try:
            await bash_true(tools)
        except Exception as exc:  # noqa: BLE001 - counted and reported
            failures += 1
            log(f"warm_pool: a first call failed: {exc}")

    start = now()
    async with anyio.create_task_group() as group:
        for _, tools in sessions:
            group.start_soon(first, tools)
    wall = now() - start
    for session_id, _ in sessions:
        await side.delete(session_id)
    return wall, failures


async def bursts(sides: list[Side], args: argparse.Namespace) -> dict[str, Any]:
    walls: dict[str, list[float]] = {side.name: [] for side in sides}
    failed = 0
    for index in range(args.bursts):
        for side in sides if index % 2 == 0 else list(reversed(sides)):
            wall, failures = await burst(side, args.sessions)
            walls[side.name].append(wall)
            failed += failures
            log(f"warm_pool: burst {index + 1}/{args.bursts} {side.name}: {args.sessions} first calls in {wall:.2f} s")
    return {"wall": {name: seconds(samples) for name, samples in walls.items()}, "failures": failed}


def sweep(client: docker.DockerClient, store_ids: list[str]) -> dict[str, int]:
    """Removes whatever still carries one of the runs' store labels."""
    containers = volumes = 0
    for store_id in store_ids:
        label = {"label": f"{LABEL_STORE}={store_id}"}
        for container in client.containers.list(all=True, filters=label):
            container.remove(force=True)
            containers += 1
        for volume in client.volumes.list(filters=label):
            volume.remove(force=True)
            volumes += 1
    return {"leftover_containers_removed": containers, "leftover_volumes_removed": volumes}


@asynccontextmanager
async def sides(scratch: Path, image: str, sizes: dict[str, int]) -> AsyncIterator[list[Side]]:
    store_ids: list[str] = []
    try:
        async with AsyncExitStack() as stack:
            opened = []
            for name, size in sizes.items():
                config = ServerConfig(data_dir=scratch / name, image=image, warm_pool=size)
                opened.append(Side(name, await stack.enter_async_context(open_runtime(config)), size))
                store_ids.append(opened[-1].runtime.store.store_id)
            yield opened
    finally:
        client = docker.from_env()
        with anyio.CancelScope(shield=True):
            log(f"warm_pool: swept {await anyio.to_thread.run_sync(sweep, client, store_ids)} after the run")
        client.close()


async def measure(args: argparse.Namespace, scratch: Path) -> dict[str, Any]:
    client = docker.from_env()
    client.images.get(args.image)  # fails early, with the engine's message, if the image is missing
    client.close()
    sizes = {"pool_on": 1, "pool_off": 0, f"pool_{args.big_pool}": args.big_pool}
    async with sides(scratch, args.image, sizes) as (on, off, big):
        with anyio.fail_after(PHASE_TIMEOUT_S):
            calls = await first_and_later(on, off, args)
        with anyio.fail_after(PHASE_TIMEOUT_S):
            many = await bursts([off, on, big], args)
    return report(args, calls, many)


def report(args: argparse.Namespace, calls: dict[str, dict[str, list[float]]], many: dict[str, Any]) -> dict[str, Any]:
    figures = {name: {kind: latency_ms(s) for kind, s in per.items()} for name, per in calls.items()}
    on, off = figures["pool_on"], figures["pool_off"]
    on_ratio = ratio(on["first"]["median_ms"], on["later"]["median_ms"])
    off_ratio = ratio(off["first"]["median_ms"], off["later"]["median_ms"])
    targets = [
        check("pool_on.first_vs_later_call", "<=", RATIO_TARGET, "x", on_ratio),
        check("bursts.failures", "<=", 0, "calls", many["failures"]),
    ]
    return {
        "benchmark": "warm_pool",
        "targets": targets,
        "meets_target": all(t["meets"] for t in targets),
        "first_call": {"pool_on": on["first"], "pool_off": off["first"]},
        "later_call": {"pool_on": on["later"], "pool_off": off["later"]},
        "first_calls_at_once": {"sessions": args.sessions, **many},
        "baseline": {"name": "the same runtime without a pool (warm_pool=0)", "first_vs_later_call": off_ratio},
        "ratios": {
            "pool_on_first_vs_later": on_ratio,
            "pool_off_first_vs_later": off_ratio,
            "first_call_pool_on_vs_off": ratio(on["first"]["median_ms"], off["first"]["median_ms"]),
        },
        "params": {
            "rounds": args.rounds,
            "later": args.later,
            "sessions": args.sessions,
            "bursts": args.bursts,
            "big_pool": args.big_pool,
            "image": args.image,
        },
        "env": environment(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10, help="new sessions per runtime for (a)")
    parser.add_argument("--later", type=int, default=20, help="later calls per session in (a)")
    parser.add_argument("--sessions", type=int, default=20, help="new sessions' first calls at once in (b)")
    parser.add_argument("--bursts", type=int, default=2, help="bursts per pool size in (b)")
    parser.add_argument("--big-pool", type=int, default=MAX_WARM_POOL, help="the larger pool size in (b)")
    parser.add_argument("--image", default=DEFAULT_IMAGE, help="the sessions' base image")
    args = parser.parse_args()
    configure_logging("INFO")
    with temp_dir("warm_pool") as scratch:
        emit(anyio.run(measure, args, scratch))


if __name__ == "__main__":
    main()
