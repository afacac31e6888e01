"""The vault's index: every non-secret fact about vaults and credentials, in one JSON file.

The keyring cannot list what it holds, so this file is the list; the secrets themselves stay
in the keyring under each credential's id. The CLI writes the file while a running server
reads it, so:

- every write is a read-modify-write under an exclusive `flock` on a sibling lock file,
  and lands atomically (temp file, fsync, `os.replace`): a reader sees the old file or the
  new one, never half of one, and needs no lock;
- readers re-parse only when the file's inode, size or mtime changed, so the hot path
  (a session resolving a token) costs one `stat`.

The file is 0600 in a 0700 directory: it holds no secret, but it does say which servers and
hosts the user has tokens for.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from vault.errors import VaultError
from vault.models import CredentialInfo

__all__ = ["IndexData", "VaultIndex", "VaultRecord"]


class VaultRecord(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    display_name: str
    metadata: dict[str, str]
    created_at: datetime
    updated_at: datetime | None = None
    archived_at: datetime | None = None


class IndexData(BaseModel):
    """The whole file. Lists keep creation order, which is the order `list_*` report."""

    model_config = ConfigDict(extra="forbid")

    version: Literal[1] = 1
    vaults: list[VaultRecord] = []
    credentials: list[CredentialInfo] = []  # the published shape is the stored one


_StatKey = tuple[int, int, int]


class VaultIndex:
    """Reads (cached) and writes (locked, atomic) the index file at `path`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock_path = path.with_name(path.name + ".lock")
        self._guard = threading.Lock()
        self._cached: IndexData = IndexData()
        self._cached_key: _StatKey | None = None

    def read(self) -> IndexData:
        """The current index; callers must not change it (use `update`)."""
        key = self._stat_key()
        with self._guard:
            if key != self._cached_key:
                self._cached = self._load() if key is not None else IndexData()
                self._cached_key = key
            return self._cached

    @contextmanager
    def update(self) -> Iterator[IndexData]:
        """A fresh copy to change; written back when the block ends without an exception."""
        with self._exclusive():
            data = self._load() if self.path.exists() else IndexData()
            yield data
            self._write(data)

    def _stat_key(self) -> _StatKey | None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise VaultError(f"cannot read the vault index {str(self.path)!r}: {exc.strerror}") from exc
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def _load(self) -> IndexData:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return IndexData()
        except OSError as exc:
            raise VaultError(f"cannot read the vault index {str(self.path)!r}: {exc.strerror}") from exc
        try:
            return IndexData.model_validate_json(text)
        except ValidationError as exc:
            raise VaultError(
                f"the vault index {str(self.path)!r} is damaged ({exc.error_count()} problem(s)); "
                "restore it from a backup or move it aside (its secrets stay in the keyring)"
            ) from None

    @contextmanager
    def _exclusive(self) -> Iterator[None]:
        """One writer at a time, across processes (flock) and threads (flock is per open file)."""
        self._ensure_dir()
        try:
            fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise VaultError(f"cannot lock the vault index {str(self._lock_path)!r}: {exc.strerror}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def _ensure_dir(self) -> None:
        parent = self.path.parent
        try:
            parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            if parent.stat().st_mode & 0o077:
                parent.chmod(0o700)
        except OSError as exc:
            raise VaultError(f"cannot make the vault directory {str(parent)!r}: {exc.strerror}") from exc

    def _write(self, data: IndexData) -> None:
        text = data.model_dump_json(indent=2) + "\n"
        try:
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".index-", suffix=".tmp")  # mode 0600
        except OSError as exc:
            raise VaultError(f"cannot write the vault index in {str(self.path.parent)!r}: {exc.strerror}") from exc
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as file:
                file.write(text)
                file.flush()
                os.fsync(file.fileno())
            os.replace(tmp, self.path)
        except OSError as exc:
            Path(tmp).unlink(missing_ok=True)
            raise VaultError(f"cannot write the vault index {str(self.path)!r}: {exc.strerror}") from exc
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
