"""Uploaded files on disk under `<data_dir>/files/`, metadata in a JSON sidecar beside the bytes.

    files/incoming/<random>/            an upload being written (never listed; removed at the next start)
    files/uploads/<file_id>/content     the bytes, written once, then read-only
    files/uploads/<file_id>/meta.json   the FileMetadata
    files/outputs/<session_id>.json     output path -> its stable file id, per session
    files/outputs/ids/<file_id>.json    a file id -> its session and output path

An upload is written and fsynced in `incoming/`, then its directory is renamed into `uploads/` in one step:
a crash at any point leaves either nothing listed or the whole file. A delete renames the directory out of
`uploads/` first, so a reader never sees half a file. Sidecars rather than SQLite tables: the bytes live on
disk anyway, and one rename is the only commit point there is.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import threading
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from server.core.common import now_rfc3339
from server.core.errors import DataDirUnwritableError, NotFoundError, TooLargeError
from server.core.files import FileMetadata
from server.core.ids import is_id, new_id
from server.store.ports import OutputRecord

__all__ = ["DiskFileStore"]

COPY_CHUNK_BYTES = 1024 * 1024


class DiskFileStore:
    """Satisfies `FileStore`; see the module docstring for the layout."""

    def __init__(self, root: Path) -> None:
        self._root = root
        self._uploads = root / "uploads"
        self._incoming = root / "incoming"
        self._outputs = root / "outputs"
        self._lock = threading.Lock()  # output ids: two listings at once must agree on one id per path
        for folder in (self._uploads, self._incoming, self._outputs / "ids"):
            folder.mkdir(parents=True, exist_ok=True)
        for leftover in self._incoming.iterdir():  # uploads a crash cut short
            shutil.rmtree(leftover, ignore_errors=True)

    def put(self, metadata: FileMetadata, source: BinaryIO, max_bytes: int) -> FileMetadata:
        scratch = self._incoming / uuid.uuid4().hex
        try:
            with _disk_faults(self._root):
                scratch.mkdir()
                stored = self._put(metadata, source, max_bytes, scratch)
        except BaseException:
            shutil.rmtree(scratch, ignore_errors=True)
            raise
        return stored

    def _put(self, metadata: FileMetadata, source: BinaryIO, max_bytes: int, scratch: Path) -> FileMetadata:
        """Writes the bytes and the sidecar into `scratch`, synced, then renames it into `uploads/`."""
        size = _copy(source, scratch / "content", max_bytes)
        stored = metadata.model_copy(update={"size_bytes": size})
        _write_synced(scratch / "meta.json", stored.model_dump_json().encode())
        os.rename(scratch, self._uploads / metadata.id)
        _sync_dir(self._uploads)
        return stored

    def get(self, file_id: str) -> FileMetadata:
        meta = self._upload_dir(file_id) / "meta.json"
        try:
            return FileMetadata.model_validate_json(meta.read_bytes())
        except FileNotFoundError:
            raise NotFoundError(f"no file {file_id!r}; files.list shows the ones that exist") from None

    def list_uploads(self, limit: int, before: str | None) -> list[FileMetadata]:
        names = sorted((n for n in os.listdir(self._uploads) if is_id(n, "file")), reverse=True)
        if before is not None:
            names = [n for n in names if n < before]
        found: list[FileMetadata] = []
        for name in names:
            if len(found) == limit:
                break
            try:
                found.append(FileMetadata.model_validate_json((self._uploads / name / "meta.json").read_bytes()))
            except FileNotFoundError:
                continue  # deleted while we listed
        return found

    def content_path(self, file_id: str) -> Path:
        path = self._upload_dir(file_id) / "content"
        if not path.is_file():
            raise NotFoundError(f"no uploaded file {file_id!r}; files.list shows the ones that exist")
        return path

    def delete(self, file_id: str) -> None:
        folder = self._upload_dir(file_id)
        doomed = self._incoming / f"deleted-{uuid.uuid4().hex}"
        try:
            os.rename(folder, doomed)
        except FileNotFoundError:
            raise NotFoundError(f"no uploaded file {file_id!r}; files.list shows the ones that exist") from None
        shutil.rmtree(doomed, ignore_errors=True)

    def output_ids(self, session_id: str, paths: Sequence[str]) -> list[OutputRecord]:
        index_path = self._outputs / f"{session_id}.json"
        with self._lock, _disk_faults(self._root):
            index: dict[str, dict[str, str]] = json.loads(index_path.read_bytes()) if index_path.exists() else {}
            fresh = [p for p in paths if p not in index]
            for path in fresh:
                record = {"file_id": new_id("file"), "created_at": now_rfc3339()}
                index[path] = record
                by_id = {"session_id": session_id, "path": path, **record}
                _replace(self._outputs / "ids" / f"{record['file_id']}.json", json.dumps(by_id).encode())
            if fresh:
                _replace(index_path, json.dumps(index).encode())
        return [OutputRecord(session_id=session_id, path=p, **index[p]) for p in paths]

    def output_record(self, file_id: str) -> OutputRecord:
        if not is_id(file_id, "file"):
            raise NotFoundError(f"no file {file_id!r}; file ids look like file_01J...")
        try:
            return OutputRecord(**json.loads((self._outputs / "ids" / f"{file_id}.json").read_bytes()))
        except FileNotFoundError:
            raise NotFoundError(f"no file {file_id!r}; files.list shows the ones that exist") from None

    def _upload_dir(self, file_id: str) -> Path:
        if not is_id(file_id, "file"):
            raise NotFoundError(f"no file {file_id!r}; file ids look like file_01J...")
        return self._uploads / file_id


_UNWRITABLE = {
    errno.ENOSPC: ("its disk is full", "Free space on that disk"),
    errno.EDQUOT: ("its disk quota is used up", "Free space or raise the quota"),
    errno.EROFS: ("it is read-only", "Make it writable again (remount the file system, or fix its permissions)"),
    errno.EIO: ("the disk reported an I/O error", "Check the disk (dmesg, free space)"),
}


@contextmanager
def _disk_faults(root: Path) -> Iterator[None]:
    """A write the disk refuses is a `DataDirUnwritableError` that says why and what to do, as the store's are."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in _UNWRITABLE:
            raise
        reason, fix = _UNWRITABLE[exc.errno]
        raise DataDirUnwritableError(
            f"the files folder {str(root)!r} cannot take writes: {reason}. {fix}, then retry; nothing of this "
            "write was kept"
        ) from exc


def _copy(source: BinaryIO, target: Path, max_bytes: int) -> int:
    size = 0
    with target.open("wb") as out:
        while chunk := source.read(COPY_CHUNK_BYTES):
            size += len(chunk)
            if size > max_bytes:
                raise TooLargeError(f"the file is over {max_bytes} bytes, the upload limit; send a smaller file")
            out.write(chunk)
        out.flush()
        os.fsync(out.fileno())
    target.chmod(0o444)
    return size


def _write_synced(path: Path, data: bytes) -> None:
    with path.open("wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())


def _replace(path: Path, data: bytes) -> None:
    scratch = path.with_name(path.name + ".tmp")
    _write_synced(scratch, data)
    os.replace(scratch, path)


def _sync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
