"""Running blocking libraries (sqlite3, the docker SDK, the vault and its OS keyring, the model SDKs' import) off
the event loop."""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from functools import partial
from typing import ParamSpec, Protocol, TypeVar

import anyio
import anyio.to_thread

from vault.errors import KeyringUnavailableError

__all__ = [
    "VAULT_CALL_TIMEOUT_S",
    "Busy",
    "InlineReads",
    "in_docker_thread",
    "in_thread",
    "in_vault_thread",
    "made_off_loop",
    "point_read",
]

P = ParamSpec("P")
T = TypeVar("T")

# The store serialises on one connection anyway; a few threads keep reads from queueing behind a slow write.
_limiter: anyio.CapacityLimiter | None = None
# The docker SDK pools 10 connections; more threads than that would only queue inside it.
_docker_limiter: anyio.CapacityLimiter | None = None
# Keyring calls get threads of their own: one that hangs is abandoned, and must not hold a slot the store needs.
_vault_limiter: anyio.CapacityLimiter | None = None

VAULT_CALL_TIMEOUT_S = 30.0
"""A keyring read takes ~25 ms; one that takes 30 s is a daemon that is stopped or waits on an unlock prompt no one
will answer (SecretService has no timeout of its own)."""


async def made_off_loop(made: T | None, make: Callable[[], T]) -> T:
    """`made`, or else `make()` run in a worker thread: for what is slow to make once and made lazily (a model SDK's
    client, whose import takes a second or more, or whose warm-up may be making it under a lock right now), so
    that neither the making nor the wait for it stalls the event loop and every other session with it. A caller
    cancelled meanwhile (an interrupt, a shutdown) goes at once; the thread finishes the making for the next one."""
    return made if made is not None else await anyio.to_thread.run_sync(make, abandon_on_cancel=True)


async def in_thread(fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """Runs `fn(*args, **kwargs)` in a worker thread and returns its result."""
    global _limiter
    if _limiter is None:
        _limiter = anyio.CapacityLimiter(4)
    return await anyio.to_thread.run_sync(partial(fn, *args, **kwargs), limiter=_limiter)


class Busy(Enum):
    """What `InlineReads.read_now` returns when the read would have to wait."""

    BUSY = "busy"


class InlineReads(Protocol):
    def read_now(self, read: Callable[[], T], /) -> T | Busy:
        """`read()` on the calling thread if it would not wait for anything; else `Busy.BUSY`, at once."""
        ...


async def point_read(store: InlineReads, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """A one-row read of `store`: on the event loop when the store is free, else in a worker thread (`in_thread`).

    A primary-key read takes about 40 us; the hop to a worker thread and back took about 80 us more, and more on a
    busy machine (issue 14: `get_session` over stdio). Only for point reads: a scan on the loop would hold up every
    other call for its whole length."""
    found = store.read_now(partial(fn, *args, **kwargs))
    if found is Busy.BUSY:
        return await in_thread(fn, *args, **kwargs)
    return found


async def in_docker_thread(fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """Like `in_thread`, for docker SDK calls (a pool of its own: a slow build must not stall the store)."""
    global _docker_limiter
    if _docker_limiter is None:
        _docker_limiter = anyio.CapacityLimiter(8)
    return await anyio.to_thread.run_sync(partial(fn, *args, **kwargs), limiter=_docker_limiter)


async def in_vault_thread(fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """Like `in_thread`, for vault calls that may reach the OS keyring, which can hang: after
    `VAULT_CALL_TIMEOUT_S` the call is abandoned (its thread finishes on its own) and `KeyringUnavailableError`
    says so."""
    global _vault_limiter
    if _vault_limiter is None:
        _vault_limiter = anyio.CapacityLimiter(4)
    with anyio.move_on_after(VAULT_CALL_TIMEOUT_S) as scope:
        return await anyio.to_thread.run_sync(
            partial(fn, *args, **kwargs), abandon_on_cancel=True, limiter=_vault_limiter
        )
    assert scope.cancelled_caught
    raise KeyringUnavailableError(
        f"the OS keyring did not answer within {VAULT_CALL_TIMEOUT_S:.0f} s: its daemon may be stopped or waiting "
        "for an unlock prompt; restart or unlock it (`managed-sessions doctor` checks it), then retry"
    )
