"""The bytes of one proxied connection, relayed both ways until both ends are done or nothing moves for a while.

A relay is the proxy's whole cost on a download, so between two of the proxy's own sockets (`SocketEnd`) the bytes
do not pass through Python objects: on Linux they are `splice`d socket to pipe to socket inside the kernel, up to a
pipe's worth (1 MiB where the kernel allows it) per call; elsewhere they are read into one reused buffer and sent
from it. Any other stream is copied chunk by chunk (256 KiB reads). Bytes a head parser had already buffered go
first. Either end failing ends the whole relay; an end closing its sending side is passed on as a half-close, as
TCP would.
From the moment either end closes its sending side, the other direction has the shorter `half_closed_timeout_s`
to go quiet in: a sandbox process that died (its kernel closes its sockets, which looks like a half-close) must
not keep its tunnels to an upstream that never answers, and so its session's connection slots, for the whole idle
timeout.

A spliced direction that turns out to be a bulk transfer (`BULK_BYTES` moved since it last went quiet) moves on
to a worker thread of its own, if one of the owner's `threads` is free: the thread sleeps in `poll` and splices
the moment the kernel has bytes, instead of waiting for its turn on the event loop, which on a busy machine
cost a third of a download's throughput. It reports back every `SLICE_S` (the loop moves the idle deadline) and
gives its thread up once a slice moved nothing; the relay's end (cancellation) wakes it through a pipe of its
own, so it never outlives the relay.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import select
import socket
import time

import anyio
import anyio.lowlevel
import anyio.to_thread
from anyio.abc import ByteReceiveStream, ByteStream
from anyio.streams.buffered import BufferedByteReceiveStream

from server.egress.sockets import SocketEnd

__all__ = ["BULK_BYTES", "CHUNK_BYTES", "PIPE_BYTES", "SLICE_S", "Relay"]

CHUNK_BYTES = 256 * 1024
"""One read when copying: what asyncio's transports read at once, so 100 MB is a few hundred iterations."""

PIPE_BYTES = 1024 * 1024
"""The pipe between two spliced sockets (Linux's default cap for unprivileged pipes; 64 KiB if refused)."""

BULK_BYTES = 1024 * 1024
"""What a spliced direction moves on the event loop before it may move on to a thread (an API call never does)."""

SLICE_S = 1.0
"""How long a relay thread runs before reporting back: the idle deadline moves, a quiet direction gives it up."""

_SPLICE = hasattr(os, "splice")
_SPLICE_FLAGS = getattr(os, "SPLICE_F_MOVE", 0) | getattr(os, "SPLICE_F_NONBLOCK", 0)
_NO_SPLICE = (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP)  # a kernel or socket type that cannot splice

_GONE = (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError)


class _CannotSplice(Exception):
    """The kernel or the socket type does not splice (the first call said so, before any byte moved)."""


