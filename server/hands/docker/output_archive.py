"""Output files read from a container that is not running, through Docker's archive API.

Why: reading outputs must never start a container (an idle session's was stopped to free what it held). The
engine hands out a tar of /mnt/session/outputs from a stopped or created container, its volumes included, and
this module answers from it as the helper answers from a running one: regular files only (a symlink, a FIFO or a
socket is not an output, wherever it points), the same refusals in the helper's wording, a path followed through
symlinks only while it stays inside the outputs folder.

Two things could differ between the two ways and are made equal in the pool, not here: the archive carries
modification times in whole seconds (so both ways report whole seconds), and the mime type is guessed on the
host for both (the image's own table may differ from the host's).

Trust: the tar comes from the session's volumes, which the agent wrote; names and links are data, never paths on
the host. Nothing is extracted; file contents are hashed or sliced as they stream past.
"""

from __future__ import annotations

import hashlib
import io
import posixpath
import tarfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import IO

from server.core.errors import InvalidRequestError
from server.hands.helper.helper import OUTPUTS_MAX_FILES, mime_type
from server.hands.sandbox import OutputChunkData, OutputFileInfo

__all__ = ["OUTPUTS_PATH", "list_archived", "read_archived", "whole_seconds"]

OUTPUTS_PATH = "/mnt/session/outputs"
HASH_CHUNK_BYTES = 1024 * 1024
MAX_LINK_HOPS = 40
"""As Linux's own limit on symlinks followed in one lookup (ELOOP past it)."""

Chunks = Iterable[bytes]


@dataclass(frozen=True)
class _Entry:
    """One archive member, by its path relative to the outputs folder."""

    kind: bytes
    link: str = ""


class _ChunkReader(io.RawIOBase):
    """The engine's byte chunks as a file, so `tarfile` can stream them without holding the archive."""

    def __init__(self, chunks: Chunks) -> None:
        self._chunks: Iterator[bytes] = iter(chunks)
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        while not self._pending:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._pending = chunk
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size


def _members(chunks: Chunks) -> Iterator[tuple[tarfile.TarFile, tarfile.TarInfo, str]]:
    """Each member but the folder itself, with its path relative to the outputs folder."""
    with tarfile.open(fileobj=io.BufferedReader(_ChunkReader(chunks)), mode="r|") as tar:
        for member in tar:
            rel = _relative(member.name)
            if rel:
                yield tar, member, rel


def _relative(name: str) -> str:
    """'outputs/a/b' -> 'a/b' (the archive names the folder it was asked for first)."""
    _, _, rel = name.strip("/").partition("/")
    return rel


