"""Running the synchronous store off the event loop."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import ParamSpec, TypeVar

import anyio
import anyio.to_thread

__all__ = ["in_thread"]

P = ParamSpec("P")
T = TypeVar("T")

# The store serialises on one connection anyway; a few threads keep reads from queueing behind a slow write.
_limiter: anyio.CapacityLimiter | None = None


async def in_thread(fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """Runs `fn(*args, **kwargs)` in a worker thread and returns its result."""
    global _limiter
    if _limiter is None:
        _limiter = anyio.CapacityLimiter(4)
    return await anyio.to_thread.run_sync(partial(fn, *args, **kwargs), limiter=_limiter)
