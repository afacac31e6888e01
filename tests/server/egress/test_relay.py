"""The relay's ways of moving bytes between the proxy's sockets (spliced in the kernel on the event loop, spliced on
a worker thread once a direction is a bulk transfer, or through one reused buffer where splice is missing) carry
megabytes intact, both ways, with a half-close passed on; a bulk direction's thread ends with its relay."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import struct
import threading
from collections.abc import Iterator, Sequence

import pytest
from egress_upstreams import BIG_BYTES, WAIT_S, TcpServer, eventually, fd_count, http_site

from server.egress import relay
from server.egress.host_rules import HostRules
from server.egress.proxy import EgressPolicy, EgressProxy


async def resolve(host: str, port: int) -> Sequence[str]:
    return ["127.0.0.1"]


@pytest.fixture(params=["spliced", "threaded", "copied"])
def proxy(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[EgressProxy, int]]:
    if request.param != "copied" and not relay._SPLICE:
        pytest.skip("os.splice is Linux's")
    monkeypatch.setattr(relay, "_SPLICE", request.param != "copied")
    monkeypatch.setattr(relay, "BULK_BYTES", 0 if request.param == "threaded" else 1 << 62)
    proxy = EgressProxy(allow_private=True, resolver=resolve, idle_timeout_s=30)
    proxy.admit("127.0.0.1", "sesn_a")
    yield proxy, proxy.listen("127.0.0.1")
    proxy.close()


def read_to_end(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(1024 * 1024):
        chunks.append(chunk)
    return b"".join(chunks)


def test_a_tunnel_carries_megabytes_both_ways_and_passes_the_half_close_on(proxy: tuple[EgressProxy, int]) -> None:
    egress, port = proxy
    payload = os.urandom(4 * 1024 * 1024 + 17)
    with TcpServer(echo=True) as echo:
        egress.set_policy("sesn_a", EgressPolicy(HostRules.parse([f"echo.test:{echo.port}"])))
        with socket.create_connection(("127.0.0.1", port), timeout=WAIT_S) as sock:
            sock.sendall(f"CONNECT echo.test:{echo.port} HTTP/1.1\r\nHost: x\r\n\r\n".encode() + payload[:1000])

            def send_rest() -> None:
                sock.sendall(payload[1000:])
                sock.shutdown(socket.SHUT_WR)  # the echo server sees the end, answers the rest and closes

            sender = threading.Thread(target=send_rest)
            sender.start()
            received = read_to_end(sock)
            sender.join(WAIT_S)

    head, _, echoed = received.partition(b"\r\n\r\n")
    assert head == b"HTTP/1.1 200 Connection established"
    assert len(echoed) == len(payload)
    assert echoed == payload


def test_a_plain_http_download_arrives_whole(proxy: tuple[EgressProxy, int]) -> None:
    egress, port = proxy
    with http_site() as site:
        egress.set_policy("sesn_a", EgressPolicy(HostRules.parse([f"site.test:{site}"])))
        with socket.create_connection(("127.0.0.1", port), timeout=WAIT_S) as sock:
            sock.sendall(f"GET http://site.test:{site}/big HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            received = read_to_end(sock)

    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    assert body == b"x" * BIG_BYTES


@pytest.fixture
def slices(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Every bulk-direction thread slice's byte count (0 for one that raised): the real `_splice_slice`, counted."""
    moved: list[int] = []
    real = relay._splice_slice

    def counted(source: int, sink: int, pipe: relay._Pipe, stop: int) -> tuple[int, bool]:
        moved.append(0)
        result = real(source, sink, pipe, stop)
        moved[-1] = result[0]
        return result

    monkeypatch.setattr(relay, "_splice_slice", counted)
    return moved


