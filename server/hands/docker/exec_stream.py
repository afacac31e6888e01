"""A `docker exec -i` as a byte stream: stdin out, the process's stdout in, its stderr to the log.

The exec's hijacked connection is wrapped as a native anyio socket stream, so
reads and writes need no worker threads and a cancelled call just stops waiting.
Docker multiplexes the exec's stdout and stderr on that connection in frames (an
8-byte header: stream id, three zero bytes, big-endian length); `ExecStream`
takes them apart, so what reads it (the helper channel) sees plain stdout bytes.
"""

from __future__ import annotations

import logging
import socket
import struct
from typing import Any

import anyio
import anyio.abc
from typing_extensions import override

from server.hands.docker.engine import in_engine
from server.hands.helper.channel import ChannelClosedError

__all__ = ["ExecStream", "open_exec"]

logger = logging.getLogger(__name__)

FRAME_HEADER = struct.Struct(">BxxxL")
STDERR = 2


class ExecStream(anyio.abc.ByteStream):
    """An exec's connection with Docker's stream framing taken off: `receive` gives stdout bytes only."""

    def __init__(self, stream: anyio.abc.ByteStream, exec_id: str) -> None:
        self._stream = stream
        self.exec_id = exec_id
        self._buffer = bytearray()
        self._stdout_left = 0
        """Bytes of the current stdout frame not handed out yet."""

    async def _fill(self, size: int) -> None:
        while len(self._buffer) < size:
            self._buffer += await self._stream.receive()

    def _take(self, size: int) -> bytes:
        taken = bytes(self._buffer[:size])
        del self._buffer[:size]
        return taken

    @override
    async def receive(self, max_bytes: int = 65536) -> bytes:
        while not self._stdout_left:
            await self._fill(FRAME_HEADER.size)
            stream_id, length = FRAME_HEADER.unpack_from(self._buffer)
            del self._buffer[: FRAME_HEADER.size]
            if stream_id != STDERR:
                self._stdout_left = length
                continue
            await self._fill(length)
            logger.debug("sandbox helper: %s", self._take(length).decode(errors="replace").rstrip())
        if not self._buffer:
            await self._fill(1)
        chunk = self._take(min(self._stdout_left, len(self._buffer), max_bytes))
        self._stdout_left -= len(chunk)
        return chunk

    @override
    async def send(self, item: bytes) -> None:
        await self._stream.send(item)

    @override
    async def send_eof(self) -> None:
        await self._stream.send_eof()

    @override
    async def aclose(self) -> None:
        await self._stream.aclose()


async def open_exec(docker_api: Any, container_id: str, command: list[str], user: str) -> ExecStream:
    """Starts `command` in the container and connects to its stdin and stdout.

    A dead engine raises `EngineUnreachableError`; a connection that cannot carry a stream (TLS, SSH),
    `ChannelClosedError`."""

    def start() -> tuple[socket.socket, str]:
        exec_id = docker_api.exec_create(
            container_id, command, stdin=True, stdout=True, stderr=True, tty=False, user=user
        )["Id"]
        hijacked = docker_api.exec_start(exec_id, socket=True)
        if type(hijacked._sock) is not socket.socket:
            hijacked.close()
            raise ChannelClosedError("this Docker engine connection (TLS or SSH) cannot carry a sandbox channel")
        # The SDK's wrapper and its HTTP response keep each other alive and close the descriptor whenever
        # the garbage collector gets to them, under the event loop's feet: the stream owns a duplicate,
        # and the SDK's objects are closed now.
        raw = hijacked._sock.dup()
        hijacked._response.close()
        hijacked.close()
        return raw, exec_id

    raw, exec_id = await in_engine(start)
    if raw.family == socket.AF_UNIX:
        stream: anyio.abc.SocketStream = await anyio.abc.UNIXSocketStream.from_socket(raw)
    else:
        stream = await anyio.abc.SocketStream.from_socket(raw)
    return ExecStream(stream, exec_id)
