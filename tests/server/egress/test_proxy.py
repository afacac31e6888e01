"""The egress proxy on loopback, driven by blocking sockets as a sandbox's tools would drive it.

Principals are told apart by source address (Linux answers on all of 127.0.0.0/8): 127.0.0.1 is the session
`sesn_a`, 127.0.0.2 is `sesn_b`, 127.0.0.3 is nobody's. Names resolve through an injected resolver, so the
upstreams (all on 127.0.0.1) are reached by name only with `allow_private`, as a private mirror would be.
"""

from __future__ import annotations

import base64
import logging
import socket
import ssl
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from egress_upstreams import BIG_BYTES, WAIT_S, TcpServer, certificate, eventually, fd_count, http_site

from server.egress.host_rules import HostRules
from server.egress.proxy import EgressPolicy, EgressProxy

A, B, NOBODY = "127.0.0.1", "127.0.0.2", "127.0.0.3"
NAMES = {"site.test": "127.0.0.1", "tls.test": "127.0.0.1", "rebind.test": "127.0.0.1", "slow.test": "127.0.0.1"}


async def resolve(host: str, port: int) -> Sequence[str]:
    if host not in NAMES:
        raise OSError(f"{host} is not a test name")
    return [NAMES[host]]


def policy(*entries: str) -> EgressPolicy:
    return EgressPolicy(HostRules.parse(entries), why="networking.allowed_hosts of environment 'test'")


@pytest.fixture
def proxy() -> Iterator[EgressProxy]:
    proxy = EgressProxy(allow_private=True, resolver=resolve, idle_timeout_s=30)
    proxy.admit(A, "sesn_a")
    proxy.admit(B, "sesn_b")
    yield proxy
    proxy.close()


@pytest.fixture
def port(proxy: EgressProxy) -> int:
    return proxy.listen("127.0.0.1")


@pytest.fixture(scope="module")
def site() -> Iterator[int]:
    with http_site() as port:
        yield port


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return certificate(tmp_path_factory.mktemp("tls"), "tls.test")


@pytest.fixture(scope="module")
def tls_site(tls_files: tuple[Path, Path]) -> Iterator[int]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*tls_files)
    with http_site(context) as port:
        yield port


def connect(port: int, source: str = A) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=WAIT_S, source_address=(source, 0))


