"""A unix-socket forwarder in front of the Docker engine's socket, so a test can cut the engine off and bring it
back without stopping `dockerd` (which would stop every container on the machine).

A server under test is pointed at it with `DOCKER_HOST` (`proxy.env`): in-process with
`monkeypatch.setenv("DOCKER_HOST", proxy.url)` before the server makes its Docker client, or in a child
process's environment. Bytes are forwarded unchanged in both directions, half-closes included, so plain API
calls, image builds and hijacked `docker exec` streams (`exec_start(socket=True)`) all work through it.

- `cut()` stops listening and ends every forwarded connection, long-lived exec streams included: a new
  connection is refused at once (ECONNREFUSED, or ENOENT with `remove_path=True`) and a call in flight sees its
  connection closed. When `cut()` returns, no forwarded connection is left open.
- `restore()` listens again on the same path.
- `accepted` counts connections accepted over the proxy's life; `wait_for_accepted(n)` blocks until there have
  been n, so a test can see that the server tried again after a `restore()`.
- `requests` lists the HTTP request lines forwarded to the engine (`"POST /v1.41/containers/…/wait"`), and
  `wait_for_request("/wait")` blocks until one matches: a test knows a call is in flight before it cuts, or that
  the server made a given call again. (A line is recognised at the start of a forwarded chunk; the bytes of an
  exec stream are not requests, but one that looked like a request line would be listed.)

Everything runs on plain threads, never on the test's event loop, so async tests may block on the engine
through it. The socket lives in a short directory under /tmp: a unix socket path may not exceed 107 bytes,
which pytest's `tmp_path` for a long test name does.

Example:
    with DockerProxy() as proxy:
        monkeypatch.setenv("DOCKER_HOST", proxy.url)
        ...  # start the server, begin a tool loop
        proxy.cut()
        ...  # the engine is unreachable: assert the server waits and says so
        seen = proxy.accepted
        proxy.restore()
        proxy.wait_for_accepted(seen + 1)  # the server came back to the engine
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import selectors
import shutil
import socket
import tempfile
import threading
from pathlib import Path
from typing import Literal

__all__ = ["DEFAULT_UPSTREAM", "DockerProxy", "upstream_socket"]

logger = logging.getLogger(__name__)

DEFAULT_UPSTREAM = "/var/run/docker.sock"
CHUNK = 65536
REQUEST_LINE = re.compile(rb"(GET|HEAD|POST|PUT|DELETE|PATCH|OPTIONS) (\S+) HTTP/1\.[01]\r\n")
JOIN_S = 5.0  # how long `cut()` and `close()` wait for the proxy's own threads; they end at once in practice


def upstream_socket(environ: dict[str, str] | None = None) -> str:
    """The engine's socket path: the one `DOCKER_HOST` names when it is a unix socket, else the default."""
    host = (os.environ if environ is None else environ).get("DOCKER_HOST", "")
    return host.removeprefix("unix://") if host.startswith("unix://") else DEFAULT_UPSTREAM


class _Link:
    """One forwarded connection: the client's socket, the engine's socket and a pump thread per direction."""

    def __init__(self, client: socket.socket, engine: socket.socket) -> None:
        self.client = client
        self.engine = engine
        self.pumps_left = 2

    def sever(self) -> None:
        """Ends both directions now: each side sees end of file, and both pumps return."""
        for sock in (self.client, self.engine):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class _Listener:
    """One listening period: a bound socket and the thread accepting on it, stopped through a wake-up pair."""

    def __init__(self, proxy: DockerProxy) -> None:
        self._proxy = proxy
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        with contextlib.suppress(FileNotFoundError):
            proxy.path.unlink()  # a path left by an earlier period
        self._sock.bind(str(proxy.path))
        self._sock.listen(64)
        self._wake_r, self._wake_w = socket.socketpair()
        self._thread = threading.Thread(target=self._accept_loop, name="docker-proxy-accept", daemon=True)
        self._thread.start()

    def stop(self, remove_path: bool) -> None:
        """Stops accepting and closes the listening socket; returns once it is closed."""
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")
        self._thread.join(JOIN_S)
        if self._thread.is_alive():
            raise RuntimeError(f"the docker proxy's accept thread did not stop within {JOIN_S} s")
        self._wake_w.close()
        if remove_path:
            with contextlib.suppress(FileNotFoundError):
                self._proxy.path.unlink()

    def _accept_loop(self) -> None:
        try:
            with selectors.DefaultSelector() as selector:
                selector.register(self._sock, selectors.EVENT_READ)
                selector.register(self._wake_r, selectors.EVENT_READ)
                while True:
                    ready = {key.fileobj for key, _ in selector.select()}
                    if self._wake_r in ready:
                        return
                    with contextlib.suppress(BlockingIOError, InterruptedError):
                        client, _ = self._sock.accept()
                        self._proxy._forward(client)
        finally:
            self._sock.close()  # the socket file stays: connecting to it is refused, as to a dead engine
            self._wake_r.close()