class Relay:
    """One connection's relay. `scope` carries the idle deadline, moved forward by traffic either way."""

    def __init__(
        self,
        idle_timeout_s: float,
        half_closed_timeout_s: float | None = None,
        *,
        threads: anyio.CapacityLimiter | None = None,
    ) -> None:
        """`threads` bounds the bulk directions on worker threads at once (shared by the owner's relays); None: none."""
        self._idle_timeout_s = idle_timeout_s
        self._threads = threads
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
            if isinstance(source, BufferedByteReceiveStream):
                if source.buffer:  # what came with the head (a TLS hello after the CONNECT, a body's start)
                    data = await source.receive(len(source.buffer))
                    self.touch()
                    await sink.send(data)
                if isinstance(source.receive_stream, SocketEnd):
                    source = source.receive_stream  # nothing more is buffered above the socket
            if isinstance(source, SocketEnd) and isinstance(sink, SocketEnd):
                await self._between_sockets(source.raw, sink.raw)
            else:
                while True:
                    data = await source.receive(CHUNK_BYTES)
                    self.touch()
                    await sink.send(data)
        except anyio.EndOfStream:
            pass
        except _GONE:
            self.broken = True
            self.scope.cancel()
            return
        self._idle_timeout_s = min(self._idle_timeout_s, self._half_closed_timeout_s)  # see the module docstring
        self.touch()
        with contextlib.suppress(*_GONE):
            await sink.send_eof()

    async def _between_sockets(self, source: socket.socket, sink: socket.socket) -> None:
        """Relays until `source` ends: spliced where the kernel can, else through one reused buffer."""
        if _SPLICE:
            try:
                await self._splice(source, sink)
                return
            except _CannotSplice:
                pass
        await self._copy(source, sink)

    async def _splice(self, source: socket.socket, sink: socket.socket) -> None:
        """Socket to pipe to socket in the kernel; `_CannotSplice` if the first call says it cannot be done."""
        pipe: _Pipe | None = None  # made at the first byte: an idle tunnel holds no pipe
        first = True
        since_quiet = 0  # bytes moved on the loop since the direction last went quiet
        try:
            while True:
                if pipe is None:
                    await anyio.wait_readable(source)
                    pipe = _Pipe()
                await self._drain(pipe, sink)
                if since_quiet >= BULK_BYTES and self._threads is not None and self._threads.available_tokens >= 1:
                    if await self._in_thread(source, sink, pipe):
                        return
                    since_quiet = 0
                    continue
                try:
                    moved = os.splice(source.fileno(), pipe.write_end, PIPE_BYTES, flags=_SPLICE_FLAGS)
                except BlockingIOError:
                    await anyio.wait_readable(source)
                    continue
                except OSError as exc:
                    if first and exc.errno in _NO_SPLICE:
                        raise _CannotSplice from exc
                    raise
                first = False
                if not moved:
                    return
                self.touch()
                since_quiet += moved
                pipe.pending = moved
                await self._drain(pipe, sink)
                await anyio.lowlevel.checkpoint()  # a fast sender must not keep the other connections waiting
        finally:
            if pipe is not None:
                pipe.close()

    @staticmethod
    async def _drain(pipe: _Pipe, sink: socket.socket) -> None:
        """Splices what sits in `pipe` out to `sink`, waiting on the loop while `sink` is full."""
        while pipe.pending:
            try:
                pipe.pending -= os.splice(pipe.read_end, sink.fileno(), pipe.pending, flags=_SPLICE_FLAGS)
            except BlockingIOError:
                await anyio.wait_writable(sink)

    async def _in_thread(self, source: socket.socket, sink: socket.socket, pipe: _Pipe) -> bool:
        """Runs the direction on a worker thread, slice by slice: True once `source` ended, False once it went quiet."""
        assert self._threads is not None
        stop_read, stop_write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        failure: OSError | None = None  # raised after the task group, which would wrap it in an exception group
        ended = False
        try:
            async with anyio.create_task_group() as group:
                group.start_soon(_wake_on_cancel, stop_write)
                try:
                    while True:
                        moved, ended = await anyio.to_thread.run_sync(
                            _splice_slice, source.fileno(), sink.fileno(), pipe, stop_read, limiter=self._threads
                        )
                        if moved:
                            self.touch()
                        if ended or not moved:
                            break
                except OSError as exc:  # an end is gone (reset, say): the relay's usual failure
                    failure = exc
                group.cancel_scope.cancel()
            if failure is not None:
                raise failure
            return ended
        finally:
            os.close(stop_read)
            os.close(stop_write)

    async def _copy(self, source: socket.socket, sink: socket.socket) -> None:
        """`recv_into` one buffer, `send` from it: no new object per chunk."""
        buffer = bytearray(CHUNK_BYTES)
        view = memoryview(buffer)
        while True:
            try:
                received = source.recv_into(buffer)
            except BlockingIOError:
                await anyio.wait_readable(source)
                continue
            if not received:
                return
            self.touch()
            sent = 0
            while sent < received:
                try:
                    sent += sink.send(view[sent:received])
                except BlockingIOError:
                    await anyio.wait_writable(sink)
            await anyio.lowlevel.checkpoint()


class _Pipe:
    """A spliced direction's pipe, and how many bytes sit in it (spliced in from the source, not yet out)."""

    def __init__(self) -> None:
        self.read_end, self.write_end = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        with contextlib.suppress(OSError):  # over the per-user pipe budget: the default size still works
            fcntl.fcntl(self.write_end, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
        self.pending = 0

    def close(self) -> None:
        os.close(self.read_end)
        os.close(self.write_end)


async def _wake_on_cancel(stop: int) -> None:
    """Sleeps until cancelled, then makes `stop` readable: the relay ended, so must its thread."""
    try:
        await anyio.sleep_forever()
    finally:
        with contextlib.suppress(OSError):
            os.write(stop, b"!")


def _splice_slice(source: int, sink: int, pipe: _Pipe, stop: int) -> tuple[int, bool]:
    """On a worker thread: splices `source` to `sink` for up to `SLICE_S`, blocking in `poll` between bytes.

    Returns (bytes moved, whether `source` ended); early, having moved what it had, once `stop` is readable.
    """
    deadline = time.monotonic() + SLICE_S
    moved = 0
    while True:
        if pipe.pending:
            try:
                out = os.splice(pipe.read_end, sink, pipe.pending, flags=_SPLICE_FLAGS)
            except BlockingIOError:
                if not _wait(sink, select.POLLOUT, stop, deadline):
                    return moved, False
                continue
            pipe.pending -= out
            moved += out
            continue
        if time.monotonic() >= deadline:
            return moved, False
        try:
            got = os.splice(source, pipe.write_end, PIPE_BYTES, flags=_SPLICE_FLAGS)
        except BlockingIOError:
            if not _wait(source, select.POLLIN, stop, deadline):
                return moved, False
            continue
        if not got:
            return moved, True
        pipe.pending = got


def _wait(fd: int, events: int, stop: int, deadline: float) -> bool:
    """Blocks until `fd` is ready for `events`: False if `stop` became readable or `deadline` passed first."""
    poller = select.poll()
    poller.register(fd, events)
    poller.register(stop, select.POLLIN)
    remaining_ms = max(0, round((deadline - time.monotonic()) * 1000))
    ready = poller.poll(remaining_ms)
    return bool(ready) and all(ready_fd != stop for ready_fd, _ in ready)
