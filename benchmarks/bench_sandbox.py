"""Agent tools in a session's Docker container: round trips, file tools, cold start, 20 sessions at once.

Everything runs through `SandboxTools.execute` of a real runtime (`open_runtime`, the default
sandbox image, a temp data dir), so a call is: input validation, the helper channel (one long-lived
`docker exec -i` spoken to in JSON lines), the helper in the container, and the result's formatting.
Baselines, measured in the same run against the same container and interleaved with ours in blocks:
what each call costs as a plain `docker exec` (the docker SDK's `container.exec_run`), and a bare
`docker run --rm <image> true` (`containers.run(..., remove=True)`) for the cold start.

  (a) `bash` with `true`: median and p99 over `--calls` calls after 50 warm-up calls. Baseline:
      `exec_run(["true"])`. The channel's own round trip (`DockerSandbox.call("ping")`, no bash) is
      reported beside it. Targets: median <= 5 ms, and >= 10x faster than the baseline's median.
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
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import docker
import docker.errors
from _common import check, emit, environment, latency_ms, log, now, ratio, temp_dir
from docker.models.containers import Container

from server.config import DEFAULT_IMAGE, ServerConfig
from server.hands.docker_sandbox import LABEL_STORE
from server.hands.toolset import SandboxTools
from server.log import configure_logging
from server.runtime import Runtime, open_runtime
from server.session.manager import NewSession

ROUND_TRIP_TARGET_MS = 5.0
SPEEDUP_TARGET = 10.0
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
        raise ToolFailedError(f"{name}: {text[:200]}")
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

    async def new_session(self) -> tuple[str, SandboxTools]:
        session = await self.runtime.sessions.create(NewSession(title="bench"))
        self.created.append(session.id)
        return session.id, self.runtime.sandboxes.tools(session.id, session.environment)

    async def delete(self, session_id: str) -> None:
        await self.runtime.sessions.delete(session_id)
        self.created.remove(session_id)

    def container_of(self, session_id: str) -> Container:
        container_id = self.runtime.sandboxes._sandboxes[session_id].container_id
        assert container_id is not None, "the session has no container yet"
        return self.client.containers.get(container_id)

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