class DockerProxy:
    """Forwards a unix socket of its own to the Docker engine's socket, until cut; see the module docstring."""

    def __init__(self, upstream: str | None = None, path: Path | None = None) -> None:
        self.upstream = upstream or upstream_socket()
        self._own_dir = path is None
        self.path = path or Path(tempfile.mkdtemp(prefix="dproxy-", dir="/tmp")) / "docker.sock"
        if len(os.fsencode(self.path)) > 107:
            raise ValueError(f"a unix socket path may not exceed 107 bytes: {self.path}")
        self._changed = threading.Condition()
        self._links: set[_Link] = set()
        self._accepted = 0
        self._requests: list[str] = []
        self._refused_upstream = 0
        self._listener: _Listener | None = None

    # --- the context ---

    def __enter__(self) -> DockerProxy:
        self.restore()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Cuts, then removes the socket (and its directory when the proxy made it)."""
        self.cut(remove_path=True)
        if self._own_dir:
            shutil.rmtree(self.path.parent, ignore_errors=True)

    # --- what a test sees ---

    @property
    def url(self) -> str:
        """What `DOCKER_HOST` (or `docker.DockerClient(base_url=...)`) takes."""
        return f"unix://{self.path}"

    @property
    def env(self) -> dict[str, str]:
        """The environment variables that point a Docker client (or a server process) at the proxy."""
        return {"DOCKER_HOST": self.url}

    @property
    def state(self) -> Literal["listening", "cut"]:
        with self._changed:
            return "listening" if self._listener is not None else "cut"

    @property
    def accepted(self) -> int:
        """Connections accepted since the proxy was made (across cuts)."""
        with self._changed:
            return self._accepted

    @property
    def open_connections(self) -> int:
        """Forwarded connections open right now."""
        with self._changed:
            return len(self._links)

    @property
    def upstream_failures(self) -> int:
        """Accepted connections that could not reach the engine (the engine itself was down)."""
        with self._changed:
            return self._refused_upstream

    @property
    def requests(self) -> list[str]:
        """The request lines forwarded to the engine so far, as `"METHOD /path?query"`."""
        with self._changed:
            return list(self._requests)

    def wait_for_request(self, fragment: str, *, after: int = 0, timeout_s: float = 30.0) -> str:
        """Blocks until a request line containing `fragment` was forwarded (at index `after` or later); returns it."""

        def found() -> str | None:
            return next((r for r in self._requests[after:] if fragment in r), None)

        with self._changed:
            if not self._changed.wait_for(lambda: found() is not None, timeout_s):
                raise TimeoutError(f"no request with {fragment!r} reached the docker proxy in {timeout_s} s")
            line = found()
            assert line is not None
            return line

    def wait_for_accepted(self, count: int, timeout_s: float = 30.0) -> int:
        """Blocks until at least `count` connections have been accepted; returns how many have."""
        with self._changed:
            if not self._changed.wait_for(lambda: self._accepted >= count, timeout_s):
                raise TimeoutError(f"{self._accepted} of {count} connections reached the docker proxy in {timeout_s} s")
            return self._accepted

    def wait_for_open_connections(self, count: int, timeout_s: float = 30.0) -> int:
        """Blocks until at least `count` forwarded connections are open at once (e.g. an exec stream started)."""
        with self._changed:
            if not self._changed.wait_for(lambda: len(self._links) >= count, timeout_s):
                raise TimeoutError(
                    f"{len(self._links)} of {count} connections open at the docker proxy in {timeout_s} s"
                )
            return len(self._links)

    # --- faults ---

    def cut(self, *, remove_path: bool = False) -> None:
        """The engine becomes unreachable: no new connection is accepted, and every open one is closed.

        Idempotent. With `remove_path`, the socket file goes too, and a connect fails with ENOENT instead of
        ECONNREFUSED (as when the engine was never started).
        """
        with self._changed:
            listener, self._listener = self._listener, None
        if listener is not None:
            listener.stop(remove_path)
        elif remove_path:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
        with self._changed:
            for link in self._links:
                link.sever()
            if not self._changed.wait_for(lambda: not self._links, JOIN_S):
                raise RuntimeError(f"{len(self._links)} forwarded connection(s) still open {JOIN_S} s after a cut")

    def restore(self) -> None:
        """The engine is reachable again through the same path. Idempotent."""
        with self._changed:
            if self._listener is None:
                self._listener = _Listener(self)

    # --- forwarding, on the proxy's threads ---

    def _forward(self, client: socket.socket) -> None:
        with self._changed:
            self._accepted += 1
            self._changed.notify_all()
        engine = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            engine.connect(self.upstream)
        except OSError as exc:
            logger.warning("docker proxy: cannot reach the engine at %s: %s", self.upstream, exc)
            with self._changed:  # counted before the client sees the hang-up
                self._refused_upstream += 1
                self._changed.notify_all()
            engine.close()
            client.close()
            return
        link = _Link(client, engine)
        with self._changed:
            self._links.add(link)
            self._changed.notify_all()
        for source, target, name in ((client, engine, "out"), (engine, client, "in")):
            thread = threading.Thread(target=self._pump, args=(link, source, target), name=f"docker-proxy-{name}")
            thread.daemon = True
            thread.start()

    def _pump(self, link: _Link, source: socket.socket, target: socket.socket) -> None:
        """Copies one direction until end of file (passed on as a half-close) or an error (which ends both)."""
        try:
            while data := source.recv(CHUNK):
                if source is link.client:
                    self._note_request(data)
                target.sendall(data)
            target.shutdown(socket.SHUT_WR)
        except OSError:
            link.sever()
        finally:
            self._pump_done(link)

    def _note_request(self, data: bytes) -> None:
        line = REQUEST_LINE.match(data)
        if line is not None:
            with self._changed:
                self._requests.append(f"{line[1].decode()} {line[2].decode(errors='replace')}")
                self._changed.notify_all()

    def _pump_done(self, link: _Link) -> None:
        with self._changed:
            link.pumps_left -= 1
            if link.pumps_left:
                return
            link.client.close()
            link.engine.close()
            self._links.discard(link)
            self._changed.notify_all()
