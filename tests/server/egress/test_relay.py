"""The relay's two ways of moving bytes between the proxy's sockets (spliced in the kernel, or through one reused
buffer where splice is missing) carry megabytes intact, both ways, with a half-close passed on."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator, Sequence

import pytest
from egress_upstreams import BIG_BYTES, TcpServer, http_site

from server.egress import relay
from server.egress.host_rules import HostRules
from server.egress.proxy import EgressPolicy, EgressProxy

WAIT_S = 10.0
"""How long a test waits for bytes: a bound on hanging, never a measurement."""


async def resolve(host: str, port: int) -> Sequence[str]:
    return ["127.0.0.1"]


@pytest.fixture(params=["spliced", "copied"])
def proxy(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[EgressProxy, int]]:
    if request.param == "spliced" and not relay._SPLICE:
        pytest.skip("os.splice is Linux's")
    monkeypatch.setattr(relay, "_SPLICE", request.param == "spliced")
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
