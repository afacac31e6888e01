"""Runs every `bench_*.py` here, one after the other, and prints their JSON objects, one per line.

Each benchmark's progress goes to stderr. A benchmark that crashes or prints no JSON object gets a
line `{"benchmark": ..., "error": ...}` instead. Exit status: 1 if any benchmark failed to run,
or, with `--strict`, if any missed its target; 0 otherwise.

    .venv/bin/python benchmarks/run_all.py [--quick] [--strict] [--only store,startup]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

QUICK_ARGS = {  # a smoke run: same code paths, smaller loops, figures not comparable to full runs
    "stdio_roundtrip": ["--calls", "200"],
    "startup": ["--runs", "3"],
    "first_turn": ["--runs", "2", "--later", "3"],
    "store": ["--events", "20000", "--reads", "100", "--appends", "1000"],
    "agent_loop": ["--rounds", "6", "--chain", "3", "--sessions", "5", "--turns", "10", "--resume-sessions", "5"],
    "providers": ["--rounds", "10", "--chain", "4"],
    "sandbox": ["--calls", "200", "--baseline-calls", "40", "--file-calls", "60", "--cold", "3", "--sessions", "5"],
    "repositories": ["--files", "200", "--runs", "2"],
    "vault": ["--samples", "30", "--messages", "2"],
    "sse_latency": ["--events", "200"],
    "rest_roundtrip": ["--calls", "200"],
    "file_transfer": ["--size-mb", "10", "--rounds", "2"],
    "egress": ["--size-mb", "20", "--rounds", "2", "--connects", "40"],
    "egress_proxy": ["--size-mb", "20", "--rounds", "2", "--connects", "40"],
    "warm_pool": ["--rounds", "3", "--later", "5", "--sessions", "5", "--bursts", "1", "--big-pool", "2"],
    "many_sessions": ["--sizes", "20,60,200", "--containers", "5", "--loops", "2", "--rounds", "4", "--block", "10"],
}


def run(script: Path, quick: bool) -> dict[str, object]:
    name = script.stem.removeprefix("bench_")
    extra = QUICK_ARGS.get(name, []) if quick else []
    print(f"run_all: {name} {' '.join(extra)}".rstrip(), file=sys.stderr, flush=True)
    done = subprocess.run([sys.executable, str(script), *extra], stdout=subprocess.PIPE, text=True, check=False)
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    if done.returncode != 0 or len(lines) != 1:
        return {"benchmark": name, "error": f"exit status {done.returncode}, {len(lines)} line(s) on stdout"}
    try:
        result = json.loads(lines[0])
    except json.JSONDecodeError as exc:
        return {"benchmark": name, "error": f"stdout is not JSON: {exc}"}
    return result if isinstance(result, dict) else {"benchmark": name, "error": "stdout is not a JSON object"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller loops (a smoke run)")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument("--only", default="", help="comma-separated names, e.g. store,startup")
    args = parser.parse_args()
    wanted = {name.strip() for name in args.only.split(",") if name.strip()}
    scripts = [s for s in sorted(HERE.glob("bench_*.py")) if not wanted or s.stem.removeprefix("bench_") in wanted]
    failed = missed = False
    for script in scripts:
        result = run(script, args.quick)
        print(json.dumps(result), flush=True)
        failed |= "error" in result
        missed |= result.get("meets_target") is False
    return 1 if failed or (args.strict and missed) else 0


if __name__ == "__main__":
    sys.exit(main())
