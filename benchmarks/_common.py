"""What every benchmark shares: figures from samples, the one JSON line, temp data dirs, child processes.

A benchmark prints exactly one JSON object on stdout (progress goes to stderr) with:
`benchmark`, `targets` (each: metric, op, value, unit, measured, meets), `meets_target` (all of
them met), its figures, a `baseline` measured in the same run, `ratios` against that baseline,
`params` and `env`.
"""

from __future__ import annotations

import json
import os
import platform
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

REPO_ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable

# The store's own settings, copied here so raw-sqlite baselines run under the same durability.
_LOAD_AT_START = os.getloadavg()[0]

SQLITE_PRAGMAS = ("pragma journal_mode = wal", "pragma synchronous = normal", "pragma busy_timeout = 10000")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def percentile(samples: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of unsorted samples."""
    ordered = sorted(samples)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def latency_ms(samples_s: Sequence[float]) -> dict[str, float | int]:
    """Median, p99 and friends of durations given in seconds, in milliseconds."""
    return {
        "n": len(samples_s),
        "median_ms": round(statistics.median(samples_s) * 1e3, 4),
        "p90_ms": round(percentile(samples_s, 90) * 1e3, 4),
        "p99_ms": round(percentile(samples_s, 99) * 1e3, 4),
        "mean_ms": round(statistics.fmean(samples_s) * 1e3, 4),
        "min_ms": round(min(samples_s) * 1e3, 4),
        "max_ms": round(max(samples_s) * 1e3, 4),
    }


def seconds(samples_s: Sequence[float]) -> dict[str, float | int]:
    """Median and spread of durations of a second or so, in seconds."""
    return {
        "n": len(samples_s),
        "median_s": round(statistics.median(samples_s), 4),
        "min_s": round(min(samples_s), 4),
        "max_s": round(max(samples_s), 4),
        "mean_s": round(statistics.fmean(samples_s), 4),
    }


def ratio(value: float, baseline: float) -> float:
    return round(value / baseline, 3) if baseline else float("inf")


def check(metric: str, op: Literal["<=", ">="], value: float, unit: str, measured: float) -> dict[str, Any]:
    """One target from the issue, with what this run measured and whether it meets it."""
    met = measured <= value if op == "<=" else measured >= value
    return {"metric": metric, "op": op, "value": value, "unit": unit, "measured": measured, "meets": met}


def environment() -> dict[str, Any]:
    """Enough about the machine to compare two runs."""
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "sqlite": sqlite3.sqlite_version,
        "mcp": metadata.version("mcp"),
        "pydantic": metadata.version("pydantic"),
        # Other work on the machine skews absolute figures (ratios to the baseline less so).
        "load_avg_1m": {"start": round(_LOAD_AT_START, 2), "end": round(os.getloadavg()[0], 2)},
    }


def emit(result: dict[str, Any]) -> None:
    """The benchmark's one line on stdout."""
    print(json.dumps(result), flush=True)


@contextmanager
def temp_dir(prefix: str) -> Iterator[Path]:
    """A scratch directory, removed afterwards (also on failure)."""
    with tempfile.TemporaryDirectory(prefix=f"ms-bench-{prefix}-") as path:
        yield Path(path)


def child_env(data_dir: Path | None = None) -> dict[str, str]:
    """Extra environment for a server child (the SDK adds HOME, PATH and a few more)."""
    env = {
        "MANAGED_SESSIONS_MODEL": "claude-bench-model",
        "ANTHROPIC_BASE_URL": "http://127.0.0.1:9",  # nothing here may reach a real model
    }
    if data_dir is not None:
        env["MANAGED_SESSIONS_DATA_DIR"] = str(data_dir)
    if os.environ.get("PYTHONDONTWRITEBYTECODE"):
        env["PYTHONDONTWRITEBYTECODE"] = os.environ["PYTHONDONTWRITEBYTECODE"]
    return env


def now() -> float:
    return time.perf_counter()


def free_port() -> int:
    """A loopback port nothing listens on (for a server the benchmark starts)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ModelChild:
    """A scripted model server in a child process (a benchmark script run with `args`), so its own speed
    stays out of this process's figures: it prints its base URL on start, and on stdin's close a JSON line
    of the protocol violations it saw."""

    def __init__(self, script: str, *args: str) -> None:
        self.proc = subprocess.Popen([PYTHON, script, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        self.base_url = self.proc.stdout.readline().strip()
        assert self.base_url.startswith("http://"), self.base_url

    def close(self) -> dict[str, Any]:
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self.proc.stdin.close()
        line = self.proc.stdout.readline()
        self.proc.wait(timeout=30)
        return json.loads(line) if line else {"violation_count": -1}
