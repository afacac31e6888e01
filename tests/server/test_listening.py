"""`server.url`: how the CLI finds the HTTP server on a data dir, and why it never trusts a stale record."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from server.core.listening import URL_FILE, announce_url, announced_url, local_url


def _hold(data_dir: Path, pid: int) -> None:
    """What `hold_data_dir` leaves in the lock file: the holder's pid."""
    (data_dir / "server.lock").write_text(str(pid), encoding="utf-8")


def test_the_url_is_found_while_its_server_holds_the_data_dir_and_gone_after(tmp_path: Path) -> None:
    _hold(tmp_path, os.getpid())
    with announce_url(tmp_path, "http://127.0.0.1:8765"):
        assert announced_url(tmp_path) == "http://127.0.0.1:8765"
    assert announced_url(tmp_path) is None
    assert not (tmp_path / URL_FILE).exists()


def test_a_record_left_by_a_killed_server_is_not_trusted(tmp_path: Path) -> None:
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(gone.stdout)
    (tmp_path / URL_FILE).write_text(json.dumps({"url": "http://127.0.0.1:1", "pid": dead_pid}), encoding="utf-8")
    _hold(tmp_path, dead_pid)
    assert announced_url(tmp_path) is None


def test_a_record_of_another_process_than_the_lock_holder_is_not_trusted(tmp_path: Path) -> None:
    """A stdio server took the data dir after an HTTP one died: the lock names it, not the recorded pid."""
    (tmp_path / URL_FILE).write_text(json.dumps({"url": "http://127.0.0.1:1", "pid": os.getppid()}), encoding="utf-8")
    _hold(tmp_path, os.getpid())
    assert announced_url(tmp_path) is None


@pytest.mark.parametrize("garbage", ["", "not json", "[1]", '{"url": 5, "pid": "x"}'])
def test_a_garbled_record_reads_as_no_server(tmp_path: Path, garbage: str) -> None:
    (tmp_path / URL_FILE).write_text(garbage, encoding="utf-8")
    _hold(tmp_path, os.getpid())
    assert announced_url(tmp_path) is None


@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("127.0.0.1", "http://127.0.0.1:80"),
        ("0.0.0.0", "http://127.0.0.1:80"),
        ("::", "http://[::1]:80"),
        ("::1", "http://[::1]:80"),
        ("ms.internal", "http://ms.internal:80"),
    ],
)
def test_a_wildcard_bind_is_reached_over_loopback(host: str, url: str) -> None:
    assert local_url(host, 80) == url
