"""When the work a server starts in the background may begin: after its first answer, not during its handshake.

The start-up reap, the warm pools' first containers and the import of the model SDKs (a second or more of the
interpreter lock) would otherwise run while the client that just spawned the server waits for its handshake and
its first answer, on machines with as few as 2 CPUs. A front door calls `answered()` after each tool call it
answers; the work waits for the first, then `SETTLE_S` more for what a client sends right after its first call
(the SDK's client lists the tools before it checks that first result), or until `FALLBACK_S` after start-up when
no call comes (a client that only lists, an HTTP server nobody calls yet).
"""

from __future__ import annotations

import logging
import math

import anyio

__all__ = ["FALLBACK_S", "SETTLE_S", "StartUp"]

logger = logging.getLogger(__name__)

SETTLE_S = 0.5
"""How long after the first answered call the background work waits: a client's follow-up requests take well under
this, and the first message of a person comes later than it."""

FALLBACK_S = 2.0
"""How long after start-up the background work begins when no call has been answered by then."""


class StartUp:
    """Made when the runtime opens (inside its event loop); `over()` returns once background work may begin."""

    def __init__(self, *, settle_s: float = SETTLE_S, fallback_s: float = FALLBACK_S) -> None:
        self._answered = anyio.Event()
        self._settle_s = settle_s
        self._fallback_at = anyio.current_time() + fallback_s if math.isfinite(fallback_s) else math.inf
        self._over = False

    def answered(self) -> None:
        """Called by a front door after it answered a call (cheap: only the first one counts)."""
        self._answered.set()

    async def over(self) -> None:
        """Waits for the first answer and `settle_s` after it, or until `fallback_s` after start-up if none came."""
        with anyio.CancelScope(deadline=self._fallback_at):
            await self._answered.wait()
        if self._answered.is_set():
            await anyio.sleep(self._settle_s)
        if not self._over:
            self._over = True
            why = "first call answered" if self._answered.is_set() else "no call yet"
            logger.info("start-up over (%s): the background work begins", why)
