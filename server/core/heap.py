"""The cyclic garbage collector and a long-running server's heap.

A full (generation 2) collection walks every object the collector tracks, and most of a server's heap is
made once and lives as long as the process: the modules, classes and pydantic schemas of its imports, the
wired services, and the model SDK (some 3,000 modules, imported on the first model call). With ten sessions
in tool loops on a busy 2-CPU machine, walking those ~240,000 objects stalled the event loop for 60-400 ms
every few seconds, and every client saw the stall in its p99 (`benchmarks/bench_many_sessions.py`).

`settle_heap` moves the objects alive at such a moment into the permanent generation (`gc.freeze`), which
collections skip. Frozen objects are still freed by reference counting; only cyclic garbage among them
would stay, and each moment settles once per process, so what a freeze can keep is bounded.

When the collector is off (`serve` starts with it off, see `server.fronts.cli.entry`), a moment freezes
without collecting first and turns the collector back on: a full collection there would walk the whole
start-up heap on the way to the first answer, to free the little cyclic garbage start-up leaves (under
2 MB), which then stays frozen. The collector must not simply be turned on unfrozen either: with it off,
every object is in the youngest generation, and the first young collection would walk them all.
"""

from __future__ import annotations

import gc
import logging
import threading

__all__ = ["settle_heap"]

logger = logging.getLogger(__name__)

_settled: set[str] = set()
_lock = threading.Lock()


def settle_heap(moment: str) -> bool:
    """Collects (if the collector is on), then freezes what is left, the first time `moment` (e.g. 'start-up')
    comes, and leaves the collector on; True if it did."""
    with _lock:
        if moment in _settled:
            return False
        _settled.add(moment)
    if gc.isenabled():
        gc.collect()
    gc.freeze()
    gc.enable()
    if logger.isEnabledFor(logging.DEBUG):  # counting walks every frozen object: 14 ms at start-up
        logger.debug("heap settled after %s: %d objects frozen", moment, gc.get_freeze_count())
    return True