def whole_seconds(mtime_s: float) -> str:
    """RFC 3339 in UTC, in the helper's shape, at the archive's precision (whole seconds)."""
    moment = datetime.fromtimestamp(int(mtime_s), UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + ".000Z"


def _printable(name: str) -> str:
    """As the helper's: a name that is not UTF-8 must not break JSON."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def list_archived(chunks: Chunks) -> list[OutputFileInfo]:
    """What `list_outputs` gives, from the outputs folder's archive (blocking). A second name of a file (a hard
    link) is listed as the helper lists it: a regular file with the same contents."""
    described: dict[str, OutputFileInfo] = {}
    entries = 0
    for tar, member, rel in _members(chunks):
        if member.isdir():
            continue
        entries += 1
        if entries > OUTPUTS_MAX_FILES:
            break
        if member.isreg():
            described[rel] = _describe(tar, member, rel)
        elif member.islnk() and (first := described.get(_relative(member.linkname))) is not None:
            described[rel] = replace(first, path=_printable(rel))
    return sorted(described.values(), key=lambda f: f.path)


def _describe(tar: tarfile.TarFile, member: tarfile.TarInfo, rel: str) -> OutputFileInfo:
    digest = hashlib.sha256()
    handle = tar.extractfile(member)
    if handle is not None:
        for chunk in iter(lambda: handle.read(HASH_CHUNK_BYTES), b""):
            digest.update(chunk)
    return OutputFileInfo(
        path=_printable(rel),
        size_bytes=member.size,
        mime_type=mime_type(rel),
        sha256=digest.hexdigest(),
        modified_at=whole_seconds(member.mtime),
    )


def read_archived(open_chunks: Callable[[], Chunks], given: str, offset: int, max_bytes: int) -> OutputChunkData:
    """What `read_output` gives, from the outputs folder's archive (blocking); `open_chunks` opens it anew, as a
    path through a link needs a second pass. Raises `InvalidRequestError` with the helper's refusals."""
    if given.startswith("/"):
        raise _refusal(given, "give a path relative to the outputs directory")
    if ".." in given.split("/"):
        raise _refusal(given, "'..' is not allowed")
    wanted = posixpath.normpath(given)
    entries, found = _pass(open_chunks(), wanted, offset, max_bytes)
    target = _resolve(entries, wanted, given)
    entry = entries.get(target)
    if entry is not None and entry.kind == tarfile.LNKTYPE:
        target = _relative(entry.link)
        entry = entries.get(target)
    if entry is None:
        raise _refusal(given, _missing_reason(entries, target))
    if entry.kind not in tarfile.REGULAR_TYPES:
        raise _refusal(given, "not a regular file")
    if target != wanted or found is None:
        _, found = _pass(open_chunks(), target, offset, max_bytes)
    if found is None:  # the file went between the two passes
        raise _refusal(given, "no such file or directory")
    size, data = found
    return OutputChunkData(mime_type=mime_type(given), size_bytes=size, data=data, eof=offset + len(data) >= size)


def _pass(
    chunks: Chunks, wanted: str, offset: int, max_bytes: int
) -> tuple[dict[str, _Entry], tuple[int, bytes] | None]:
    """Every member's kind and link, and the slice of `wanted` if it is a regular file."""
    entries: dict[str, _Entry] = {}
    found: tuple[int, bytes] | None = None
    for tar, member, rel in _members(chunks):
        entries[rel] = _Entry(member.type, member.linkname)
        if rel == wanted and member.isreg():
            handle = tar.extractfile(member)
            found = (member.size, _slice(handle, offset, max_bytes) if handle is not None else b"")
    return entries, found


def _slice(handle: IO[bytes], offset: int, max_bytes: int) -> bytes:
    remaining = offset
    while remaining > 0 and (skipped := len(handle.read(min(remaining, HASH_CHUNK_BYTES)))):
        remaining -= skipped
    return handle.read(max_bytes)


def _resolve(entries: dict[str, _Entry], path: str, given: str) -> str:
    """`path` with its symlinks followed, relative to the outputs folder; a path that leaves it is refused."""
    parts = [p for p in path.split("/") if p not in ("", ".")]
    resolved: list[str] = []
    hops = 0
    while parts:
        part = parts.pop(0)
        entry = entries.get("/".join([*resolved, part]))
        if entry is None or entry.kind != tarfile.SYMTYPE:
            resolved.append(part)
            continue
        hops += 1
        if hops > MAX_LINK_HOPS:
            raise _refusal(given, "too many levels of symbolic links")
        here = posixpath.join(OUTPUTS_PATH, *resolved)
        landing = posixpath.normpath(posixpath.join(here, entry.link))
        if landing != OUTPUTS_PATH and not landing.startswith(OUTPUTS_PATH + "/"):
            raise _refusal(given, "outside the outputs directory")
        parts = [p for p in landing[len(OUTPUTS_PATH) :].split("/") if p] + parts
        resolved = []
    return "/".join(resolved)


def _missing_reason(entries: dict[str, _Entry], target: str) -> str:
    """'not a directory' when a parent is a file, as the kernel says; else 'no such file or directory'."""
    parts = target.split("/")
    for depth in range(1, len(parts)):
        parent = entries.get("/".join(parts[:depth]))
        if parent is not None and parent.kind != tarfile.DIRTYPE:
            return "not a directory"
    return "no such file or directory"


def _refusal(given: str, reason: str) -> InvalidRequestError:
    return InvalidRequestError(f"read_output: {given}: {reason}")
