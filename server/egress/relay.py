"""The bytes of one proxied connection, relayed both ways until both ends are done or nothing moves for a while.

Reads are large (256 KiB, what asyncio's transports read at once) so a 100 MB download costs a few hundred loop
iterations rather than thousands. Either end failing ends the whole relay; an end closing its sending side is
passed on as a half-close, as TCP would, and from then on the other direction has the shorter `half_closed_timeout_s`
to go quiet in: a sandbox process that died (its kernel closes its sockets, which looks like a half-close) must
not keep its tunnels to an upstream that never answers, and so its session's connection slots, for the whole idle
timeout.
"""

from __future__ import annotations

import contextlib

import anyio
from anyio.abc import ByteReceiveStream, ByteStream

__all__ = ["CHUNK_BYTES", "Relay"]

CHUNK_BYTES = 256 * 1024

_GONE = (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError)


class Relay:
    """One connection's relay. `scope` carries the idle deadline, moved forward by traffic either way."""

    def __init__(self, idle_timeout_s: float, half_closed_timeout_s: float | None = None) -> None:
        self._idle_timeout_s = idle_timeout_s
        self._half_closed_timeout_s = idle_timeout_s if half_closed_timeout_s is None else half_closed_timeout_s
        self.scope = anyio.CancelScope(deadline=anyio.current_time() + idle_timeout_s)
        self.broken = False

    @property
    def timed_out(self) -> bool:
        return self.scope.cancelled_caught and not self.broken

    def touch(self) -> None:
        self.scope.deadline = anyio.current_time() + self._idle_timeout_s

    async def both_ways(self, client_in: ByteReceiveStream, client: ByteStream, upstream: ByteStream) -> None:
        """Relays until both directions have ended, an end fails, or the idle timeout passes."""
        with self.scope:
            async with anyio.create_task_group() as group:
                group.start_soon(self.pump, client_in, upstream)
                group.start_soon(self.pump, upstream, client)

    async def pump(self, source: ByteReceiveStream, sink: ByteStream) -> None:
        """Copies `source` to `sink` until `source` ends (then half-closes `sink`); a failure ends the relay."""
        try:
            while True:
                data = await source.receive(CHUNK_BYTES)
                self.touch()
                await sink.send(data)
        except anyio.EndOfStream:
            self._idle_timeout_s = min(self._idle_timeout_s, self._half_closed_timeout_s)
            self.touch()
            with contextlib.suppress(*_GONE):
                await sink.send_eof()
        except _GONE:
            self.broken = True
            self.scope.cancel()
