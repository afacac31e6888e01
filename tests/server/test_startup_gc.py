"""`serve` starts with the cyclic collector off and serves with it on; other commands run with it on.

Each case runs the real entry in a child process (this process's collector is the test runner's). The
child's collector collects at every allocation while it is on, and a callback notes which of the watched
functions were on the stack at each collection: one seen proves the collector was on while it ran.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from processes import python_path_env

REPO_ROOT = Path(__file__).resolve().parents[2]

CHILD = """
import gc, sys

WATCHED = {"build_server", "run_stdio_async", "_dispatch"}
seen = set()


def watch(phase, info):
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_name in WATCHED:
            seen.add(frame.f_code.co_name)
        frame = frame.f_back


gc.callbacks.append(watch)
gc.set_threshold(1)

from server.fronts.cli.entry import main

code = main(sys.argv[1:])
print("RESULT", code, gc.isenabled(), *sorted(seen))
"""


def run_entry(args: list[str], env: dict[str, str]) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, *args],
        cwd=REPO_ROOT,
        env=python_path_env(env),
        stdin=subprocess.DEVNULL,  # serve over stdio reads end of input and stops
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    result = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert result, done.stderr
    return result[-1].split()[1:]


def test_serve_builds_with_the_collector_off_and_serves_with_it_on(subprocess_env: dict[str, str]) -> None:
    code, enabled, *seen = run_entry(["serve"], subprocess_env)
    assert (code, enabled) == ("0", "True")
    assert "build_server" not in seen  # start-up ran without the collector...
    assert "run_stdio_async" in seen  # ...and settle_heap turned it on before serving


def test_other_commands_run_with_the_collector_on(subprocess_env: dict[str, str]) -> None:
    code, enabled, *seen = run_entry(["vault", "list"], subprocess_env)
    assert (code, enabled) == ("0", "True")
    assert "_dispatch" in seen
