"""Starting the server as a real child process, and waiting for it without sleeps that guess."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SERVER = [sys.executable, "-m", "server"]


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