@pytest.mark.skipif(not relay._SPLICE, reason="os.splice is Linux's")
def test_a_download_moves_on_to_a_thread_once_it_is_a_bulk_transfer(slices: list[int]) -> None:
    egress = EgressProxy(allow_private=True, resolver=resolve, idle_timeout_s=30)
    egress.admit("127.0.0.1", "sesn_a")
    try:
        with http_site() as site, socket.create_connection(("127.0.0.1", egress.listen("127.0.0.1"))) as sock:
            egress.set_policy("sesn_a", EgressPolicy(HostRules.parse([f"site.test:{site}"])))
            sock.settimeout(WAIT_S)
            sock.sendall(f"CONNECT site.test:{site} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            sock.sendall(b"GET /big HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            received = read_to_end(sock)
    finally:
        egress.close()

    assert received.endswith(b"\r\n\r\n" + b"x" * BIG_BYTES)
    assert sum(slices) > BIG_BYTES - relay.BULK_BYTES - relay.PIPE_BYTES  # all but the first megabytes: threaded


@pytest.mark.skipif(not relay._SPLICE, reason="os.splice is Linux's")
def test_a_bulk_transfer_whose_client_stops_reading_ends_at_the_idle_timeout_with_its_thread(
    monkeypatch: pytest.MonkeyPatch, slices: list[int]
) -> None:
    monkeypatch.setattr(relay, "BULK_BYTES", 0)
    monkeypatch.setattr(relay, "SLICE_S", 0.2)
    egress = EgressProxy(allow_private=True, resolver=resolve, idle_timeout_s=1.0)
    egress.admit("127.0.0.1", "sesn_a")
    try:
        with http_site() as site:
            port = egress.listen("127.0.0.1")
            egress.set_policy("sesn_a", EgressPolicy(HostRules.parse([f"site.test:{site}"])))
            baseline = fd_count()
            with socket.create_connection(("127.0.0.1", port)) as sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                sock.sendall(f"GET http://site.test:{site}/big HTTP/1.1\r\nHost: x\r\n\r\n".encode())
                sock.settimeout(WAIT_S)
                sock.recv(1)  # the download started; from now on nobody reads it
                eventually(lambda: egress.open_connections("sesn_a") == 0, "the stuck relay ended")
                assert slices, "the download went to a thread before it got stuck"
            eventually(lambda: fd_count() <= baseline, "every descriptor of the relay was closed")
    finally:
        egress.close()


@pytest.mark.skipif(not relay._SPLICE, reason="os.splice is Linux's")
def test_closing_the_proxy_ends_a_bulk_transfer_and_its_thread(
    monkeypatch: pytest.MonkeyPatch, slices: list[int]
) -> None:
    monkeypatch.setattr(relay, "BULK_BYTES", 0)
    monkeypatch.setattr(relay, "SLICE_S", 3600.0)  # only the relay's end can wake a thread waiting for bytes
    egress = EgressProxy(allow_private=True, resolver=resolve, idle_timeout_s=30)
    egress.admit("127.0.0.1", "sesn_a")
    with TcpServer(echo=True) as echo:
        egress.set_policy("sesn_a", EgressPolicy(HostRules.parse([f"echo.test:{echo.port}"])))
        with socket.create_connection(("127.0.0.1", egress.listen("127.0.0.1")), timeout=WAIT_S) as sock:
            sock.sendall(f"CONNECT echo.test:{echo.port} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            sock.sendall(b"y" * 1024)
            received = b""
            while not received.endswith(b"y" * 1024):
                received += sock.recv(65536)  # the echo is through: the upstream's direction is on its thread
            closer = threading.Thread(target=egress.close)
            closer.start()
            closer.join(WAIT_S)
            assert not closer.is_alive(), "the proxy closed while a relay thread was waiting for bytes"
            assert sock.recv(65536) == b"", "the tunnel ended with the proxy"
    assert slices


@pytest.mark.skipif(not relay._SPLICE, reason="os.splice is Linux's")
def test_an_upstream_reset_in_the_middle_of_a_bulk_transfer_ends_the_relay_quietly(
    monkeypatch: pytest.MonkeyPatch, slices: list[int], caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(relay, "BULK_BYTES", 0)
    caplog.set_level(logging.DEBUG, logger="server.egress")
    with socket.create_server(("127.0.0.1", 0)) as listener:

        def send_then_reset() -> None:
            connection, _ = listener.accept()
            connection.sendall(b"z" * (4 * 1024 * 1024))
            connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            connection.close()  # linger 0: a reset, not a close

        upstream = threading.Thread(target=send_then_reset)
        upstream.start()
        egress = EgressProxy(allow_private=True, resolver=resolve, idle_timeout_s=30)
        egress.admit("127.0.0.1", "sesn_a")
        try:
            port = listener.getsockname()[1]
            egress.set_policy("sesn_a", EgressPolicy(HostRules.parse([f"reset.test:{port}"])))
            with socket.create_connection(("127.0.0.1", egress.listen("127.0.0.1")), timeout=WAIT_S) as sock:
                sock.sendall(f"CONNECT reset.test:{port} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
                upstream.join(WAIT_S)  # all sent and reset while the client read nothing: the relay is mid-way
                with contextlib.suppress(ConnectionResetError):
                    read_to_end(sock)
            eventually(lambda: egress.open_connections("sesn_a") == 0, "the relay ended")
        finally:
            egress.close()
    assert slices, "the transfer was on a thread when the reset came"
    assert "failed unexpectedly" not in caplog.text
