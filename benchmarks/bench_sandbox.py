"""Agent tools in a session's Docker container: round trips, file tools, cold start, 20 sessions at once.

Everything runs through `SandboxTools.execute` of a real runtime (`open_runtime`, the default
sandbox image, a temp data dir), so a call is: input validation, the helper channel (one long-lived
`docker exec -i` spoken to in JSON lines), the helper in the container, and the result's formatting.
Baselines, measured in the same run against the same container and interleaved with ours in blocks:
what each call costs as a plain `docker exec` (the docker SDK's `container.exec_run`), and a bare
`docker run --rm <image> true` (`containers.run(..., remove=True)`) for the cold start.

  (a) `bash` with `true`: median and p99 over `--calls` calls after 50 warm-up calls. Baseline:
      `exec_run(["true"])`. The channel's own round trip (`DockerSandbox.call("ping")`, no bash) is
      reported beside it. Targets: median <= 5 ms, >= 10x faster than the baseline's median, and
      <= 2x the ping's median (the shell step's own cost).
  (b) `read` and `write` of a 4 KiB text file. Baselines: `exec_run(["cat", f])` and
      `exec_run(["sh", "-c", 'printf %s "$1" > "$2"', "sh", text, f])`. Target: medians <= 5 ms.
  (c) The first tool call of a new session (`bash true` on a session never used: the derived image
      is cached, the volumes, the container and the channel are made). Baseline: `docker run --rm`
      of the session's own (derived) image running `true`. Target: median <= 1.2x the baseline.
  (d) `--sessions` sessions at once (anyio tasks), each making `--per-session` mixed calls (bash
      `echo`, write, read, grep) in two rounds, after a concurrent first call each. Target: every
      call completes without error. Reported: calls/s, per-call median and p99, the number of
      containers, and this process's RSS (VmRSS before and after, peak ru_maxrss). Baseline:
      one thread per session making mixed `exec_run` calls on the same containers.

Every session is deleted afterwards (its container and volumes go with it), and whatever still
carries this run's store label is removed, also on failure.

    .venv/bin/python benchmarks/bench_sandbox.py [--calls 1000] [--baseline-calls 200] [--cold 10] [--sessions 20]
"""

from __future__ import annotations

import argparse
import resource
import statistics
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import docker
from _common import check, emit, environment, latency_ms, log, now, ratio, temp_dir
from docker.models.containers import Container

from server.core.config import DEFAULT_IMAGE, ServerConfig
from server.core.log import configure_logging
from server.core.sessions import Session
from server.hands.docker.sandbox import LABEL_STORE, DockerSandbox
from server.hands.toolset import SandboxTools
from server.services.runtime import Runtime, open_runtime
from server.services.sessions import NewSession

ROUND_TRIP_TARGET_MS = 5.0
SPEEDUP_TARGET = 10.0
PING_RATIO_TARGET = 2.0
"""`bash true` within twice the channel's bare ping: the shell step (framing, the syntax check) adds at most
one more round trip's worth (issue 14)."""
FILE_TARGET_MS = 5.0
COLD_TARGET_RATIO = 1.2
BLOCKS = 10  # ours and the baseline take turns in this many blocks
WARM_UP_CALLS = 50
WARM_UP_EXECS = 5
CONCURRENT_ROUNDS = 2
PHASE_TIMEOUT_S = 900.0  # tool calls carry their own timeouts; this bounds a phase as a whole
FILE_BYTES = 4096
WORK_DIR = "/workspace/bench"
NEEDLE = "needle"


def text_4k() -> str:
    """4,096 bytes of text in 64 lines of 64 bytes; line 32 holds the grep's needle."""
    lines = [f"line {i:04d} {NEEDLE if i == 32 else 'hay'} ".ljust(63, ".") + "\n" for i in range(64)]
    text = "".join(lines)
    assert len(text.encode()) == FILE_BYTES
    return text


