"""Loopback servers for the egress proxy's tests, each on its own thread: an HTTP site, its HTTPS twin with a
self-signed certificate, and raw TCP ones (echo, silent) for tunnels and stuck upstreams; and the waits those
tests share (for a condition, for descriptors to be closed)."""

from __future__ import annotations

import contextlib
import datetime
import gc
import os
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

BIG_BYTES = 8 * 1024 * 1024

WAIT_S = 10.0
"""How long a test waits for something to happen: a bound on hanging, never a measurement."""


def fd_count() -> int:
    """This process's open descriptors, after closing what earlier tests left to the garbage collector (those
    closing during a test would move the count under its baseline)."""
    gc.collect()
    return len(os.listdir("/proc/self/fd"))


def eventually(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.01)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        if self.path == "/big":
            self._reply(b"x" * BIG_BYTES)
        else:
            self._reply(f"{self.command} {self.path} host={self.headers['Host']}".encode())

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self._reply(b"posted " + body)

    def _reply(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def http_site(tls: ssl.SSLContext | None = None) -> Iterator[int]:
    """An HTTP (or, with `tls`, HTTPS) server on 127.0.0.1; yields its port."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def certificate(folder: Path, name: str) -> tuple[Path, Path]:
    """A self-signed certificate for `name`: (certificate file, key file)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    (folder / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "key.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return folder / "cert.pem", folder / "key.pem"


class TcpServer:
    """A raw TCP server on 127.0.0.1: echoes what it gets (`echo`) or reads and never answers (silent). Either way
    it closes a connection when the other side does, and counts what it accepted."""

    def __init__(self, *, echo: bool) -> None:
        self._echo = echo
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self.accepted = 0
        self.closed = threading.Event()
        self._accepting = threading.Thread(target=self._accept, daemon=True)
        self._accepting.start()

    def __enter__(self) -> TcpServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        # A thread blocked in accept() keeps a closed listener listening in the kernel (a zombie that later tests'
        # connections to the same port could reach); shutting it down first wakes that accept() with an error.
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        self._accepting.join(timeout=10)

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                connection, _ = self._listener.accept()
                self.accepted += 1
                threading.Thread(target=self._serve, args=(connection,), daemon=True).start()

    def _serve(self, connection: socket.socket) -> None:
        with connection, contextlib.suppress(OSError):
            while data := connection.recv(65536):
                if self._echo:
                    connection.sendall(data)
        self.closed.set()
