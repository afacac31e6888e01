"""One server per data dir.

Two servers on one store would both run the same sessions and drive the same
containers, so the second one refuses to start. The lock is an advisory
`flock` on `server.lock` in the data dir: the kernel releases it when the
holder exits, even after `kill -9`, so a crash never leaves a stale lock.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from server.core.errors import DataDirInUseError

__all__ = ["hold_data_dir"]

LOCK_WAIT_S = 3.0
"""A client restarting its server may start the new one before the old one has exited."""


@contextmanager
def hold_data_dir(data_dir: Path, wait_s: float = LOCK_WAIT_S) -> Iterator[None]:
    """Holds the data dir's lock for the duration, or raises `DataDirInUseError`."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / "server.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise DataDirInUseError(_in_use_message(path, data_dir)) from None
                time.sleep(0.05)
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        yield
    finally:
        os.close(fd)


def _in_use_message(path: Path, data_dir: Path) -> str:
    holder = path.read_text(encoding="utf-8").strip() or "unknown"
    return (
        f"another managed-sessions server (pid {holder}) is using the data dir {str(data_dir)!r}. "
        "Stop it, point MANAGED_SESSIONS_DATA_DIR at another directory, or share one server between "
        "clients by running 'managed-sessions serve --transport http'."
    )