def read_response(sock: socket.socket | ssl.SSLSocket) -> tuple[int, dict[str, str], bytes]:
    """One response read to the end of the connection: (status, headers with lower-case names, body)."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
    return int(status_line.split()[1]), headers, body


def ask(port: int, request: bytes, source: str = A) -> tuple[int, dict[str, str], bytes]:
    with connect(port, source) as sock:
        sock.sendall(request)
        return read_response(sock)


def tunnel(port: int, authority: str, source: str = A, extra: str = "") -> tuple[socket.socket, bytes]:
    """A CONNECT to `authority`: the socket and the proxy's answer head (the socket is at the tunnel's start)."""
    sock = connect(port, source)
    sock.sendall(f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n{extra}\r\n".encode())
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        byte = sock.recv(1)
        if not byte:
            break
        head += byte
    return sock, head


# Allowed traffic


def test_an_allowed_connect_relays_tls_end_to_end(
    proxy: EgressProxy, port: int, tls_site: int, tls_files: tuple[Path, Path]
) -> None:
    proxy.set_policy("sesn_a", policy(f"tls.test:{tls_site}"))
    sock, head = tunnel(port, f"tls.test:{tls_site}")
    context = ssl.create_default_context(cafile=str(tls_files[0]))

    with context.wrap_socket(sock, server_hostname="tls.test") as tls:
        tls.sendall(b"GET /secure?x=1 HTTP/1.1\r\nHost: tls.test\r\nConnection: close\r\n\r\n")
        status, _, body = read_response(tls)

    assert head.startswith(b"HTTP/1.1 200 ")
    assert (status, body) == (200, b"GET /secure?x=1 host=tls.test")


def test_a_tunnel_relays_bytes_both_ways_including_what_came_with_the_connect(proxy: EgressProxy, port: int) -> None:
    with TcpServer(echo=True) as echo:
        proxy.set_policy("sesn_a", policy(f"site.test:{echo.port}"))
        sock = connect(port)
        with sock:
            sock.sendall(f"CONNECT site.test:{echo.port} HTTP/1.1\r\nHost: x\r\n\r\nearly".encode())
            received = b""
            while not received.endswith(b"early"):
                received += sock.recv(65536)
            sock.sendall(b"-late")
            received += sock.recv(65536)

    assert received.startswith(b"HTTP/1.1 200 Connection established\r\n\r\n")
    assert received.endswith(b"early-late")


def test_a_plain_http_request_is_relayed_with_its_path_and_query(proxy: EgressProxy, port: int, site: int) -> None:
    proxy.set_policy("sesn_a", policy(f"site.test:{site}"))

    status, headers, body = ask(port, f"GET http://site.test:{site}/p/a?q=1&r=2 HTTP/1.1\r\nHost: x\r\n\r\n".encode())

    assert (status, body) == (200, f"GET /p/a?q=1&r=2 host=site.test:{site}".encode())
    assert headers["connection"] == "close"


def test_a_plain_http_request_body_reaches_the_upstream(proxy: EgressProxy, port: int, site: int) -> None:
    proxy.set_policy("sesn_a", policy(f"site.test:{site}"))
    request = f"POST http://site.test:{site}/ HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"

    assert ask(port, request.encode())[2] == b"posted hello"


def test_the_build_token_is_a_principal_and_is_not_sent_upstream(proxy: EgressProxy, port: int, site: int) -> None:
    token = proxy.issue_token("build-x")
    proxy.set_policy("build-x", policy(f"site.test:{site}"))
    credentials = base64.b64encode(f"build:{token}".encode()).decode()
    request = f"GET http://site.test:{site}/ HTTP/1.1\r\nHost: x\r\nProxy-Authorization: Basic {credentials}\r\n\r\n"

    assert ask(port, request.encode(), source=NOBODY)[0] == 200
    proxy.revoke_token(token)
    assert ask(port, request.encode(), source=NOBODY)[0] == 403


# Refusals


def test_a_name_not_in_the_list_is_refused_naming_the_host_and_the_setting(proxy: EgressProxy, port: int) -> None:
    proxy.set_policy("sesn_a", policy("example.org"))

    status, headers, body = ask(port, b"CONNECT other.test:443 HTTP/1.1\r\nHost: other.test:443\r\n\r\n")

    assert status == 403
    assert headers["content-type"].startswith("text/plain")
    assert headers["proxy-status"] == "managed-sessions-egress; error=http_request_denied"
    assert b"'other.test'" in body
    assert b"networking.allowed_hosts" in body


def test_a_port_not_allowed_is_refused(proxy: EgressProxy, port: int, site: int) -> None:
    proxy.set_policy("sesn_a", policy("site.test"))

    status, _, body = ask(port, f"CONNECT site.test:{site} HTTP/1.1\r\nHost: x\r\n\r\n".encode())

    assert status == 403
    assert f"'site.test:{site}'".encode() in body


def test_an_ip_literal_is_reached_only_when_listed_literally(proxy: EgressProxy, port: int, site: int) -> None:
    proxy.set_policy("sesn_a", policy(f"site.test:{site}", f"*.site.test:{site}", "localhost"))
    request = f"GET http://127.0.0.1:{site}/ HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    assert ask(port, request)[0] == 403

    proxy.set_policy("sesn_a", policy(f"127.0.0.1:{site}"))
    assert ask(port, request)[0] == 200


def test_a_wildcard_matches_subdomains_but_not_the_bare_name(proxy: EgressProxy, port: int, site: int) -> None:
    NAMES["api.site.test"] = "127.0.0.1"
    proxy.set_policy("sesn_a", policy(f"*.site.test:{site}"))

    assert ask(port, f"GET http://api.site.test:{site}/ HTTP/1.1\r\nHost: x\r\n\r\n".encode())[0] == 200
    assert ask(port, f"GET http://site.test:{site}/ HTTP/1.1\r\nHost: x\r\n\r\n".encode())[0] == 403


def test_a_name_resolving_to_loopback_is_refused_without_the_private_opt_in(site: int) -> None:
    proxy = EgressProxy(resolver=resolve)
    try:
        port = proxy.listen("127.0.0.1")
        proxy.admit(A, "sesn_a")
        proxy.set_policy("sesn_a", policy(f"rebind.test:{site}"))

        status, headers, body = ask(port, f"GET http://rebind.test:{site}/ HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    finally:
        proxy.close()

    assert status == 403
    assert headers["proxy-status"].endswith("error=destination_ip_prohibited")
    assert b"rebind.test resolves to 127.0.0.1, a loopback address" in body
    assert b"MANAGED_SESSIONS_EGRESS_ALLOW_PRIVATE=1" in body


def test_a_connection_from_an_unknown_source_is_refused(proxy: EgressProxy, port: int) -> None:
    proxy.set_policy("sesn_a", policy("site.test"))

    status, _, body = ask(port, b"CONNECT site.test:443 HTTP/1.1\r\nHost: x\r\n\r\n", source=NOBODY)

    assert status == 403
    assert b"not from a sandbox of this server" in body


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"garbage\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
        b"GET http://site.test/ HTTP/1.1\r\n\r\n",
        b"GET /local/path HTTP/1.1\r\nHost: site.test\r\n\r\n",
        b"GET https://site.test/ HTTP/1.1\r\nHost: site.test\r\n\r\n",
        b"GET ftp://site.test/ HTTP/1.1\r\nHost: site.test\r\n\r\n",
        b"CONNECT site.test HTTP/1.1\r\nHost: site.test\r\n\r\n",
        b"CONNECT site.test:0 HTTP/1.1\r\nHost: x\r\n\r\n",
        b"CONNECT site.test:70000 HTTP/1.1\r\nHost: x\r\n\r\n",
        b"CONNECT site.test:https HTTP/1.1\r\nHost: x\r\n\r\n",
        b"CONNECT ::1:443 HTTP/1.1\r\nHost: x\r\n\r\n",
        b"CONNECT [site.test]:443 HTTP/1.1\r\nHost: x\r\n\r\n",
        b"CONNECT user@site.test:443 HTTP/1.1\r\nHost: x\r\n\r\n",
        b"CONNECT bad_host!:443 HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET http://site.test/ HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        b"GET http://site.test/ HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n",
        b"GET http://site.test/ HTTP/2.0\r\nHost: x\r\n\r\n",
        b"GET http://site.test/ HTTP/1.1\nHost: x\n\r\n\r\n",
        b"GET http://site.test/ HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n",
    ],
)
def test_a_malformed_request_is_answered_400_and_the_proxy_goes_on(
    proxy: EgressProxy, port: int, site: int, request_bytes: bytes
) -> None:
    proxy.set_policy("sesn_a", policy("site.test", f"site.test:{site}"))

    status, headers, _ = ask(port, request_bytes)

    assert status == 400
    assert headers["proxy-status"].endswith("error=http_request_error")
    assert ask(port, f"GET http://site.test:{site}/ HTTP/1.1\r\nHost: x\r\n\r\n".encode())[0] == 200


def test_a_client_that_leaves_without_a_request_gets_nothing_and_costs_nothing(proxy: EgressProxy, port: int) -> None:
    baseline = fd_count()
    for _ in range(20):
        with connect(port) as sock:
            sock.sendall(b"GET http://site")

    eventually(lambda: fd_count() <= baseline, "the proxy closed its side of every connection")


def test_an_unreachable_upstream_is_a_502(proxy: EgressProxy, port: int) -> None:
    with socket.create_server(("127.0.0.1", 0)) as placeholder:
        closed_port = placeholder.getsockname()[1]
    proxy.set_policy("sesn_a", policy(f"site.test:{closed_port}"))

    status, headers, body = ask(port, f"CONNECT site.test:{closed_port} HTTP/1.1\r\nHost: x\r\n\r\n".encode())

    assert status == 502
    assert headers["proxy-status"].endswith("error=connection_refused")
    assert f"site.test:{closed_port}".encode() in body


def test_a_name_that_does_not_resolve_is_a_502(proxy: EgressProxy, port: int) -> None:
    proxy.set_policy("sesn_a", policy("nowhere.test"))

    status, headers, _ = ask(port, b"CONNECT nowhere.test:443 HTTP/1.1\r\nHost: x\r\n\r\n")

    assert status == 502
    assert headers["proxy-status"].endswith("error=dns_error")


def test_refusals_are_kept_per_host_with_counts_and_times_most_recent_first(proxy: EgressProxy, port: int) -> None:
    proxy.set_policy("sesn_a", policy("site.test"))
    for authority in ("one.test:443", "two.test:443", "one.test:443", "site.test:22"):
        ask(port, f"CONNECT {authority} HTTP/1.1\r\nHost: x\r\n\r\n".encode())

    refusals = proxy.refusals("sesn_a")

    assert [(r.host, r.port, r.count) for r in refusals] == [
        ("site.test", 22, 1),
        ("one.test", 443, 2),
        ("two.test", 443, 1),
    ]
    one = refusals[1]
    assert one.first_at <= one.last_at
    assert one.last_at.endswith("Z")
    assert "networking.allowed_hosts" in one.reason
    assert proxy.refusals("sesn_b") == []


# Limits


def test_a_stuck_upstream_times_out_while_another_principal_is_served(site: int) -> None:
    proxy = EgressProxy(allow_private=True, resolver=resolve, idle_timeout_s=1.0)
    events: list[str] = []
    try:
        port = proxy.listen("127.0.0.1")
        proxy.admit(A, "sesn_a")
        proxy.admit(B, "sesn_b")
        with TcpServer(echo=False) as silent:
            proxy.set_policy("sesn_a", policy(f"slow.test:{silent.port}"))
            proxy.set_policy("sesn_b", policy(f"site.test:{site}"))

            def stuck() -> None:
                status = ask(port, f"GET http://slow.test:{silent.port}/ HTTP/1.1\r\nHost: x\r\n\r\n".encode())[0]
                events.append(f"stuck answered {status}")

            waiting = threading.Thread(target=stuck)
            waiting.start()
            eventually(lambda: silent.accepted == 1, "the silent upstream got the request")
            status = ask(port, f"GET http://site.test:{site}/ HTTP/1.1\r\nHost: x\r\n\r\n".encode(), source=B)[0]
            events.append(f"other answered {status}")
            waiting.join(WAIT_S)
            eventually(silent.closed.is_set, "the proxy closed the stuck upstream")
    finally:
        proxy.close()

    assert events == ["other answered 200", "stuck answered 504"]


def test_a_tunnel_whose_client_left_ends_soon_though_its_upstream_never_closes() -> None:
    """A sandbox process that dies closes its sockets, which the proxy sees as a half-close: its tunnels to an
    upstream that never answers nor closes end after the short half-closed timeout, not the idle one, so the
    session gets its connection slots back."""
    proxy = EgressProxy(allow_private=True, resolver=resolve, idle_timeout_s=300, half_closed_timeout_s=0.2)
    held: list[socket.socket] = []
    with socket.create_server(("127.0.0.1", 0)) as deaf:
        threading.Thread(target=lambda: held.append(deaf.accept()[0]), daemon=True).start()
        try:
            port = proxy.listen("127.0.0.1")
            proxy.admit(A, "sesn_a")
            proxy.set_policy("sesn_a", policy(f"slow.test:{deaf.getsockname()[1]}"))
            sock, head = tunnel(port, f"slow.test:{deaf.getsockname()[1]}")
            assert head.startswith(b"HTTP/1.1 200 ")
            eventually(lambda: len(held) == 1, "the upstream accepted the tunnel")
            sock.close()
            eventually(lambda: proxy.open_connections("sesn_a") == 0, "the tunnel ended though its upstream is open")
        finally:
            proxy.close()
            for connection in held:
                connection.close()


def test_connections_over_the_cap_are_refused_and_none_leaks(site: int) -> None:
    proxy = EgressProxy(allow_private=True, resolver=resolve, max_connections_per_principal=64)
    try:
        port = proxy.listen("127.0.0.1")
        proxy.admit(A, "sesn_a")
        proxy.admit(B, "sesn_b")
        with TcpServer(echo=True) as echo:
            proxy.set_policy("sesn_a", policy(f"site.test:{echo.port}"))
            proxy.set_policy("sesn_b", policy(f"site.test:{site}"))
            baseline = fd_count()
            opened = [tunnel(port, f"site.test:{echo.port}") for _ in range(200)]
            other = ask(port, f"GET http://site.test:{site}/ HTTP/1.1\r\nHost: x\r\n\r\n".encode(), source=B)[0]
            while_open = proxy.open_connections("sesn_a")
            heads = [head for _, head in opened]
            refused = [sock for sock, head in opened if b" 429 " in head]
            body = b"".join(iter(lambda: refused[0].recv(65536), b""))
            for sock, _ in opened:
                sock.close()
            eventually(lambda: proxy.open_connections("sesn_a") == 0, "every relay ended")
            eventually(lambda: fd_count() <= baseline, "every descriptor was closed")
    finally:
        proxy.close()

    assert sum(head.startswith(b"HTTP/1.1 200 ") for head in heads) == 64
    assert len(refused) == 136
    assert while_open == 64
    assert other == 200
    assert b"64 connections" in body
    assert proxy.refusals("sesn_a")[0].count == 136


def test_close_ends_relays_and_leaves_no_thread() -> None:
    with TcpServer(echo=True) as echo:
        threads = set(threading.enumerate())
        proxy = EgressProxy(allow_private=True, resolver=resolve)
        port = proxy.listen("127.0.0.1")
        proxy.admit(A, "sesn_a")
        proxy.set_policy("sesn_a", policy(f"site.test:{echo.port}"))
        sock, head = tunnel(port, f"site.test:{echo.port}")
        with sock:
            proxy.close()
            ended = sock.recv(1)
        eventually(echo.closed.is_set, "the upstream side was closed too")

    assert head.startswith(b"HTTP/1.1 200 ")
    assert ended == b""
    eventually(lambda: set(threading.enumerate()) <= threads, "every thread the proxy started ended")
    with pytest.raises(ConnectionRefusedError):
        connect(port).close()


def test_start_and_close_are_idempotent() -> None:
    proxy = EgressProxy()
    proxy.start()
    proxy.start()
    proxy.close()
    proxy.close()


def test_a_large_download_arrives_whole(proxy: EgressProxy, port: int, site: int) -> None:
    proxy.set_policy("sesn_a", policy(f"site.test:{site}"))

    status, _, body = ask(port, f"GET http://site.test:{site}/big HTTP/1.1\r\nHost: x\r\n\r\n".encode())

    assert (status, len(body)) == (200, BIG_BYTES)


def test_allows_and_denials_are_logged_at_debug_without_query_strings(
    proxy: EgressProxy, port: int, site: int, caplog: pytest.LogCaptureFixture
) -> None:
    proxy.set_policy("sesn_a", policy(f"site.test:{site}"))
    with caplog.at_level(logging.DEBUG, logger="server.egress.proxy"):
        ask(port, f"GET http://site.test:{site}/p?token=s3cret HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        ask(port, b"GET http://other.test/p?token=s3cret HTTP/1.1\r\nHost: x\r\n\r\n")

    messages = [record.getMessage() for record in caplog.records if record.levelno == logging.DEBUG]
    assert any("egress allow sesn_a GET http://site.test" in message for message in messages)
    assert any("egress deny sesn_a GET http://other.test:80/p" in message for message in messages)
    assert not any("s3cret" in message for message in messages)
