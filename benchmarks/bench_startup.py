"""Server start to first answered request over stdio.

Each run spawns `python -m server serve` as a child, connects the SDK `Client` (which probes the
protocol version), and calls `list_sessions`; the figure is spawn to that answer. The data dir is
one a previous start has initialised (the usual case: its store, and the tools' schemas in
`cache/mcp-tools.json`); starts on a brand-new data dir (creating the store, running migrations,
making and writing the schemas) are reported beside it. Baselines in the same run, interleaved
with it: the same for the trivial SDK server (`_trivial_server.py`), and a bare `python -c pass`.

Target: median <= 1.5 s (existing data dir).

    .venv/bin/python benchmarks/bench_startup.py [--runs 10]
"""

from __future__ import annotations

import argparse
import subprocess
from pathlib import Path
from typing import Any

import anyio
from _common import (
    PYTHON,
    REPO_ROOT,
    check,
    child_env,
    emit,
    environment,
    log,
    now,
    ratio,
    seconds,
    temp_dir,
)
from mcp import Client, StdioServerParameters

TARGET_VS_TRIVIAL = 1.2
"""Issue 14: stdio start-up within 1.2x of a trivial SDK server's, spawn to first answer."""
TARGET_MEDIAN_S = 1.5
TRIVIAL_SERVER = Path(__file__).resolve().parent / "_trivial_server.py"


async def first_answer(params: StdioServerParameters, tool: str, arguments: dict[str, Any]) -> dict[str, float]:
    """Spawn to connected, spawn to first tool answer, and the shutdown after it."""
    start = now()
    async with Client(params) as client:
        connected = now()
        result = await client.call_tool(tool, arguments)
        answered = now()
        if result.is_error:
            raise RuntimeError(f"{tool} failed: {result.content}")
    return {"connected": connected - start, "answered": answered - start, "shutdown": now() - answered}


def interpreter_start() -> float:
    start = now()
    subprocess.run([PYTHON, "-c", "pass"], check=True, env=child_env(), cwd=REPO_ROOT)
    return now() - start


def ours(data_dir: Path) -> StdioServerParameters:
    return StdioServerParameters(command=PYTHON, args=["-m", "server", "serve"], env=child_env(data_dir), cwd=REPO_ROOT)


async def measure(runs: int, scratch: Path) -> dict[str, list[dict[str, float]]]:
    sdk = StdioServerParameters(command=PYTHON, args=[str(TRIVIAL_SERVER)], env=child_env(), cwd=REPO_ROOT)
    existing = scratch / "existing"
    # Warm-up (not counted): initialises the data dir and brings the files into the page cache.
    await first_answer(ours(existing), "list_sessions", {})
    await first_answer(sdk, "constant", {"session_id": "x"})
    samples: dict[str, list[dict[str, float]]] = {"ours": [], "ours_fresh": [], "sdk": [], "interpreter": []}
    for run in range(runs):
        samples["ours"].append(await first_answer(ours(existing), "list_sessions", {}))
        samples["sdk"].append(await first_answer(sdk, "constant", {"session_id": "x"}))
        samples["ours_fresh"].append(await first_answer(ours(scratch / f"fresh-{run}"), "list_sessions", {}))
        samples["interpreter"].append({"answered": await anyio.to_thread.run_sync(interpreter_start)})
        log(f"startup: run {run + 1}/{runs}: {samples['ours'][-1]['answered']:.3f} s")
    return samples


def phases(runs: list[dict[str, float]]) -> dict[str, Any]:
    return {
        **seconds([r["answered"] for r in runs]),
        "connected_median_s": seconds([r["connected"] for r in runs])["median_s"],
        "shutdown_median_s": seconds([r["shutdown"] for r in runs])["median_s"],
    }


def report(runs: int, samples: dict[str, list[dict[str, float]]]) -> dict[str, Any]:
    first, fresh, sdk = phases(samples["ours"]), phases(samples["ours_fresh"]), phases(samples["sdk"])
    interpreter = seconds([r["answered"] for r in samples["interpreter"]])
    targets = [
        check("first_answer.median_s", "<=", TARGET_MEDIAN_S, "s", first["median_s"]),
        check(
            "first_answer.median_vs_trivial_server",
            "<=",
            TARGET_VS_TRIVIAL,
            "x",
            ratio(first["median_s"], sdk["median_s"]),
        ),
    ]
    return {
        "benchmark": "startup",
        "targets": targets,
        "meets_target": all(t["meets"] for t in targets),
        "first_answer": first,
        "first_answer_fresh_data_dir": fresh,
        "baseline": {"name": "sdk_trivial_server_first_answer", **sdk},
        "interpreter_start": interpreter,
        "ratios": {
            "median_vs_baseline": ratio(first["median_s"], sdk["median_s"]),
            "max_vs_baseline": ratio(first["max_s"], sdk["max_s"]),
            "fresh_median_vs_baseline": ratio(fresh["median_s"], sdk["median_s"]),
            "median_vs_interpreter": ratio(first["median_s"], interpreter["median_s"]),
        },
        "overhead_over_baseline_s": round(first["median_s"] - sdk["median_s"], 4),
        "params": {"runs": runs, "first_tool": "list_sessions", "baseline_tool": "constant"},
        "env": environment(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="timed starts of each kind")
    args = parser.parse_args()
    with temp_dir("startup") as scratch:
        samples = anyio.run(measure, args.runs, scratch)
    emit(report(args.runs, samples))


if __name__ == "__main__":
    main()