def split(total: int, parts: int) -> list[int]:
    """`total` in `parts` near-equal counts (blocks of calls)."""
    return [total * (i + 1) // parts - total * i // parts for i in range(parts)]


def vm_rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def peak_rss_mib() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # KiB on Linux


class ToolFailedError(RuntimeError):
    pass


async def run_tool(tools: SandboxTools, name: str, tool_input: dict[str, Any], expect: str | None = None) -> str:
    result = await tools.execute(name, tool_input)
    text = result.as_text()
    if result.is_error:
        raise ToolFailedError(text[:200])  # the toolset's message starts with the tool's name
    if expect is not None and text != expect:
        raise ToolFailedError(f"{name}: unexpected output {text[:80]!r}")
    return text


class Exec:
    """The baseline: the same operations as plain `docker exec`s (blocking docker SDK calls)."""

    def __init__(self, container: Container) -> None:
        self.container = container

    def run(self, argv: list[str], expect: bytes | None = None) -> bytes:
        code, output = self.container.exec_run(argv)
        if code != 0 or (expect is not None and output != expect):
            raise RuntimeError(f"exec_run {argv[:3]} exited {code}: {output[:200]!r}")
        return bytes(output)

    def true(self) -> None:
        self.run(["true"], b"")

    def cat(self, path: str, text: str) -> None:
        self.run(["cat", path], text.encode())

    def write(self, path: str, text: str) -> None:
        self.run(["sh", "-c", 'printf %s "$1" > "$2"', "sh", text, path], b"")

    def echo(self, word: str) -> None:
        self.run(["echo", word], f"{word}\n".encode())

    def grep(self, path: str) -> None:
        self.run(["grep", "-n", NEEDLE, path])


async def timed(samples: list[float], count: int, call: Callable[[], Awaitable[object]]) -> None:
    for _ in range(count):
        start = now()
        await call()
        samples.append(now() - start)


def blocking(call: Callable[[], object]) -> Callable[[], Awaitable[None]]:
    """A baseline's blocking docker SDK call, made on the event loop itself (no thread hop to pay for)."""

    async def run() -> None:
        call()

    return run


async def interleaved(plan: list[tuple[str, Callable[[], Awaitable[object]], int, int]]) -> dict[str, list[float]]:
    """Warms every (name, call, timed calls, warm-up calls) up, then runs them in turn, block by block."""
    samples: dict[str, list[float]] = {name: [] for name, *_ in plan}
    for _, call, _, warm in plan:
        await timed([], warm, call)
    for block in range(BLOCKS):
        for name, call, total, _ in plan:
            await timed(samples[name], split(total, BLOCKS)[block], call)
        medians = ", ".join(f"{name} {statistics.median(s) * 1e3:.2f}" for name, s in samples.items() if s)
        log(f"sandbox: block {block + 1}/{BLOCKS}: medians (ms) {medians}")
    return samples


@dataclass
class Bench:
    runtime: Runtime
    client: docker.DockerClient
    args: argparse.Namespace
    created: list[str] = field(default_factory=list)
    image: str = ""  # the sessions' derived image, for the `docker run` baseline

    async def new_session(self) -> tuple[Session, SandboxTools]:
        session = await self.runtime.sessions.create(NewSession(title="bench"))
        self.created.append(session.id)
        return session, self.runtime.sandboxes.tools(session.id, session.environment)

    async def delete(self, session_id: str) -> None:
        await self.runtime.sessions.delete(session_id)
        self.created.remove(session_id)

    def sandbox(self, session: Session) -> DockerSandbox:
        return self.runtime.sandboxes.sandbox(session.id, session.environment)

    def container_of(self, session: Session, client: docker.DockerClient | None = None) -> Container:
        container_id = self.sandbox(session).container_id
        assert container_id is not None, "the session has no container yet"
        return (client or self.client).containers.get(container_id)

    async def cleanup(self) -> dict[str, int]:
        """Deletes every session made here, then removes anything still labelled with this store."""
        failed = 0
        with anyio.CancelScope(shield=True):
            for session_id in list(self.created):
                try:
                    await self.delete(session_id)
                except Exception as exc:  # noqa: BLE001 - keep cleaning; the sweep below catches what is left
                    failed += 1
                    log(f"sandbox: could not delete session {session_id}: {exc}")
            swept = await anyio.to_thread.run_sync(self.sweep)
        return {"session_deletes_failed": failed, **swept}

    def sweep(self) -> dict[str, int]:
        label = {"label": f"{LABEL_STORE}={self.runtime.store.store_id}"}
        containers = self.client.containers.list(all=True, filters=label)
        for container in containers:
            container.remove(force=True)
        volumes = self.client.volumes.list(filters=label)
        for volume in volumes:
            volume.remove(force=True)
        return {"leftover_containers_removed": len(containers), "leftover_volumes_removed": len(volumes)}


# (a) and (b): one warm session ---------------------------------------------------------------------


async def warm_calls(bench: Bench) -> dict[str, list[float]]:
    """bash `true`, the channel's ping, 4 KiB write and read; each beside its exec_run baseline."""
    args, text = bench.args, text_4k()
    session, tools = await bench.new_session()
    await run_tool(tools, "bash", {"command": f"mkdir -p {WORK_DIR}"}, "")  # makes the container
    sandbox, base = bench.sandbox(session), Exec(bench.container_of(session))
    bench.image = str(base.container.attrs["Config"]["Image"])
    ours_file, base_file = f"{WORK_DIR}/ours-4k.txt", f"{WORK_DIR}/base-4k.txt"
    wrote = f"wrote {FILE_BYTES} bytes to {ours_file}"

    async def bash_true() -> None:
        await run_tool(tools, "bash", {"command": "true"}, "")

    async def ping() -> None:
        await sandbox.call("ping", {}, 30.0)

    async def write() -> None:
        await run_tool(tools, "write", {"file_path": ours_file, "content": text}, wrote)

    async def read() -> None:
        await run_tool(tools, "read", {"file_path": ours_file}, text)

    log(f"sandbox: warm session {session.id} in container {base.container.short_id} ({bench.image})")
    samples = await interleaved(
        [
            ("bash_true", bash_true, args.calls, WARM_UP_CALLS),
            ("channel_ping", ping, args.calls // 5, WARM_UP_CALLS),
            ("baseline_exec_true", blocking(base.true), args.baseline_calls, WARM_UP_EXECS),
            ("write_4k", write, args.file_calls, WARM_UP_CALLS),
            ("baseline_exec_write_4k", blocking(lambda: base.write(base_file, text)), args.file_baseline_calls, 1),
            ("read_4k", read, args.file_calls, WARM_UP_CALLS),
            ("baseline_exec_cat_4k", blocking(lambda: base.cat(base_file, text)), args.file_baseline_calls, 1),
        ]
    )
    await bench.delete(session.id)
    return samples


# (c) Cold start: a new session's first call --------------------------------------------------------


async def cold_starts(bench: Bench) -> dict[str, list[float]]:
    """New session -> first `bash true` (volumes, container, channel), beside `docker run --rm image true`."""
    samples: dict[str, list[float]] = {"session_create": [], "first_call": [], "baseline_docker_run": []}

    async def ours(record: bool) -> None:
        start = now()
        session, tools = await bench.new_session()
        created = now()
        await run_tool(tools, "bash", {"command": "true"}, "")
        done = now()
        await bench.delete(session.id)  # not timed
        if record:
            samples["session_create"].append(created - start)
            samples["first_call"].append(done - created)

    def docker_run(record: bool) -> None:
        labels = {LABEL_STORE: bench.runtime.store.store_id}  # so the sweep finds it if the run fails
        start = now()
        output = bench.client.containers.run(bench.image, ["true"], remove=True, labels=labels)
        elapsed = now() - start
        assert output == b"", output
        if record:
            samples["baseline_docker_run"].append(elapsed)

    await ours(record=False)  # warm-up: code paths, the image's layers in the page cache
    docker_run(record=False)
    for run in range(bench.args.cold):
        if run % 2 == 0:
            await ours(record=True)
            docker_run(record=True)
        else:
            docker_run(record=True)
            await ours(record=True)
        log(f"sandbox: cold start {run + 1}/{bench.args.cold}: first call {samples['first_call'][-1]:.3f} s, "
            f"docker run {samples['baseline_docker_run'][-1]:.3f} s")  # fmt: skip
    return samples


# (d) Many sessions at once -------------------------------------------------------------------------


@dataclass
class Mixed:
    """Per-call latencies and failures of one scenario under concurrency."""

    samples: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    wall_s: float = 0.0

    def record(self, start: float, error: BaseException | None) -> None:
        if error is None:
            self.samples.append(now() - start)
        else:
            self.errors.append(f"{type(error).__name__}: {error}"[:300])


async def mixed_calls(tools: SandboxTools, index: int, first: int, count: int, into: Mixed) -> None:
    """Calls `first .. first + count` of session `index`: write, read, grep, bash echo, in turn."""
    path, text = f"{WORK_DIR}/c{index}.txt", text_4k()
    for k in range(first, first + count):
        start, error = now(), None
        try:
            match k % 4:
                case 0:
                    await run_tool(tools, "write", {"file_path": path, "content": text})
                case 1:
                    await run_tool(tools, "read", {"file_path": path}, text)
                case 2:
                    if NEEDLE not in await run_tool(tools, "grep", {"pattern": NEEDLE, "path": path}):
                        raise ToolFailedError("grep: no match")
                case _:
                    await run_tool(tools, "bash", {"command": f"echo {index}-{k}"}, f"{index}-{k}")
        except Exception as exc:  # noqa: BLE001 - counted: the target is that none fail
            error = exc
        into.record(start, error)


def mixed_execs(base: Exec, index: int, first: int, count: int, into: Mixed) -> None:
    """The same mix as plain `docker exec`s (runs in a thread of its own)."""
    path, text = f"{WORK_DIR}/b{index}.txt", text_4k()
    for k in range(first, first + count):
        start, error = now(), None
        try:
            match k % 4:
                case 0:
                    base.write(path, text)
                case 1:
                    base.cat(path, text)
                case 2:
                    base.grep(path)
                case _:
                    base.echo(f"{index}-{k}")
        except Exception as exc:  # noqa: BLE001 - counted
            error = exc
        into.record(start, error)


async def first_calls(sessions: list[tuple[Session, SandboxTools]]) -> Mixed:
    """Every session's first call (its container starts), all at once."""
    result = Mixed()

    async def one(tools: SandboxTools) -> None:
        start, error = now(), None
        try:
            await run_tool(tools, "bash", {"command": "true"}, "")
        except Exception as exc:  # noqa: BLE001 - counted
            error = exc
        result.record(start, error)

    start = now()
    async with anyio.create_task_group() as tg:
        for _, tools in sessions:
            tg.start_soon(one, tools)
    result.wall_s = now() - start
    return result


async def concurrent(bench: Bench) -> dict[str, Any]:
    args = bench.args
    memory: dict[str, float] = {"vm_rss_mib_before": vm_rss_mib(), "peak_rss_mib_before": peak_rss_mib()}
    sessions = [await bench.new_session() for _ in range(args.sessions)]
    started = await first_calls(sessions)
    label = {"label": f"{LABEL_STORE}={bench.runtime.store.store_id}"}
    containers = len(bench.client.containers.list(filters=label))
    memory["vm_rss_mib_after_first_calls"] = vm_rss_mib()
    log(f"sandbox: {args.sessions} sessions started in {started.wall_s:.2f} s; {containers} containers running")
    threads_client = docker.from_env(max_pool_size=max(10, args.sessions))  # one connection per thread
    try:
        execs = [Exec(bench.container_of(session, threads_client)) for session, _ in sessions]
        ours, theirs = await mixed_rounds(args, [tools for _, tools in sessions], execs, memory)
    finally:
        threads_client.close()
    return {"started": started, "containers": containers, "ours": ours, "theirs": theirs, "memory": memory}


async def mixed_rounds(
    args: argparse.Namespace, sessions: list[SandboxTools], execs: list[Exec], memory: dict[str, float]
) -> tuple[Mixed, Mixed]:
    """Ours (anyio tasks) and the baseline (threads) take turns, `CONCURRENT_ROUNDS` times."""
    threads = anyio.CapacityLimiter(args.sessions)
    ours, theirs = Mixed(), Mixed()
    for round_ in range(CONCURRENT_ROUNDS):
        count = split(args.per_session, CONCURRENT_ROUNDS)[round_]
        first = sum(split(args.per_session, CONCURRENT_ROUNDS)[:round_])
        start = now()
        async with anyio.create_task_group() as tg:
            for index, tools in enumerate(sessions):
                tg.start_soon(mixed_calls, tools, index, first, count, ours)
        ours.wall_s += now() - start
        memory["vm_rss_mib_after_mixed_calls"] = max(memory.get("vm_rss_mib_after_mixed_calls", 0.0), vm_rss_mib())
        memory["peak_rss_mib_after_mixed_calls"] = peak_rss_mib()
        count = split(args.baseline_per_session, CONCURRENT_ROUNDS)[round_]
        first = sum(split(args.baseline_per_session, CONCURRENT_ROUNDS)[:round_])
        start = now()
        async with anyio.create_task_group() as tg:
            for index, base in enumerate(execs):
                work = partial(mixed_execs, base, index, first, count, theirs)
                tg.start_soon(partial(anyio.to_thread.run_sync, work, limiter=threads))
        theirs.wall_s += now() - start
        log(f"sandbox: concurrent round {round_ + 1}/{CONCURRENT_ROUNDS}: {len(ours.samples)} calls, "
            f"{len(ours.errors)} errors")  # fmt: skip
    return ours, theirs


# Report ---------------------------------------------------------------------------------------------


def under_load(mixed: Mixed, calls_expected: int) -> dict[str, Any]:
    return {
        "calls": calls_expected,
        "completed": len(mixed.samples),
        "errors": len(mixed.errors),
        "first_errors": mixed.errors[:5],
        "wall_s": round(mixed.wall_s, 3),
        "per_s": round(len(mixed.samples) / mixed.wall_s, 1) if mixed.wall_s else 0.0,
        "per_call": latency_ms(mixed.samples) if mixed.samples else None,
    }


def report(args: argparse.Namespace, warm: dict[str, list[float]], cold: dict[str, list[float]],
           many: dict[str, Any], engine: dict[str, Any], cleanup: dict[str, int]) -> dict[str, Any]:  # fmt: skip
    figures = {name: latency_ms(samples) for name, samples in (warm | cold).items()}
    bash, ping, exec_true = figures["bash_true"], figures["channel_ping"], figures["baseline_exec_true"]
    read, write = figures["read_4k"], figures["write_4k"]
    exec_cat, exec_write = figures["baseline_exec_cat_4k"], figures["baseline_exec_write_4k"]
    first, docker_run = figures["first_call"], figures["baseline_docker_run"]
    started: Mixed = many["started"]
    ours = under_load(many["ours"], args.sessions * args.per_session)
    theirs = under_load(many["theirs"], args.sessions * args.baseline_per_session)
    speedup = round(exec_true["median_ms"] / bash["median_ms"], 2)
    over_ping = ratio(bash["median_ms"], ping["median_ms"])
    cold_ratio = ratio(first["median_ms"], docker_run["median_ms"])
    errors = ours["errors"] + (ours["calls"] - ours["completed"] - ours["errors"]) + len(started.errors)
    targets = [
        check("bash_true.median_ms", "<=", ROUND_TRIP_TARGET_MS, "ms", bash["median_ms"]),
        check("bash_true.speedup_vs_exec_run", ">=", SPEEDUP_TARGET, "x", speedup),
        check("bash_true.median_vs_channel_ping", "<=", PING_RATIO_TARGET, "x", over_ping),
        check("read_4k.median_ms", "<=", FILE_TARGET_MS, "ms", read["median_ms"]),
        check("write_4k.median_ms", "<=", FILE_TARGET_MS, "ms", write["median_ms"]),
        check("cold_first_call.median_vs_docker_run", "<=", COLD_TARGET_RATIO, "x", cold_ratio),
        check("concurrent.errors", "<=", 0, "calls", errors),
    ]
    return {
        "benchmark": "sandbox",
        "targets": targets,
        "meets_target": all(t["meets"] for t in targets),
        "bash_true": bash,
        "read_4k": read,
        "write_4k": write,
        "cold_first_call": first,
        "concurrent": {
            "sessions": args.sessions,
            "containers_running": {"found": many["containers"], "expected": args.sessions},
            "first_calls_at_once": {
                "wall_s": round(started.wall_s, 3),
                "errors": len(started.errors),
                "first_errors": started.errors[:5],
                "per_call": latency_ms(started.samples) if started.samples else None,
            },
            "mixed_calls": ours,
            "memory": many["memory"],
        },
        "breakdown": {
            "channel_ping": ping,
            "bash_true_minus_ping_median_ms": round(bash["median_ms"] - ping["median_ms"], 4),
            "cold_session_create": figures["session_create"],
        },
        "baseline": {
            "bash_true": {"name": "docker_exec_run_true", **exec_true},
            "read_4k": {"name": "docker_exec_run_cat", **exec_cat},
            "write_4k": {"name": "docker_exec_run_sh_printf", **exec_write},
            "cold_first_call": {"name": "docker_run_rm_same_image_true", **docker_run},
            "concurrent": {"name": "exec_run_same_mix_one_thread_per_session", **theirs},
        },
        "ratios": {
            "bash_true_speedup_vs_exec_run": speedup,
            "bash_true_median_vs_channel_ping": over_ping,
            "bash_true_median_vs_baseline": ratio(bash["median_ms"], exec_true["median_ms"]),
            "bash_true_p99_vs_baseline_median": ratio(bash["p99_ms"], exec_true["median_ms"]),
            "read_4k_median_vs_baseline": ratio(read["median_ms"], exec_cat["median_ms"]),
            "write_4k_median_vs_baseline": ratio(write["median_ms"], exec_write["median_ms"]),
            "cold_first_call_median_vs_baseline": cold_ratio,
            "concurrent_per_s_vs_baseline": ratio(ours["per_s"], theirs["per_s"]),
        },
        "cleanup": cleanup,
        "params": {
            "calls": args.calls,
            "baseline_calls": args.baseline_calls,
            "file_calls": args.file_calls,
            "file_baseline_calls": args.file_baseline_calls,
            "file_bytes": FILE_BYTES,
            "cold": args.cold,
            "sessions": args.sessions,
            "per_session": args.per_session,
            "baseline_per_session": args.baseline_per_session,
            "blocks": BLOCKS,
            "warm_up_calls": WARM_UP_CALLS,
            "concurrent_rounds": CONCURRENT_ROUNDS,
            "image": args.image,
        },
        "env": environment() | engine,
    }


def engine_info(client: docker.DockerClient, derived_image: str) -> dict[str, Any]:
    version = client.version()
    return {
        "docker_engine": version.get("Version"),
        "docker_sdk": docker.__version__,
        "storage_driver": client.info().get("Driver"),
        "derived_image": derived_image,
    }


async def measure(args: argparse.Namespace, scratch: Path) -> dict[str, Any]:
    client = docker.from_env()
    client.images.get(args.image)  # fails early, with the engine's message, if the image is missing
    async with open_runtime(ServerConfig(data_dir=scratch / "data", image=args.image)) as runtime:
        bench = Bench(runtime, client, args)
        try:
            with anyio.fail_after(PHASE_TIMEOUT_S):
                warm = await warm_calls(bench)
            with anyio.fail_after(PHASE_TIMEOUT_S):
                cold = await cold_starts(bench)
            with anyio.fail_after(PHASE_TIMEOUT_S):
                many = await concurrent(bench)
        finally:
            cleanup = await bench.cleanup()
            log(f"sandbox: cleaned up {cleanup}")
    engine = await anyio.to_thread.run_sync(engine_info, client, bench.image)
    client.close()
    return report(args, warm, cold, many, engine, cleanup)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1_000, help="timed `bash true` calls (channel pings: a fifth)")
    parser.add_argument("--baseline-calls", type=int, default=200, help="timed `exec_run(['true'])` calls")
    parser.add_argument("--file-calls", type=int, default=300, help="timed 4 KiB reads, and as many writes")
    parser.add_argument("--file-baseline-calls", type=int, default=60, help="timed exec_run cats, and writes")
    parser.add_argument("--cold", type=int, default=10, help="timed first calls of new sessions (and docker runs)")
    parser.add_argument("--sessions", type=int, default=20, help="sessions running tools at once")
    parser.add_argument("--per-session", type=int, default=50, help="mixed tool calls per session")
    parser.add_argument("--baseline-per-session", type=int, default=10, help="mixed exec_run calls per thread")
    parser.add_argument("--image", default=DEFAULT_IMAGE, help="the sessions' base image")
    args = parser.parse_args()
    configure_logging("INFO")
    with temp_dir("sandbox") as scratch:
        emit(anyio.run(measure, args, scratch))


if __name__ == "__main__":
    main()
