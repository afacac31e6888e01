"""The helper channel over a plain socket pair, and Docker's stream framing taken apart, without Docker.

The far end of the pair plays the helper: it reads JSON-line requests and writes responses (in any
order, split or batched as it likes), so routing, errors and a dying connection are tested byte for byte.
"""

from __future__ import annotations

import json
import logging
import socket
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.abc
import pytest

from server.hands.docker.exec_stream import ExecStream
from server.hands.helper.channel import ChannelClosedError, HelperChannel, HelperError

pytestmark = pytest.mark.anyio


async def _socket_pair() -> tuple[anyio.abc.SocketStream, anyio.abc.SocketStream]:
    ours, theirs = socket.socketpair()
    return await anyio.abc.UNIXSocketStream.from_socket(ours), await anyio.abc.UNIXSocketStream.from_socket(theirs)


class FakeHelper:
    """The helper's end: reads request lines, answers when told to."""

    def __init__(self, stream: anyio.abc.SocketStream) -> None:
        self.stream = stream
        self._pending = b""

    async def next_request(self) -> dict[str, Any]:
        while b"\n" not in self._pending:
            self._pending += await self.stream.receive()
        line, self._pending = self._pending.split(b"\n", 1)
        request: dict[str, Any] = json.loads(line)
        return request

    @staticmethod
    def line(request_id: int, **response: Any) -> bytes:
        return json.dumps({"id": request_id, **response}).encode() + b"\n"


@asynccontextmanager
async def channel_and_helper() -> AsyncIterator[tuple[HelperChannel, FakeHelper]]:
    ours, theirs = await _socket_pair()
    channel = HelperChannel(ours, name="test")
    async with anyio.create_task_group() as tg:
        tg.start_soon(channel.run_reader)
        with anyio.fail_after(5):
            yield channel, FakeHelper(theirs)
        await theirs.aclose()


async def test_overlapping_requests_get_their_own_responses_in_any_order() -> None:
    async with channel_and_helper() as (channel, helper), anyio.create_task_group() as tg:
        answers: dict[str, dict[str, Any]] = {}

        async def ask(op: str) -> None:
            answers[op] = await channel.request(op, {"op": op}, timeout_s=5)

        tg.start_soon(ask, "first")
        first = await helper.next_request()
        tg.start_soon(ask, "second")
        second = await helper.next_request()
        assert (first["op"], second["op"], first["args"]) == ("first", "second", {"op": "first"})
        batched = helper.line(second["id"], ok=True, result={"n": 2}) + helper.line(first["id"], ok=True, result={})
        await helper.stream.send(batched[:7])  # a response split across reads, two in one read
        await helper.stream.send(batched[7:])
    assert answers == {"first": {}, "second": {"n": 2}}


async def test_a_refusal_is_a_helper_error_with_the_helpers_message() -> None:
    async with channel_and_helper() as (channel, helper), anyio.create_task_group() as tg:

        async def answer() -> None:
            request = await helper.next_request()
            await helper.stream.send(helper.line(request["id"], ok=False, error="read: 'x': no such file"))

        tg.start_soon(answer)
        with pytest.raises(HelperError, match="no such file"):
            await channel.request("read", {"file_path": "x"}, timeout_s=5)


async def test_a_connection_that_ends_fails_the_waiting_request_and_every_later_one() -> None:
    async with channel_and_helper() as (channel, helper), anyio.create_task_group() as tg:

        async def hang_up() -> None:
            await helper.next_request()
            await helper.stream.aclose()

        tg.start_soon(hang_up)
        with pytest.raises(ChannelClosedError):
            await channel.request("bash", {"command": "sleep 9"}, timeout_s=5)
        await channel.closed.wait()
        with pytest.raises(ChannelClosedError):
            await channel.request("ping", {}, timeout_s=5)


async def test_no_answer_in_time_is_a_timeout_and_a_late_answer_is_dropped() -> None:
    async with channel_and_helper() as (channel, helper):
        with pytest.raises(TimeoutError):
            await channel.request("bash", {"command": "sleep 9"}, timeout_s=0.05)
        late = await helper.next_request()
        await helper.stream.send(helper.line(late["id"], ok=True, result={}))

        async def answer() -> None:
            request = await helper.next_request()
            await helper.stream.send(helper.line(request["id"], ok=True, result={"pong": True}))

        async with anyio.create_task_group() as tg:
            tg.start_soon(answer)
            assert await channel.request("ping", {}, timeout_s=5) == {"pong": True}


def _frame(stream_id: int, payload: bytes) -> bytes:
    return struct.pack(">BxxxL", stream_id, len(payload)) + payload


async def _receive_or_empty(stream: ExecStream) -> bytes:
    try:
        return await stream.receive(max_bytes=4)
    except anyio.EndOfStream:
        return b""


async def test_docker_framing_hands_on_stdout_only_and_logs_stderr(caplog: pytest.LogCaptureFixture) -> None:
    ours, theirs = await _socket_pair()
    stream = ExecStream(ours, exec_id="e" * 64)
    wire = _frame(1, b'{"id": 1, "ok"') + _frame(2, b"helper: starting\n") + _frame(1, b": true}\n") + _frame(1, b"")
    caplog.set_level(logging.DEBUG, logger="server.hands.docker.exec_stream")
    with anyio.fail_after(5):
        for index in range(0, len(wire), 5):  # headers and payloads split anywhere
            await theirs.send(wire[index : index + 5])
        await theirs.aclose()
        received = b""
        while chunk := await _receive_or_empty(stream):
            assert len(chunk) <= 4
            received += chunk
    assert received == b'{"id": 1, "ok": true}\n'
    assert "helper: starting" in caplog.text
    await stream.aclose()


async def test_the_channel_runs_over_docker_framing() -> None:
    ours, theirs = await _socket_pair()
    channel = HelperChannel(ExecStream(ours, exec_id="e" * 64), name="framed")
    helper = FakeHelper(theirs)
    async with anyio.create_task_group() as tg:
        tg.start_soon(channel.run_reader)
        with anyio.fail_after(5):

            async def answer() -> None:
                request = await helper.next_request()  # stdin is not framed: plain lines
                await theirs.send(_frame(2, b"noise\n") + _frame(1, helper.line(request["id"], ok=True, result={})))

            tg.start_soon(answer)
            assert await channel.request("ping", {}, timeout_s=5) == {}
        await theirs.aclose()
