"""The egress proxy alone, on loopback: a download through a CONNECT tunnel vs straight from the server, and the
latency a tunnel adds to a connection. A quick local check of the proxy's own cost; the issue's figures (from a
sandbox, through Docker's network) are another benchmark's.

The proxy runs in this process, on its own thread, as in the server. The upstream (a sender of N MB and an echo
server) and the client are child processes, so neither competes with the proxy for this process's GIL, as a
sandbox's tools would not. Rounds interleave proxied and direct runs.

    .venv/bin/python benchmarks/bench_egress_proxy.py [--size-mb 100] [--rounds 5] [--connects 200]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from typing import Any

from _common import PYTHON, REPO_ROOT, check, emit, environment, latency_ms, log, ratio

sys.path.insert(0, str(REPO_ROOT))

from server.egress.host_rules import HostRules
from server.egress.proxy import EgressPolicy, EgressProxy

MB = 1024 * 1024

UPSTREAM = r"""
import socket, sys, threading
size = int(sys.argv[1])
payload = memoryview(b"x" * size)
def send(conn):
    with conn:
        conn.recv(65536)
        conn.sendall(payload)
def echo(conn):
    with conn:
        while data := conn.recv(65536):
            conn.sendall(data)
def serve(listener, handler):
    while True:
        conn, _ = listener.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=handler, args=(conn,), daemon=True).start()
listeners = [socket.create_server(("127.0.0.1", 0), backlog=512) for _ in range(2)]
print(listeners[0].getsockname()[1], listeners[1].getsockname()[1], flush=True)
threading.Thread(target=serve, args=(listeners[1], echo), daemon=True).start()
serve(listeners[0], send)
"""

CLIENT = r"""
import json, socket, sys, time
mode, proxy_port, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
buffer = bytearray(1024 * 1024)
def open_to(port):
    if not proxy_port:
        sock = socket.create_connection(("127.0.0.1", port))
    else:
        sock = socket.create_connection(("127.0.0.1", proxy_port))
        sock.sendall(f"CONNECT 127.0.0.1:{port} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
        head = b""
        while not head.endswith(b"\r\n\r\n"):
            head += sock.recv(1)
        assert head.startswith(b"HTTP/1.1 200"), head
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock
times = []
for _ in range(count):
    start = time.perf_counter()
    with open_to(port) as sock:
        sock.sendall(b"g")
        if mode == "download":
            total = 0
            while n := sock.recv_into(buffer):
                total += n
        else:
            total = len(sock.recv(1))
    times.append(time.perf_counter() - start)
print(json.dumps({"times": times, "bytes": total}))
"""


def client(mode: str, proxy_port: int, port: int, count: int) -> list[float]:
    args = [PYTHON, "-c", CLIENT, mode, str(proxy_port), str(port), str(count)]
    result = json.loads(subprocess.run(args, check=True, capture_output=True, text=True).stdout)
    return list(result["times"])


def run(size_mb: int, rounds: int, connects: int) -> dict[str, Any]:
    upstream = subprocess.Popen([PYTHON, "-c", UPSTREAM, str(size_mb * MB)], stdout=subprocess.PIPE, text=True)
    proxy = EgressProxy(allow_private=True)
    try:
        assert upstream.stdout is not None
        send_port, echo_port = map(int, upstream.stdout.readline().split())
        proxy_port = proxy.listen("127.0.0.1")
        proxy.admit("127.0.0.1", "bench")
        proxy.set_policy("bench", EgressPolicy(HostRules.parse([f"127.0.0.1:{send_port}", f"127.0.0.1:{echo_port}"])))
        proxied: list[float] = []
        direct: list[float] = []
        for round_ in range(rounds):
            log(f"download round {round_ + 1}/{rounds}")
            proxied += client("download", proxy_port, send_port, 1)
            direct += client("download", 0, send_port, 1)
        setup_proxied: list[float] = []
        setup_direct: list[float] = []
        for _ in range(4):
            setup_proxied += client("connect", proxy_port, echo_port, connects // 4)
            setup_direct += client("connect", 0, echo_port, connects // 4)
    finally:
        proxy.close()
        upstream.kill()
        upstream.wait()
    through, straight = size_mb / statistics.median(proxied), size_mb / statistics.median(direct)
    added_ms = (statistics.median(setup_proxied) - statistics.median(setup_direct)) * 1e3
    return {
        "benchmark": "egress_proxy_local",
        "targets": [
            check("download throughput, proxied / direct", ">=", 0.8, "ratio", ratio(through, straight)),
            check("added latency per CONNECT (median)", "<=", 2.0, "ms", round(added_ms, 3)),
        ],
        "download_mb_per_s": {"proxied": round(through, 1), "direct": round(straight, 1)},
        "connect_to_first_echo": {"proxied": latency_ms(setup_proxied), "direct": latency_ms(setup_direct)},
        "baseline": "the same client, straight to the same upstream, interleaved",
        "ratios": {"throughput": ratio(through, straight)},
        "params": {"size_mb": size_mb, "rounds": rounds, "connects": connects},
        "env": environment(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--connects", type=int, default=200)
    args = parser.parse_args()
    result = run(args.size_mb, args.rounds, args.connects)
    result["meets_target"] = all(target["meets"] for target in result["targets"])
    emit(result)


if __name__ == "__main__":
    main()
