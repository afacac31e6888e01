"""`GET /v1/sessions/{id}` through the official `anthropic` SDK, against a bare Starlette route.

Our server runs as a child process (`python -m server serve --transport http`, a temp data dir, a token in
the environment); the baseline is a second child, `_bare_rest_server.py`, a bare Starlette route under the same
uvicorn settings that answers the very JSON our server returned for that session. One SDK client type makes
both calls (`client.beta.sessions.retrieve`), timed in interleaved blocks so drift hits both alike.

Target: our median at most twice the bare route's.

    .venv/bin/python benchmarks/bench_rest_roundtrip.py [--calls 1000]
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import anthropic
from _common import (
    PYTHON,
    REPO_ROOT,
    check,
    child_env,
    emit,
    environment,
    free_port,
    latency_ms,
    log,
    now,
    ratio,
    temp_dir,
)

TARGET_RATIO = 2.0
WARMUP_CALLS = 100
BLOCK = 100
TOKEN = "bench-token-" + "b" * 32
BARE_SERVER = Path(__file__).resolve().parent / "_bare_rest_server.py"


def wait_for(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listened on port {port}")


def start(args: list[str], env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [PYTHON, *args], env={**os.environ, **env}, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    wait_for(port, process)
    return process


def timed(client: anthropic.Anthropic, session_id: str, count: int) -> list[float]:
    samples = []
    for _ in range(count):
        start_s = now()
        client.beta.sessions.retrieve(session_id)
        samples.append(now() - start_s)
    return samples


def measure(calls: int, scratch: Path) -> dict[str, Any]:
    ours_port, bare_port = free_port(), free_port()
    env = {**child_env(scratch / "data"), "MANAGED_SESSIONS_TOKEN": TOKEN}
    ours = start(["-m", "server", "serve", "--transport", "http", "--port", str(ours_port)], env, ours_port)
    bare: subprocess.Popen[bytes] | None = None
    try:
        server = anthropic.Anthropic(base_url=f"http://127.0.0.1:{ours_port}", api_key=TOKEN, max_retries=0)
        agent = server.beta.agents.create(name="bench", model="claude-bench-model")
        environment_ = server.beta.environments.create(name="bench")
        session = server.beta.sessions.create(agent=agent.id, environment_id=environment_.id, title="bench")
        body = server.beta.sessions.with_raw_response.retrieve(session.id).http_response.read()
        (scratch / "body.json").write_bytes(body)
        bare = start([str(BARE_SERVER), str(bare_port)], {"BARE_BODY_FILE": str(scratch / "body.json")}, bare_port)
        floor = anthropic.Anthropic(base_url=f"http://127.0.0.1:{bare_port}", api_key=TOKEN, max_retries=0)
        plan = {"get_session": server, "bare_route": floor}
        for client in plan.values():
            timed(client, session.id, WARMUP_CALLS)
        samples: dict[str, list[float]] = {name: [] for name in plan}
        for block in range(calls // BLOCK):
            for name, client in plan.items():
                samples[name] += timed(client, session.id, BLOCK)
            log(f"rest roundtrip: block {block + 1}/{calls // BLOCK}")
        return {"samples": samples, "response_bytes": len(body)}
    finally:
        for process in (ours, bare):
            if process is not None:
                process.terminate()
                process.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1000)
    args = parser.parse_args()
    with temp_dir("rest") as scratch:
        measured = measure(args.calls, scratch)
    ours = latency_ms(measured["samples"]["get_session"])
    floor = latency_ms(measured["samples"]["bare_route"])
    median_ratio = ratio(ours["median_ms"], floor["median_ms"])
    targets = [check("get_session.median_vs_bare_route", "<=", TARGET_RATIO, "x", median_ratio)]
    emit(
        {
            "benchmark": "rest_roundtrip",
            "targets": targets,
            "meets_target": all(t["meets"] for t in targets),
            "get_session": ours | {"response_bytes": measured["response_bytes"]},
            "baseline": {"name": "bare_starlette_route_constant", **floor},
            "ratios": {
                "get_session_median_vs_baseline": median_ratio,
                "get_session_p99_vs_baseline": ratio(ours["p99_ms"], floor["p99_ms"]),
            },
            "params": {"calls": args.calls, "warmup_calls": WARMUP_CALLS, "block": BLOCK, "client": "anthropic"},
            "env": environment() | {"anthropic": anthropic.__version__},
        }
    )


if __name__ == "__main__":
    main()
