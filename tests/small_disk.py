"""A small real file system that a test can fill up: a tmpfs mounted for the test, unmounted afterwards.

tmpfs has no blocks reserved for root (ext4 keeps 5 % for root, and the tests run as root), so "full" here
means full for the server too. Mounting needs root (CAP_SYS_ADMIN); elsewhere the fixture skips, or fails when
`MANAGED_SESSIONS_REQUIRE_FAULTS=1` says the fault tests must run (CI).

What a full disk does and does not stop: `fill()` leaves no free block, so anything that needs a new block
fails with ENOSPC (SQLite: `sqlite3.OperationalError: database or disk is full`, SQLITE_FULL). Rewriting blocks
a file already has still works, and so does creating an empty file; SQLite's WAL file is reused from its start
after a checkpoint, so a commit small enough to fit in the WAL's existing size can still succeed on a full disk.

Example (a fixture in the test module: one imported from here would trip ruff's F811):
    @pytest.fixture
    def small_disk() -> Iterator[SmallDisk]:
        with mounted_small_disk(size_mib=64) as disk:  # skips, or fails in CI, where it cannot mount
            yield disk

    def test_the_server_survives_a_full_disk(small_disk: SmallDisk) -> None:
        config = ServerConfig(data_dir=small_disk.path / "data", ...)
        ...
        small_disk.fill()
        ...  # a write fails with "database or disk is full"; the server stays up
        small_disk.free()
        ...  # and the session resumes
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

__all__ = [
    "FILLER_NAME",
    "REQUIRE_FAULTS",
    "SmallDisk",
    "SmallDiskUnavailable",
    "mounted_small_disk",
    "require_faults",
]

logger = logging.getLogger(__name__)

REQUIRE_FAULTS = "MANAGED_SESSIONS_REQUIRE_FAULTS"
FILLER_NAME = ".filler"
MIB = 1024 * 1024


class SmallDiskUnavailable(RuntimeError):
    """This machine cannot mount a tmpfs for the test (not root, or no CAP_SYS_ADMIN)."""


def require_faults(why: str) -> None:
    """Skips the test, or fails it when `MANAGED_SESSIONS_REQUIRE_FAULTS=1` says fault tests must run here."""
    if os.environ.get(REQUIRE_FAULTS) == "1":
        pytest.fail(f"faults are required here ({REQUIRE_FAULTS}=1) but unavailable: {why}")
    pytest.skip(f"faults unavailable: {why}")


class SmallDisk:
    """A tmpfs of `size_mib` MiB mounted at `path` while the context is open.

    `fill()` writes a filler file at the top of the mount until the disk is full; `free()` removes it.
    Everything on the mount is gone once the context closes.
    """

    def __init__(self, size_mib: int = 64, path: Path | None = None) -> None:
        if size_mib < 1:
            raise ValueError("size_mib must be at least 1")
        self.size_mib = size_mib
        self._own_dir = path is None
        self.path = path or Path(tempfile.mkdtemp(prefix="small-disk-"))
        self._mounted = False

    def __enter__(self) -> SmallDisk:
        if os.geteuid() != 0:
            raise SmallDiskUnavailable("mounting a tmpfs needs root")
        self.path.mkdir(parents=True, exist_ok=True)
        mounted = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={self.size_mib}m,mode=0755", "tmpfs", str(self.path)],
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
        if mounted.returncode != 0:
            raise SmallDiskUnavailable(f"mount -t tmpfs failed: {mounted.stderr.strip() or mounted.returncode}")
        self._mounted = True
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Unmounts (lazily when something still holds a file open there) and removes the mount point."""
        if self._mounted:
            done = subprocess.run(["umount", str(self.path)], capture_output=True, text=True, check=False, timeout=30)
            if done.returncode != 0:
                logger.warning("small disk: umount %s failed (%s); unmounting lazily", self.path, done.stderr.strip())
                subprocess.run(["umount", "--lazy", str(self.path)], check=True, timeout=30)
            self._mounted = False
        if self._own_dir:
            with contextlib.suppress(OSError):
                self.path.rmdir()

    @property
    def filler(self) -> Path:
        return self.path / FILLER_NAME

    @property
    def free_bytes(self) -> int:
        """Bytes still available to root (and anyone: tmpfs reserves nothing)."""
        stat = os.statvfs(self.path)
        return stat.f_bavail * stat.f_frsize

    @property
    def is_full(self) -> bool:
        return self.free_bytes == 0

    def fill(self) -> int:
        """Writes to the filler file until the disk has no free block left; returns how many bytes were added.

        Can be called again after the server freed or used space, to fill what is free now.
        """
        added = 0
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            chunk = MIB
            block = b"\0" * MIB
            while chunk >= 1:
                try:
                    written = os.write(fd, block[:chunk])
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    chunk //= 2  # the last free pages take smaller writes
                    continue
                added += written
            os.fsync(fd)
        finally:
            os.close(fd)
        if not self.is_full:
            raise AssertionError(f"the small disk at {self.path} still has {self.free_bytes} bytes free after fill()")
        return added

    def free(self) -> None:
        """Removes the filler: the disk has as much room as before `fill()` (and whatever the server freed)."""
        with contextlib.suppress(FileNotFoundError):
            self.filler.unlink()

    def clear(self) -> None:
        """Removes everything on the mount, filler included."""
        for entry in self.path.iterdir():
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()


@contextlib.contextmanager
def mounted_small_disk(size_mib: int = 64) -> Iterator[SmallDisk]:
    """`SmallDisk` that skips the test (or fails it under `MANAGED_SESSIONS_REQUIRE_FAULTS=1`) where it cannot mount."""
    disk = SmallDisk(size_mib)
    try:
        disk.__enter__()
    except SmallDiskUnavailable as exc:
        disk.close()
        require_faults(str(exc))
    try:
        yield disk
    finally:
        disk.close()
