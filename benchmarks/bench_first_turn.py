"""The first model turn after the server starts, against later turns: is the model SDK warm by then?

Each run spawns a fresh `python -m server serve` child (raw JSON-RPC lines over stdio), makes one session and
sends it messages that the scripted model (`tests/model_server.py` in a child process, via
`bench_agent_loop.py --serve-model`) answers at once with text: no tool, so no sandbox. A message's time is
its `send_message` round trip (the tool returns when the session is idle again).

Two kinds of run, alternating: *settled*, where the first message goes once the server has logged that its
model clients are ready (a client that connects at start-up and sends its first message a moment later), and
*immediate*, where it goes right after the `initialize` answer (a client that sends at once; the first turn
then waits for whatever warming is left). Target: settled first turn / median of the later turns <= 1.5
(median over runs). Baseline: the later turns of the same run.

    .venv/bin/python benchmarks/bench_first_turn.py [--runs 5] [--later 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from _common import REPO_ROOT, ModelChild, check, child_env, emit, environment, log, now, temp_dir

sys.path.insert(0, str(REPO_ROOT / "tests"))

from stdio_child import StdioServer

TARGET_RATIO = 1.5
READY_LINE = "model clients ready"
HERE = Path(__file__).resolve().parent


class Server(StdioServer):
    """The server child, and when it logged its model clients ready."""

    def wait_ready(self, timeout_s: float) -> float | None:
        """Seconds from spawn until the server logged its model clients ready (None: not within `timeout_s`)."""
        deadline = now() + timeout_s
        while now() < deadline:
            if READY_LINE in self.stderr_path.read_text(encoding="utf-8", errors="replace"):
                return now() - self.spawned
            time.sleep(0.01)
        return None


def timed_message(server: Server, session_id: str) -> float:
    start = now()
    outcome = server.call("send_message", {"session_id": session_id, "text": "hello", "wait_seconds": 30})
    elapsed = now() - start
    assert outcome["status"] == "idle", outcome
    return elapsed


def one_run(env: dict[str, str], scratch: Path, index: int, settled: bool, args: argparse.Namespace) -> dict:
    server = Server(env | {"MANAGED_SESSIONS_DATA_DIR": str(scratch / f"data{index}")}, scratch / f"s{index}.log")
    try:
        session_id = server.call("create_session", {})["id"]
        ready_s = server.wait_ready(args.ready_timeout) if settled else None
        first = timed_message(server, session_id)
        later = [timed_message(server, session_id) for _ in range(args.later)]
        other_session = server.call("create_session", {})["id"]
        other_first = timed_message(server, other_session)
    finally:
        server.stop()
    later_median = statistics.median(later)
    return {
        "settled": settled,
        "spawn_to_initialize_s": round(server.initialized - server.spawned, 4),
        "spawn_to_ready_s": None if ready_s is None else round(ready_s, 4),
        "first_ms": round(first * 1000, 2),
        "later_median_ms": round(later_median * 1000, 2),
        "new_session_first_ms": round(other_first * 1000, 2),
        "ratio": round(first / later_median, 3),
    }


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    if not runs:
        return {"n": 0}
    return {
        "n": len(runs),
        "first_median_ms": round(statistics.median(r["first_ms"] for r in runs), 2),
        "later_median_ms": round(statistics.median(r["later_median_ms"] for r in runs), 2),
        "ratio_median": round(statistics.median(r["ratio"] for r in runs), 3),
        "ratio_max": max(r["ratio"] for r in runs),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="server starts of each kind (settled, immediate)")
    parser.add_argument("--later", type=int, default=5, help="messages after the first, per start")
    parser.add_argument("--ready-timeout", type=float, default=30.0, help="longest wait for the ready log line")
    args = parser.parse_args()
    model = ModelChild(str(HERE / "bench_agent_loop.py"), "--serve-model")
    env = {**os.environ, **child_env()}
    env.update(ANTHROPIC_BASE_URL=model.base_url, ANTHROPIC_API_KEY="test-key", MANAGED_SESSIONS_MODEL="claude-test")
    env["MANAGED_SESSIONS_WARM_POOL"] = "0"  # children are killed: a pool container of a temp store would outlive them
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p)
    runs: list[dict[str, Any]] = []
    try:
        with temp_dir("first-turn") as scratch:
            for index in range(2 * args.runs):
                runs.append(one_run(env, scratch, index, settled=index % 2 == 0, args=args))
                log(f"first_turn: run {index}: {runs[-1]}")
    finally:
        model_result = model.close()
    settled = summary([r for r in runs if r["settled"]])
    immediate = summary([r for r in runs if not r["settled"]])
    targets = [check("settled.first_vs_later_ratio", "<=", TARGET_RATIO, "x", settled["ratio_median"])]
    emit(
        {
            "benchmark": "first_turn",
            "targets": targets,
            "meets_target": all(t["meets"] for t in targets),
            "settled": settled,
            "immediate": immediate,
            "baseline": {"name": "later_turns_same_server", "median_ms": settled["later_median_ms"]},
            "ratios": {
                "settled_first_vs_later": settled["ratio_median"],
                "immediate_first_vs_later": immediate.get("ratio_median"),
            },
            "runs": runs,
            "model_server": model_result,
            "params": {"runs": args.runs, "later": args.later},
            "env": environment(),
        }
    )


if __name__ == "__main__":
    main()
