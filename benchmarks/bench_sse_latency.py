"""Event latency on the SSE stream: from an event's append to a client's receipt, beside the `get_events` long poll.

The HTTP server (`/v1` and `/mcp`, uvicorn) runs on this process's event loop over a real runtime (SQLite in a
temp data dir), so events are appended straight through `SessionManager.append`, one at a time, `--interval-ms`
apart. The reader is a child process (`_stream_reader.py`) that prints each event's id and the moment it got it;
`time.monotonic_ns()` reads CLOCK_MONOTONIC, one clock for both processes. Latency runs from just before the
append call (its commit included) to the receipt.

  - `sse`:       the official `anthropic` SDK, `client.beta.sessions.events.stream(session_id)`;
  - `long_poll`: an MCP client over Streamable HTTP calling `get_events` with `wait_seconds` (the baseline).

Each path gets its own session and `--events` events, after `WARMUP_EVENTS` unmeasured ones.
Target: SSE median <= 5 ms.

    .venv/bin/python benchmarks/bench_sse_latency.py [--events 1000] [--interval-ms 10]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anthropic
import anyio
import uvicorn
from _common import PYTHON, check, emit, environment, free_port, latency_ms, log, ratio, temp_dir
from anyio.abc import Process

from server.core.config import ServerConfig
from server.core.events import AgentMessage
from server.fronts.http import http_app
from server.services.runtime import Runtime, open_runtime
from server.services.sessions import NewSession
from vault.memory_store import MemoryStore

TARGET_MEDIAN_MS = 5.0
WARMUP_EVENTS = 50
TOKEN = "bench-token-" + "s" * 32
READER = Path(__file__).resolve().parent / "_stream_reader.py"


async def measure_path(runtime: Runtime, base_url: str, mode: str, events: int, interval_s: float) -> list[float]:
    """Appends `events` (after the warm-up) to a new session while a `mode` reader follows it; latencies in s."""
    session = await runtime.sessions.create(NewSession(title=f"bench {mode}"))
    total = WARMUP_EVENTS + events
    command = [PYTHON, str(READER), mode, base_url, TOKEN, session.id, str(total)]
    appended_ns: dict[str, int] = {}
    received_ns: dict[str, int] = {}
    async with await anyio.open_process(command, stderr=sys.stderr) as reader:
        lines = _lines(reader)
        if await anext(lines) != "ready":
            raise RuntimeError(f"the {mode} reader did not start")
        async with anyio.create_task_group() as readers:
            readers.start_soon(_collect, lines, received_ns, total)
            for index in range(total):
                start_ns = time.monotonic_ns()
                [event] = await runtime.sessions.append(session.id, [AgentMessage.text(f"event {index}")])
                appended_ns[event.id] = start_ns
                await anyio.sleep(interval_s)
        await reader.wait()
    measured = list(appended_ns)[WARMUP_EVENTS:]
    missing = [event_id for event_id in measured if event_id not in received_ns]
    if missing:
        raise RuntimeError(f"the {mode} reader missed {len(missing)} events")
    return [(received_ns[event_id] - appended_ns[event_id]) / 1e9 for event_id in measured]


async def _lines(process: Process) -> Any:
    assert process.stdout is not None
    buffer = b""
    async for chunk in process.stdout:
        buffer += chunk
        *complete, buffer = buffer.split(b"\n")
        for line in complete:
            yield line.decode()


async def _collect(lines: Any, received_ns: dict[str, int], total: int) -> None:
    async for line in lines:
        event_id, at_ns = line.split()
        received_ns[event_id] = int(at_ns)
        if len(received_ns) == total:
            return


async def measure(events: int, interval_s: float, scratch: Path) -> dict[str, list[float]]:
    runtime_box: list[Runtime] = []

    @asynccontextmanager
    async def opener(config: ServerConfig) -> AsyncIterator[Runtime]:
        """`open_runtime`, also handing the runtime to the benchmark (to append through)."""
        async with open_runtime(config, secrets=MemoryStore()) as runtime:
            runtime_box.append(runtime)
            yield runtime

    port = free_port()
    config = ServerConfig(data_dir=scratch / "data", stream_ping_s=15.0)
    app = http_app(config, TOKEN, "127.0.0.1", port, opener=opener)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False, lifespan="on")
    )
    samples: dict[str, list[float]] = {}
    async with anyio.create_task_group() as serving:
        serving.start_soon(server.serve)
        while not server.started:  # noqa: ASYNC110 - uvicorn has no event for "listening"
            await anyio.sleep(0.01)
        base_url = f"http://127.0.0.1:{port}"
        for mode, name in (("sse", "sse"), ("poll", "long_poll")):
            log(f"sse latency: {name}, {events} events {interval_s * 1e3:g} ms apart")
            samples[name] = await measure_path(runtime_box[0], base_url, mode, events, interval_s)
        server.should_exit = True
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--interval-ms", type=float, default=10.0)
    args = parser.parse_args()
    with temp_dir("sse") as scratch:
        samples = anyio.run(measure, args.events, args.interval_ms / 1e3, scratch)
    sse, poll = latency_ms(samples["sse"]), latency_ms(samples["long_poll"])
    targets = [check("sse.median", "<=", TARGET_MEDIAN_MS, "ms", sse["median_ms"])]
    emit(
        {
            "benchmark": "sse_latency",
            "targets": targets,
            "meets_target": all(t["meets"] for t in targets),
            "sse": sse,
            "baseline": {"name": "get_events_long_poll_over_mcp_http", **poll},
            "ratios": {
                "sse_median_vs_baseline": ratio(sse["median_ms"], poll["median_ms"]),
                "sse_p99_vs_baseline": ratio(sse["p99_ms"], poll["p99_ms"]),
            },
            "params": {"events": args.events, "warmup_events": WARMUP_EVENTS, "interval_ms": args.interval_ms},
            "env": environment() | {"anthropic": anthropic.__version__},
        }
    )


if __name__ == "__main__":
    main()
