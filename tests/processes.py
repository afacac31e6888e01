"""Starting the server as a real child process, and waiting for it without sleeps that guess."""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx2

SERVER = [sys.executable, "-m", "server"]
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}},
}
"""A raw MCP initialize request (handshake era), for tests that speak HTTP or stdio by hand."""
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
MCP_HTTP_TIMEOUT = httpx2.Timeout(30.0, read=300.0)
"""For an httpx client given to the SDK's Streamable HTTP client: the SDK's own defaults for the client it makes
(httpx's 5 s read timeout ends a long tool call on a loaded machine)."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, process: subprocess.Popen[bytes], timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"server exited with {process.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"nothing listened on port {port} within {timeout_s} s")


@contextmanager
def http_server(env: dict[str, str], stderr_path: Path, *extra: str) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """`managed-sessions serve --transport http` on a free loopback port, stopped afterwards."""
    port = free_port()
    with stderr_path.open("wb") as stderr:
        process = subprocess.Popen(
            [*SERVER, "serve", "--transport", "http", "--port", str(port), *extra],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            cwd=Path(__file__).parent.parent,
        )
        try:
            wait_for_port(port, process)
            yield port, process
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def python_path_env(env: dict[str, str]) -> dict[str, str]:
    """The child imports the package from this checkout even where it is not installed."""
    root = str(Path(__file__).parent.parent)
    return {**env, "PYTHONPATH": os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)}


def run_command(args: list[str], env: dict[str, str], timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
    """`python -m server ARGS` to completion, with no stdin, capturing its output as text."""
    return subprocess.run(
        [*SERVER, *args],
        env=python_path_env(env),
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
        stdin=subprocess.DEVNULL,
    )


class LineChild:
    """A child process talking in lines; stdout is read in a thread, so every wait has a deadline."""

    def __init__(
        self, argv: list[str], stderr_path: Path, env: dict[str, str] | None = None, deadline_s: float = 30.0
    ) -> None:
        self.stderr_path = stderr_path
        self.deadline_s = deadline_s
        with stderr_path.open("w", encoding="utf-8") as stderr:
            self.proc = subprocess.Popen(
                argv,
                env=env,
                cwd=Path(__file__).parent.parent,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
            )
        self._lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line)
        self._lines.put("")  # EOF

    def next_line(self, timeout_s: float | None = None) -> str:
        """The next line the child prints; fails with its stderr if it exits or stays silent."""
        timeout_s = self.deadline_s if timeout_s is None else timeout_s
        try:
            line = self._lines.get(timeout=timeout_s)
        except queue.Empty:
            raise AssertionError(f"child {self.proc.pid} printed nothing for {timeout_s} s") from None
        if not line:
            status = self.proc.wait(timeout=self.deadline_s)
            raise AssertionError(f"child {self.proc.pid} closed stdout, exit status {status}:\n{self.stderr()}")
        return line.strip()

    def say(self, text: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()

    def wait(self) -> int:
        return self.proc.wait(timeout=self.deadline_s)

    def kill_9(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        assert self.wait() == -signal.SIGKILL

    def stop(self) -> None:
        """Kills the child if it still runs and closes its pipes (test teardown)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=self.deadline_s)
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                stream.close()

    def stderr(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8")
