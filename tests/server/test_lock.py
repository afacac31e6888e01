"""One server per data dir, checked with real server processes over stdio."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from processes import LineChild

REPO_ROOT = Path(__file__).resolve().parents[2]
SERVE = [sys.executable, "-m", "server", "serve"]
DEADLINE_S = 30.0
"""A server pays for a Python start-up and the mcp imports before it answers."""

INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "lock", "version": "0"}},
}


class StdioServer(LineChild):
    """`managed-sessions serve` as a child, with stdin kept open."""

    def __init__(self, env: dict[str, str], stderr_path: Path) -> None:
        super().__init__(SERVE, stderr_path, env=env, deadline_s=DEADLINE_S)

    def initialize(self) -> dict[str, Any]:
        """Completes the MCP handshake; once it answers, the server holds the lock (taken before it serves)."""
        self.say(json.dumps(INITIALIZE))
        response: dict[str, Any] = json.loads(self.next_line())
        assert response.get("id") == 1, response
        return response

    def close_stdin(self) -> int:
        """Disconnects the client, as a host does when it quits; returns the exit status."""
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        return self.wait()


@pytest.fixture
def server_env(subprocess_env: dict[str, str]) -> dict[str, str]:
    # The child imports this checkout even where the package is not installed.
    return {**subprocess_env, "PYTHONPATH": str(REPO_ROOT)}


@pytest.fixture
def start_server(server_env: dict[str, str], tmp_path: Path) -> Iterator[Callable[[], StdioServer]]:
    """Starts stdio servers; any still running when the test ends is killed."""
    servers: list[StdioServer] = []

    def start() -> StdioServer:
        servers.append(StdioServer(server_env, tmp_path / f"server-{len(servers)}.stderr"))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


def lock_holder(data_dir: Path) -> str:
    return (data_dir / "server.lock").read_text(encoding="utf-8")


def test_a_second_server_on_the_same_data_dir_refuses_to_start_and_names_the_holder(
    start_server: Callable[[], StdioServer], server_env: dict[str, str], data_dir: Path
) -> None:
    first = start_server()
    response = first.initialize()
    assert response["result"]["serverInfo"]["name"] == "managed-sessions"
    assert lock_holder(data_dir) == str(first.proc.pid)

    second = subprocess.run(
        SERVE,
        env=server_env,
        cwd=REPO_ROOT,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=DEADLINE_S,
    )

    assert second.returncode == 1, second.stderr
    assert second.stdout == ""  # stdout is the protocol: nothing else may appear there
    assert "another managed-sessions server" in second.stderr
    assert f"pid {first.proc.pid}" in second.stderr
    assert str(data_dir) in second.stderr
    assert "Traceback" not in second.stderr
    assert lock_holder(data_dir) == str(first.proc.pid)  # the refused server left the holder's pid alone

    assert first.close_stdin() == 0, first.stderr()


def opened_lock_file(pid: int, data_dir: Path) -> bool:
    """Whether process `pid` holds `server.lock` open: it has begun trying for the lock (the file is opened first)."""
    lock_file = (data_dir / "server.lock").resolve()
    try:
        fds = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return False
    for fd in fds:
        try:
            if fd.readlink() == lock_file:
                return True
        except OSError:
            continue  # closed while looking
    return False


def test_a_second_server_waits_for_a_holder_that_is_shutting_down_then_starts(
    start_server: Callable[[], StdioServer], data_dir: Path
) -> None:
    """A client restarting its server may start the new one before the old one has gone: the new one waits."""
    fd = os.open(data_dir / "server.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # this test is the holder on its way out
        os.write(fd, b"999999")
        second = start_server()
        deadline = time.monotonic() + DEADLINE_S  # a bound on the poll, not a measurement
        while not opened_lock_file(second.proc.pid, data_dir):
            assert second.proc.poll() is None, f"the second server exited while the lock was held:\n{second.stderr()}"
            assert time.monotonic() < deadline, "the second server never opened the lock file"
        assert second.proc.poll() is None  # trying for the lock, not refused
        assert lock_holder(data_dir) == "999999"
    finally:
        os.close(fd)  # the holder is gone; the kernel drops its flock

    response = second.initialize()

    assert response["result"]["serverInfo"]["name"] == "managed-sessions"
    assert lock_holder(data_dir) == str(second.proc.pid)
    assert "another managed-sessions server" not in second.stderr()
    assert second.close_stdin() == 0, second.stderr()


def test_a_server_starts_once_the_previous_one_has_exited(
    start_server: Callable[[], StdioServer], data_dir: Path
) -> None:
    first = start_server()
    first.initialize()
    assert first.close_stdin() == 0, first.stderr()

    second = start_server()
    second.initialize()

    assert lock_holder(data_dir) == str(second.proc.pid)
    assert second.close_stdin() == 0, second.stderr()


def test_a_server_killed_with_sigkill_leaves_no_stale_lock(
    start_server: Callable[[], StdioServer], data_dir: Path
) -> None:
    first = start_server()
    first.initialize()
    first.kill_9()
    assert lock_holder(data_dir) == str(first.proc.pid)  # the file stays; the kernel dropped the flock

    second = start_server()
    second.initialize()

    assert lock_holder(data_dir) == str(second.proc.pid)
    assert "another managed-sessions server" not in second.stderr()
    assert second.close_stdin() == 0, second.stderr()
