"""Running blocking libraries (sqlite3, the docker SDK) off the event loop."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import ParamSpec, TypeVar

import anyio
import anyio.to_thread

__all__ = ["in_docker_thread", "in_thread"]

P = ParamSpec("P")
T = TypeVar("T")

# The store serialises on one connection anyway; a few threads keep reads from queueing behind a slow write.
_limiter: anyio.CapacityLimiter | None = None
# The docker SDK pools 10 connections; more threads than that would only queue inside it.
_docker_limiter: anyio.CapacityLimiter | None = None


async def in_thread(fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """Runs `fn(*args, **kwargs)` in a worker thread and returns its result."""
    global _limiter
    if _limiter is None:
        _limiter = anyio.CapacityLimiter(4)
    return await anyio.to_thread.run_sync(partial(fn, *args, **kwargs), limiter=_limiter)


async def in_docker_thread(fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """Like `in_thread`, for docker SDK calls (a pool of its own: a slow build must not stall the store)."""
    global _docker_limiter
    if _docker_limiter is None:
        _docker_limiter = anyio.CapacityLimiter(8)
    return await anyio.to_thread.run_sync(partial(fn, *args, **kwargs), limiter=_docker_limiter)
