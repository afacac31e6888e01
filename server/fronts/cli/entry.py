"""The process entry of `managed-sessions` and `python -m server`: start-up runs without the cyclic collector.

Importing the server and registering its tools allocate some 100,000 long-lived objects, and the collector
would walk them hundreds of times (about 150 ms of a stdio start) to find almost no garbage. So the
collector is off from the first statement; `settle_heap("start-up")` freezes what start-up made and turns
it back on, commands other than `serve` turn it on as soon as they are parsed, and it is on again whichever
way `main` ends. This lives here, not in `cli.main`, which tests import.
"""

from __future__ import annotations

import gc
from collections.abc import Sequence

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    gc.disable()
    try:
        from server.fronts.cli.main import main as run  # imported with the collector off

        return run(argv)
    finally:
        gc.enable()
