"""The sandbox helper: runs inside a session's container and serves PROTOCOL.md on stdin/stdout.

Trust model: everything here runs as the sandbox user, inside the container, so
the helper guards nothing the model could not also reach with `bash`. The path
policy of the file tools still matters: it keeps their answers about the
session's own files (workdir, outputs, uploads, skills), keeps uploads and
skills read-only for them, and keeps container paths the caller never gave out of messages.

Why one large module: the host copies this single file into arbitrary images
and runs `python3 -u helper.py`, so it is standard library only, runs on Python
3.8+, and cannot be split into a package. Annotations stay strings
(`from __future__ import annotations`), so `X | None` in them is 3.8-safe.

Threads: stdin is read in the main thread and each request runs in a thread of
its own, so `list_outputs` answers while a long `bash` runs. Responses share
one lock on stdout; `bash` calls take turns in the order they arrived, as one
shell serves them all.
Anything that can run away (ripgrep, the Python grep, a `bash -n` check) runs
as a child process under a deadline, because a thread cannot be stopped and a
catastrophic regex holds the GIL, which would freeze every other request.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import fnmatch
import hashlib
import json
import logging
import mimetypes
import os
import platform
import re
import secrets
import select
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

logger = logging.getLogger("sandbox-helper")

HELPER_VERSION = "1"
HELPER_FILE = os.path.abspath(__file__)

DEFAULT_WORKDIR = "/workspace"
DEFAULT_OUTPUTS = "/mnt/session/outputs"
DEFAULT_UPLOADS = "/mnt/session/uploads"
DEFAULT_SKILLS = "/mnt/skills"
DEFAULT_SKILL_STORE = "/opt/managed-sessions/skill-store"

BASH_OUTPUT_LIMIT_BYTES = 100 * 1024
"""About 25k tokens: more would crowd the model's context; the tail is kept because errors come last."""
BASH_DEFAULT_TIMEOUT_MS = 120_000
BASH_MAX_TIMEOUT_MS = 600_000
"""Ten minutes: longer work belongs in the background (`cmd > log 2>&1 &`), polled by later calls."""
BASH_KILL_GRACE_S = 1.0
"""How long killed children get to let the shell print its sentinel before the shell counts as stuck."""
BASH_KILL_POLL_S = 0.05
"""Children can fork while being killed, so the process table is walked again this often during the grace."""
SYNTAX_CHECK_TIMEOUT_S = 10.0
SHELL_PARSE_MAX_BYTES = 2048
"""Commands up to this size are parsed by the persistent shell itself before they run; bash reads a pipe a byte
at a time (about 2 µs a byte), so larger ones are checked by a separate `bash -n` instead (about 2 ms)."""
EXIT_GRACE_S = 2.0
"""After EOF: enough for file requests in flight to answer, short enough that a stopping host is not kept."""
SHELL_EXIT_WAIT_S = 5.0
PIPE_CHUNK_BYTES = 64 * 1024
"""One pipe buffer on Linux: reads and writes of this size never starve the other side."""

READ_MAX_TEXT_BYTES = 256 * 1024
"""The text `read` and `edit` load whole; the same cap as the reference toolset (about 64k tokens)."""
READ_MAX_IMAGE_BASE64_BYTES = 5 * 1024 * 1024
"""The Messages API's per-image limit applies to the base64 form."""
READ_MAX_PDF_BYTES = 20 * 1024 * 1024
"""Raw PDF bytes; after base64's 4/3 the request stays under the API's 32 MB request limit."""

GLOB_RESULT_LIMIT = 200
GLOB_MAX_VISITED_ENTRIES = 200_000
"""Bounds a `**` walk of a huge tree (a few seconds of `scandir`); what was found by then is returned."""

GREP_OUTPUT_LIMIT_BYTES = 100 * 1024
GREP_MAX_LINE_BYTES = 2000
"""The fallback uses Python's backtracking `re` on a model-given pattern; long lines make ReDoS likelier."""
GREP_TIMEOUT_S = 30.0
GREP_KILL_SLACK_S = 5.0
"""The Python grep stops itself at `GREP_TIMEOUT_S`; this much later it is killed (a regex stuck in C)."""
GREP_MAX_FILES = 50_000
GREP_SKIPPED_DIRS = (".git", "node_modules")

OUTPUTS_MAX_FILES = 10_000
"""`list_outputs` answers in one JSON line; this keeps it to about 2 MB."""
READ_OUTPUT_DEFAULT_BYTES = 1024 * 1024
READ_OUTPUT_MAX_BYTES = 4 * 1024 * 1024
"""4 MiB raw is about 5.6 MB of base64: large enough to copy files out quickly, small per line."""
HASH_CHUNK_BYTES = 1024 * 1024
HASH_CACHE_MAX_ENTRIES = 20_000

MAX_SYMLINK_HOPS = 40
"""Linux's own limit (`MAXSYMLINKS`) for dangling links we follow by hand."""

_MISSING_ERRNOS = (errno.ENOENT, errno.ENOTDIR)
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")
_BINARY_SUFFIXES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".pdf": "application/pdf",
}
_IMAGE_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)
_TEXT_SUFFIX_NAMES = (
    "md markdown txt text log csv tsv json jsonl ndjson yaml yml toml ini cfg conf env py pyi js mjs cjs ts tsx jsx "
    "sh bash zsh rs go java kt c h cc cpp hpp rb php pl sql xml html htm css scss diff patch rst tex r swift lua vue "
    "svelte gradle properties"
)
_TEXT_SUFFIXES = frozenset("." + name for name in _TEXT_SUFFIX_NAMES.split())


class ToolFailed(Exception):
    """A failure the model is told about verbatim, as the response's `error`."""


# --- errors and arguments -------------------------------------------------------------------------------------------


def _reason(exc: OSError) -> str:
    """One wording per failure on every image; the raw `OSError` text is platform-specific and names full paths."""
    if isinstance(exc, FileNotFoundError):
        return "no such file or directory"
    if isinstance(exc, NotADirectoryError):
        return "not a directory"
    if isinstance(exc, IsADirectoryError):
        return "is a directory"
    if isinstance(exc, PermissionError):
        return "permission denied"
    if isinstance(exc, FileExistsError):
        return "file already exists"
    if exc.errno == errno.ELOOP:
        return "too many levels of symbolic links"
    return (exc.strerror or "i/o error").lower()


@contextlib.contextmanager
def _os_errors(op: str, given: str) -> Iterator[None]:
    """Turns an `OSError` into the stable `"<op>: <path as given>: <reason>"` message."""
    try:
        yield
    except OSError as exc:
        raise ToolFailed(f"{op}: {given}: {_reason(exc)}") from exc


def _str_arg(op: str, args: dict[str, Any], name: str, required: bool = True) -> str | None:
    value = args.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise ToolFailed(f"{op}: {name} must be a string" if value is not None else f"{op}: {name} is required")
    if "\x00" in value:
        raise ToolFailed(f"{op}: {name} must not contain NUL characters")
    return value


def _path_arg(op: str, args: dict[str, Any], name: str) -> str:
    value = _str_arg(op, args, name)
    if not value:
        raise ToolFailed(f"{op}: {name} is required")
    return value


def _int_arg(op: str, args: dict[str, Any], name: str, default: int) -> int:
    value = args.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise ToolFailed(f"{op}: {name} must be an integer")
    return value


def _bool_arg(op: str, args: dict[str, Any], name: str) -> bool:
    value = args.get(name)
    if value is not None and not isinstance(value, bool):
        raise ToolFailed(f"{op}: {name} must be true or false")
    return bool(value)


def _printable(name: str) -> str:
    """A file name as valid UTF-8: a name that is not would break the JSON line on the host."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


# --- path policy ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Roots:
    """The directories the file tools may reach; uploads and skills are read-only for them."""

    workdir: str
    outputs: str
    uploads: str
    skills: str = DEFAULT_SKILLS
    skill_store: str = DEFAULT_SKILL_STORE
    """The server's skill versions, mounted read-only; `skills` holds links into it (`link_skills`)."""

    @classmethod
    def from_env(cls) -> Roots:
        env = os.environ
        return cls(
            env.get("MS_WORKDIR", DEFAULT_WORKDIR),
            env.get("MS_OUTPUTS", DEFAULT_OUTPUTS),
            env.get("MS_UPLOADS", DEFAULT_UPLOADS),
            env.get("MS_SKILLS", DEFAULT_SKILLS),
            env.get("MS_SKILL_STORE", DEFAULT_SKILL_STORE),
        )

    def real(self, root: str) -> str:
        """Resolved at each call: a root may be created or re-mounted after the helper starts."""
        return os.path.realpath(root)


def _within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def _canonicalize(path: str) -> str:
    """`path` with `.`/`..` collapsed and every symlink followed, even a dangling one; missing tails kept as spelled.

    The file tools then operate on this path, so a link that points out of the
    sandbox's files can neither pass the check nor be followed afterwards.
    Raises `OSError` (a loop, an unreadable directory) rather than returning a
    partly resolved path. A trailing `/` (or `/.`) says "a directory", as it does
    to the kernel: on an existing file it is `NotADirectoryError`, not the file.
    """
    canonical = _resolve_links(path)
    names_a_directory = path.endswith(("/", "/.")) or path == "."
    if names_a_directory and os.path.lexists(canonical) and not os.path.isdir(canonical):
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR))
    return canonical


def _resolve_links(path: str) -> str:
    prefix = os.path.normpath(path)
    tail: list[str] = []
    hops = 0
    while True:
        try:
            real = str(Path(prefix).resolve(strict=True))
            return os.path.join(real, *reversed(tail))
        except RuntimeError:  # a symlink loop, before Python 3.13
            raise OSError(errno.ELOOP, os.strerror(errno.ELOOP)) from None
        except OSError as exc:
            if exc.errno not in _MISSING_ERRNOS:
                raise
            missing = exc
        prefix, hops = _step_back(prefix, tail, missing, hops)


def _step_back(prefix: str, tail: list[str], missing: OSError, hops: int) -> tuple[str, int]:
    """One step of `_canonicalize` on a prefix that does not resolve: drop a missing part or follow a dangling link."""
    try:
        is_link = stat.S_ISLNK(os.lstat(prefix).st_mode)
    except OSError as exc:
        if exc.errno not in _MISSING_ERRNOS or prefix == os.path.dirname(prefix):
            raise
        tail.append(os.path.basename(prefix))
        return os.path.dirname(prefix), hops
    if not is_link:
        raise missing
    if hops >= MAX_SYMLINK_HOPS:
        raise OSError(errno.ELOOP, os.strerror(errno.ELOOP))
    parent = str(Path(os.path.dirname(prefix)).resolve(strict=True))
    target = os.path.normpath(os.path.join(parent, os.readlink(prefix), *reversed(tail)))
    tail.clear()
    return target, hops + 1


def resolve_path(roots: Roots, op: str, given: str, writing: bool = False) -> str:
    """The canonical path `given` names, if it lies inside the sandbox's files (and, to write, outside uploads)."""
    workdir = roots.real(roots.workdir)
    with _os_errors(op, given):
        canonical = _canonicalize(os.path.join(workdir, given))
    skills = (roots.real(roots.skills), roots.real(roots.skill_store))
    allowed = (workdir, roots.real(roots.outputs), roots.real(roots.uploads), *skills)
    if not any(_within(canonical, root) for root in allowed):
        raise ToolFailed(f"{op}: {given}: outside the sandbox's files")
    if writing and _within(canonical, roots.real(roots.uploads)):
        raise ToolFailed(f"{op}: {given}: the uploads directory is read-only")
    if writing and any(_within(canonical, root) for root in skills):
        raise ToolFailed(f"{op}: {given}: skills are read-only")
    return canonical


@contextlib.contextmanager
def _open_regular(path: str, op: str, given: str) -> Iterator[tuple[IO[bytes], int]]:
    """Opens a regular file for reading. O_NONBLOCK: opening a FIFO must not block; the check follows the open."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ToolFailed(f"{op}: {given}: not a regular file")
        handle = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    with handle:
        yield handle, st.st_size


def _write_regular(path: str, data: bytes, op: str, given: str) -> None:
    """Overwrites in place (keeping mode and hard links), refusing FIFOs and devices before writing."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(path, flags, 0o666)
    with os.fdopen(fd, "wb") as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ToolFailed(f"{op}: {given}: not a regular file")
        handle.truncate(0)
        handle.write(data)


# --- read, write, edit ----------------------------------------------------------------------------------------------


def _view_range(args: dict[str, Any]) -> tuple[int, int] | None:
    value = args.get("view_range")
    if value is None:
        return None
    if (
        not isinstance(value, list)
        or len(value) != 2
        or any(isinstance(n, bool) or not isinstance(n, int) for n in value)
    ):
        raise ToolFailed("read: view_range must be [start_line, end_line]")
    return value[0], value[1]


def read_file(roots: Roots, args: dict[str, Any]) -> dict[str, Any]:
    given = _path_arg("read", args, "file_path")
    view = _view_range(args)
    target = resolve_path(roots, "read", given)
    media_type = _BINARY_SUFFIXES.get(os.path.splitext(target)[1].lower())
    with _os_errors("read", given), _open_regular(target, "read", given) as (handle, size):
        if media_type is not None:
            if view is not None:
                raise ToolFailed("read: view_range is not supported for image/PDF files")
            return _read_media(handle, size, media_type, given)
        data = _read_whole(handle, size, "read", given) if view is None else _select_lines(handle, view, given)
    try:
        return {"type": "text", "text": data.decode("utf-8")}
    except UnicodeDecodeError:
        raise ToolFailed(
            f"read: {given}: not valid UTF-8 text (binary files are only supported for image/PDF extensions; "
            "inspect it with bash instead, e.g. `xxd FILE | head` or `base64 FILE`)"
        ) from None


def _read_whole(handle: IO[bytes], size: int, op: str, given: str) -> bytes:
    data = handle.read(READ_MAX_TEXT_BYTES + 1)
    if size > READ_MAX_TEXT_BYTES or len(data) > READ_MAX_TEXT_BYTES:
        if op == "edit":
            raise ToolFailed(
                f"edit: {given} is {max(size, len(data))} bytes, exceeds {READ_MAX_TEXT_BYTES}-byte limit. "
                "The edit tool loads the whole file and cannot modify a file this large."
            )
        raise ToolFailed(
            f"read: {given} is {max(size, len(data))} bytes, exceeds {READ_MAX_TEXT_BYTES}-byte limit. "
            "Use the view_range parameter to read specific line ranges, e.g. view_range: [1, 500]."
        )
    return data


def _select_lines(handle: IO[bytes], view: tuple[int, int], given: str) -> bytes:
    """Lines `[start, end]` (1-indexed, inclusive; end <= 0 is EOF) joined by `\\n`, streamed from any file size.

    Equals `"\\n".join(text.split("\\n")[start - 1:end])` of the whole file, but
    never holds more than the selected lines plus one chunk.
    """
    first, last = max(1, view[0]), view[1] if view[1] > 0 else None
    if last is not None and last < first:
        return b""
    selected = bytearray()
    line = 1
    while last is None or line <= last:
        chunk = handle.readline(PIPE_CHUNK_BYTES)
        if not chunk:
            return bytes(selected)
        if line >= first:
            selected += chunk
            if len(selected) > READ_MAX_TEXT_BYTES:
                raise _range_too_large(view, first, last, given)
        if chunk.endswith(b"\n"):
            line += 1
    return bytes(selected[:-1])  # the newline that ended the last selected line


def _range_too_large(view: tuple[int, int], first: int, last: int | None, given: str) -> ToolFailed:
    if last == first:
        return ToolFailed(
            f"read: line {first} of {given} alone exceeds {READ_MAX_TEXT_BYTES}-byte limit. "
            "The read tool cannot return part of a line, so view_range cannot narrow this further."
        )
    return ToolFailed(
        f"read: view_range [{view[0]}, {view[1]}] of {given} exceeds {READ_MAX_TEXT_BYTES}-byte limit. "
        "Narrow the view_range to read a smaller portion."
    )


def _read_media(handle: IO[bytes], size: int, media_type: str, given: str) -> dict[str, Any]:
    """An image or PDF as base64; the type comes from the content, since the API rejects a mismatched one."""
    limit = READ_MAX_PDF_BYTES if media_type == "application/pdf" else READ_MAX_IMAGE_BASE64_BYTES // 4 * 3
    if size > limit:
        raise ToolFailed(f"read: {given} is {size} bytes, exceeds {limit}-byte limit for image/PDF files.")
    data = handle.read(limit + 1)
    if len(data) > limit:
        raise ToolFailed(f"read: {given} is {len(data)} bytes, exceeds {limit}-byte limit for image/PDF files.")
    encoded = base64.b64encode(data).decode("ascii")
    if media_type == "application/pdf":
        if b"%PDF-" not in data[:1024]:
            raise ToolFailed(f"read: {given}: not a valid PDF file (no %PDF- header)")
        return {"type": "document", "media_type": media_type, "data": encoded}
    sniffed = _image_type(data)
    if sniffed is None:
        raise ToolFailed(f"read: {given}: not a valid image (the content is not PNG, JPEG, GIF or WebP)")
    return {"type": "image", "media_type": sniffed, "data": encoded}


def _image_type(data: bytes) -> str | None:
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return next((media for magic, media in _IMAGE_MAGIC if data.startswith(magic)), None)


def write_file(roots: Roots, args: dict[str, Any]) -> dict[str, Any]:
    given = _path_arg("write", args, "file_path")
    content = _str_arg("write", args, "content")
    target = resolve_path(roots, "write", given, writing=True)
    data = _encode_text("write", given, content or "")
    with _os_errors("write", given):
        os.makedirs(os.path.dirname(target), exist_ok=True)
        _write_regular(target, data, "write", given)
    return {"text": f"wrote {len(data)} bytes to {given}"}


def _encode_text(op: str, given: str, text: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise ToolFailed(f"{op}: {given}: the text is not valid Unicode (it has unpaired surrogates)") from None


def edit_file(roots: Roots, args: dict[str, Any]) -> dict[str, Any]:
    given = _path_arg("edit", args, "file_path")
    old, new = _str_arg("edit", args, "old_string") or "", _str_arg("edit", args, "new_string") or ""
    replace_all = _bool_arg("edit", args, "replace_all")
    if not old:
        raise ToolFailed("edit: old_string must not be empty")
    target = resolve_path(roots, "edit", given, writing=True)
    with _os_errors("edit", given), _open_regular(target, "edit", given) as (handle, size):
        data = _read_whole(handle, size, "edit", given)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ToolFailed(f"edit: {given}: not valid UTF-8 text (cannot edit binary files)") from None
    count = text.count(old)
    if count == 0:
        raise ToolFailed(f"edit: old_string not found in {given}")
    if count > 1 and not replace_all:
        raise ToolFailed(f"edit: old_string appears {count} times in {given} (must be unique)")
    updated = text.replace(old, new) if replace_all else text.replace(old, new, 1)
    with _os_errors("edit", given):
        _write_regular(target, _encode_text("edit", given, updated), "edit", given)
    return {"text": f"edited {given} ({count if replace_all else 1} replacement(s))"}


# --- glob -----------------------------------------------------------------------------------------------------------


def _search_root(roots: Roots, op: str, given: str | None) -> tuple[str, str]:
    """The resolved directory or file to search, and the prefix that shows results the way the caller named it."""
    if not given:
        return roots.real(roots.workdir), ""
    root = resolve_path(roots, op, given)
    prefix = "" if given in (".", "./") else given.rstrip("/") + "/"
    return root, prefix


def glob_files(roots: Roots, args: dict[str, Any]) -> dict[str, Any]:
    pattern = _str_arg("glob", args, "pattern") or ""
    given = _str_arg("glob", args, "path", required=False)
    if pattern.startswith("/"):
        raise ToolFailed("glob: absolute pattern not permitted; pass a relative pattern (and optionally path)")
    segments = _glob_segments(pattern)
    root, prefix = _search_root(roots, "glob", given)
    if not os.path.isdir(root):
        raise ToolFailed(f"glob: {given}: not a directory")
    matches = _Globber(root, segments).run()
    if pattern.endswith("/"):  # as in a shell and pathlib: a trailing slash matches directories only
        matches = [rel for rel in matches if os.path.isdir(os.path.join(root, rel))]
    if not matches:
        return {"text": "no matches"}
    matches.sort(key=lambda rel: (-_mtime(os.path.join(root, rel)), rel))
    return {"text": "\n".join(prefix + _printable(rel) for rel in matches[:GLOB_RESULT_LIMIT])}


def _glob_segments(pattern: str) -> list[str]:
    parts = [part for part in pattern.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise ToolFailed("glob: '..' is not permitted in the pattern")
    if not parts:
        raise ToolFailed("glob: pattern must name something, e.g. '**/*.py'")
    collapsed: list[str] = []
    for part in parts:
        if not (part == "**" and collapsed and collapsed[-1] == "**"):
            collapsed.append(part)
    return collapsed


def _mtime(path: str) -> float:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return 0.0


class _Globber:
    """A doublestar walk: `**` is any number of directories (never through a symlink); `*`, `?`, `[...]` one name.

    Written out, not `pathlib.Path.glob`, because that changed across 3.8-3.13
    (what `**` yields, whether it follows links) and cannot bound its walk.
    Like pathlib, `*` matches dot files and results include directories. A link
    to a directory is followed for a named (non-`**`) segment only when it stays
    inside the search root, and a matched link only counts if it does too.
    """

    def __init__(self, root: str, segments: list[str]) -> None:
        self.root = root
        self.segments = segments
        self.patterns = [None if s == "**" else re.compile(fnmatch.translate(s)) for s in segments]
        self.visited = 0
        self.found: set[str] = set()

    def run(self) -> list[str]:
        """Walks states `(directory, index of the next segment to match inside it)`."""
        pending = [("", 0)]
        seen: set[tuple[str, int]] = set()
        while pending and self.visited < GLOB_MAX_VISITED_ENTRIES:
            state = pending.pop()
            if state not in seen:
                seen.add(state)
                pending.extend(self._step(*state))
        return sorted(self.found)

    def _step(self, rel_dir: str, index: int) -> list[tuple[str, int]]:
        last = index == len(self.segments) - 1
        pattern = self.patterns[index]
        nexts: list[tuple[str, int]] = []
        if pattern is None and not last:
            nexts.append((rel_dir, index + 1))  # `**` standing for no directory at all
        for entry in self._entries(rel_dir):
            rel = os.path.join(rel_dir, entry.name)
            if pattern is None:
                if last:
                    self._record(rel, entry)
                if _is_real_dir(entry):
                    nexts.append((rel, index))
            elif pattern.match(entry.name):
                if last:
                    self._record(rel, entry)
                elif self._descendable(rel, entry):
                    nexts.append((rel, index + 1))
        return nexts

    def _record(self, rel: str, entry: os.DirEntry[str]) -> None:
        if not entry.is_symlink() or self._confined(rel):
            self.found.add(rel)

    def _descendable(self, rel: str, entry: os.DirEntry[str]) -> bool:
        try:
            is_dir = entry.is_dir()
        except OSError:
            return False
        return is_dir and (not entry.is_symlink() or self._confined(rel))

    def _confined(self, rel: str) -> bool:
        try:
            return _within(_canonicalize(os.path.join(self.root, rel)), self.root)
        except OSError:
            return False

    def _entries(self, rel_dir: str) -> list[os.DirEntry[str]]:
        try:
            with os.scandir(os.path.join(self.root, rel_dir) if rel_dir else self.root) as listing:
                entries = list(listing)
        except OSError:
            return []
        self.visited += len(entries)
        return entries


def _is_real_dir(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir(follow_symlinks=False)
    except OSError:
        return False


# --- child processes under a deadline -------------------------------------------------------------------------------


@dataclass
class Finished:
    """What a capped child process left: stdout beyond `cap_bytes` stops the child, stderr beyond it is dropped."""

    returncode: int | None
    stdout: bytes
    stderr: bytes
    truncated: bool = False
    timed_out: bool = False


def run_capped(argv: list[str], stdin: bytes, timeout_s: float, cap_bytes: int, cwd: str | None = None) -> Finished:
    """Runs `argv` on `stdin`, keeping at most `cap_bytes` of each stream and killing it at the deadline.

    Not `subprocess.run`: that holds all the output (rg on a big tree prints
    gigabytes) and cannot stop the child once it has printed enough.
    """
    proc = subprocess.Popen(  # noqa: S603 - fixed programs (rg, bash -n, this helper), never a shell string
        argv, cwd=cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
    )
    try:
        pipes = _ChildPipes(proc, stdin)
        outcome = pipes.drain(time.monotonic() + timeout_s, cap_bytes)
    finally:
        _kill_process_group(proc.pid)
        proc.wait()
        _close_pipes(proc)
    returncode = proc.returncode if outcome == "exited" else None
    return Finished(returncode, bytes(pipes.out), bytes(pipes.err), outcome == "truncated", outcome == "timed_out")


class _ChildPipes:
    """The three pipes of a child, pumped together so a chatty stderr or a slow stdin reader cannot deadlock it."""

    def __init__(self, proc: subprocess.Popen[bytes], stdin: bytes) -> None:
        assert proc.stdin is not None
        assert proc.stdout is not None
        assert proc.stderr is not None
        self.stdin = proc.stdin
        self.out = bytearray()
        self.err = bytearray()
        self.open: dict[int, bytearray] = {proc.stdout.fileno(): self.out, proc.stderr.fileno(): self.err}
        self.pending = bytearray(stdin)
        os.set_blocking(self.stdin.fileno(), False)
        if not self.pending:
            self.stdin.close()

    def drain(self, deadline: float, cap_bytes: int) -> str:
        """Pumps until both outputs end ("exited"), stdout passes the cap ("truncated") or time is up."""
        while self.open:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return "timed_out"
            self._pump(remaining, cap_bytes)
            if len(self.out) > cap_bytes:
                del self.out[cap_bytes:]
                return "truncated"
        return "exited"

    def _pump(self, timeout_s: float, cap_bytes: int) -> None:
        writing = [self.stdin.fileno()] if self.pending else []
        readable, writable, _ = select.select(list(self.open), writing, [], timeout_s)
        if writable and not _write_some(self.stdin.fileno(), self.pending):
            self.stdin.close()
        for fd in readable:
            chunk = os.read(fd, PIPE_CHUNK_BYTES)
            if not chunk:
                del self.open[fd]
            elif fd in self.open and (self.open[fd] is self.out or len(self.err) < cap_bytes):
                self.open[fd] += chunk


def _write_some(fd: int, pending: bytearray) -> bool:
    """Writes what a non-blocking pipe takes now; False once nothing is left to write or the reader is gone."""
    try:
        written = os.write(fd, pending[:PIPE_CHUNK_BYTES])
    except BlockingIOError:
        return True
    except OSError:  # BrokenPipeError: the child exited without reading it all
        pending.clear()
        return False
    del pending[:written]
    return bool(pending)


def _close_pipes(proc: subprocess.Popen[bytes]) -> None:
    for pipe in (proc.stdin, proc.stdout, proc.stderr):
        if pipe is not None:
            with contextlib.suppress(OSError):
                pipe.close()


# --- grep -----------------------------------------------------------------------------------------------------------


def grep_files(roots: Roots, args: dict[str, Any]) -> dict[str, Any]:
    pattern = _str_arg("grep", args, "pattern") or ""
    given = _str_arg("grep", args, "path", required=False)
    if not pattern:
        raise ToolFailed("grep: pattern is required")
    search, prefix = _search_root(roots, "grep", given)
    if not os.path.exists(search):
        raise ToolFailed(f"grep: {given}: no such file or directory")
    is_file = not os.path.isdir(search)
    if is_file and not _is_plain_file(search):
        raise ToolFailed(f"grep: {given}: not a regular file")
    shown = given if is_file and given else prefix
    rg = shutil.which("rg")
    if rg:
        return {"text": _grep_with_rg(rg, pattern, search, shown, is_file) or "no matches"}
    return {"text": _grep_in_python(pattern, search, shown, is_file) or "no matches"}


def _grep_with_rg(rg: str, pattern: str, search: str, shown: str, is_file: bool) -> str:
    """Runs rg from the search root, so its paths are relative to it and never show where the root is."""
    cwd, target = (os.path.dirname(search), os.path.basename(search)) if is_file else (search, ".")
    argv = [rg, "--no-config", "-n", "--no-heading", "-H", "-e", pattern, "--", target]
    finished = run_capped(argv, b"", GREP_TIMEOUT_S, GREP_OUTPUT_LIMIT_BYTES, cwd=cwd)
    if finished.timed_out:
        raise ToolFailed(f"grep: timed out after {GREP_TIMEOUT_S:g} s; narrow the path or the pattern")
    if finished.returncode not in (0, 1, None) and not finished.stdout:
        message = finished.stderr.decode("utf-8", "replace").strip()
        raise ToolFailed(f"grep: rg failed: {message[:2000]}")
    shown_as = target if is_file else "./"
    lines = [
        shown + line[len(shown_as) :] if line.startswith(shown_as) else line
        for line in _complete_lines(finished.stdout, finished.truncated)
    ]
    if finished.truncated:
        lines.append(f"[output truncated at {GREP_OUTPUT_LIMIT_BYTES} bytes]")
    return "\n".join(lines)


def _complete_lines(data: bytes, truncated: bool) -> list[str]:
    lines = data.decode("utf-8", "replace").split("\n")
    return lines[:-1] if truncated or not lines[-1] else lines


def _grep_in_python(pattern: str, search: str, shown: str, is_file: bool) -> str:
    """The fallback search, in a child process: Python's `re` can backtrack for ever, holding the GIL."""
    request = {"pattern": pattern, "search": search, "shown": shown, "is_file": is_file}
    argv = [sys.executable or "python3", "-I", HELPER_FILE, "--grep-worker"]
    cap = GREP_OUTPUT_LIMIT_BYTES * 6 + 4096  # JSON escapes can grow the text six-fold
    finished = run_capped(argv, json.dumps(request).encode(), GREP_TIMEOUT_S + GREP_KILL_SLACK_S, cap)
    if finished.timed_out:
        raise ToolFailed(f"grep: timed out after {GREP_TIMEOUT_S:g} s; narrow the path or the pattern")
    try:
        answer = json.loads(finished.stdout)
    except ValueError:
        logger.warning("grep worker failed: %s", finished.stderr.decode("utf-8", "replace")[-2000:])
        raise ToolFailed("grep: the search failed; see the sandbox helper's log") from None
    if "error" in answer:
        raise ToolFailed(str(answer["error"]))
    return str(answer["text"])


def grep_worker_main() -> int:
    """`helper.py --grep-worker`: one Python search; the request is JSON on stdin, the answer JSON on stdout."""
    request = json.loads(sys.stdin.buffer.read())
    try:
        rx = re.compile(request["pattern"])
    except re.error as exc:
        answer: dict[str, str] = {"error": f"grep: invalid regex: {exc}"}
    else:
        try:
            answer = {"text": _PythonGrep(rx, request["shown"]).run(request["search"], request["is_file"])}
        except ToolFailed as exc:
            answer = {"error": str(exc)}
    sys.stdout.buffer.write(json.dumps(answer).encode() + b"\n")
    return 0


class _PythonGrep:
    """Walks without following links, skipping .git, node_modules, binary files and over-long lines."""

    def __init__(self, rx: re.Pattern[str], shown: str) -> None:
        self.rx = rx
        self.shown = shown
        self.hits: list[str] = []
        self.budget = GREP_OUTPUT_LIMIT_BYTES
        self.deadline = time.monotonic() + GREP_TIMEOUT_S

    def run(self, search: str, is_file: bool) -> str:
        if is_file:
            self._scan(search, self.shown)
        else:
            self._walk(search)
        return "\n".join(self.hits)

    def _walk(self, search: str) -> None:
        files = 0
        for dirpath, dirnames, filenames in os.walk(search):
            dirnames[:] = sorted(
                d for d in dirnames if d not in GREP_SKIPPED_DIRS and not os.path.islink(os.path.join(dirpath, d))
            )
            for name in sorted(filenames):
                full = os.path.join(dirpath, name)
                if not _is_plain_file(full):
                    continue
                files += 1
                rel = os.path.relpath(full, search).replace(os.sep, "/")
                if files > GREP_MAX_FILES or not self._scan(full, self.shown + _printable(rel)):
                    return

    def _scan(self, path: str, shown: str) -> bool:
        """Adds the matches of one file; False once the output budget is spent."""
        try:
            with open(path, "rb") as handle:
                if b"\x00" in handle.read(512):
                    return True
                handle.seek(0)
                return self._scan_lines(handle, shown)
        except OSError:
            return True

    def _scan_lines(self, handle: IO[bytes], shown: str) -> bool:
        for number, raw in enumerate(_bounded_lines(handle), 1):
            if number % 1000 == 0 and time.monotonic() > self.deadline:
                raise ToolFailed(f"grep: timed out after {GREP_TIMEOUT_S:g} s; narrow the path or the pattern")
            if raw is None:
                continue
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            if self.rx.search(line) and not self._add(f"{shown}:{number}:{line}"):
                return False
        return True

    def _add(self, hit: str) -> bool:
        self.budget -= len(hit.encode("utf-8", "replace")) + 1
        if self.budget < 0:
            self.hits.append(f"[output truncated at {GREP_OUTPUT_LIMIT_BYTES} bytes]")
            return False
        self.hits.append(hit)
        return True


def _is_plain_file(path: str) -> bool:
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def _bounded_lines(handle: IO[bytes]) -> Iterator[bytes | None]:
    """Each line, or None for one longer than `GREP_MAX_LINE_BYTES`, read without ever holding a long line whole."""
    while True:
        line = handle.readline(GREP_MAX_LINE_BYTES + 1)
        if not line:
            return
        if len(line) <= GREP_MAX_LINE_BYTES or (len(line) == GREP_MAX_LINE_BYTES + 1 and line.endswith(b"\n")):
            yield line
            continue
        while line and not line.endswith(b"\n"):
            line = handle.readline(PIPE_CHUNK_BYTES)
        yield None


# --- outputs --------------------------------------------------------------------------------------------------------


class Outputs:
    """What the session leaves in the outputs dir, listed and read for the host to copy out."""

    def __init__(self, roots: Roots) -> None:
        self.roots = roots
        self._hashes: dict[tuple[int, int, int, int, int], str] = {}

    def list(self, args: dict[str, Any]) -> dict[str, Any]:
        root = self.roots.real(self.roots.outputs)
        files: list[dict[str, Any]] = []
        for full in _walk_outputs(root):
            described = self._describe(full, root)
            if described is not None:
                files.append(described)
        files.sort(key=lambda f: str(f["path"]))
        return {"files": files}

    def _describe(self, full: str, root: str) -> dict[str, Any] | None:
        """A regular file; anything else (a symlink wherever it points, a FIFO, a socket) is not an output."""
        try:
            st = os.lstat(full)
            if not stat.S_ISREG(st.st_mode):
                return None
            digest = self._sha256(full, st)
        except OSError as exc:
            logger.warning("list_outputs: skipping a file: %s", _reason(exc))
            return None
        rel = os.path.relpath(full, root).replace(os.sep, "/")
        return {
            "path": _printable(rel),
            "size_bytes": st.st_size,
            "mime_type": mime_type(rel),
            "sha256": digest,
            "modified_at": _rfc3339(st.st_mtime_ns),
        }

    def _sha256(self, path: str, st: os.stat_result) -> str:
        """Cached by identity and change times: `list_outputs` runs after every turn, most files unchanged."""
        key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        cached = self._hashes.get(key)
        if cached is None:
            digest = hashlib.sha256()
            with _open_regular(path, "list_outputs", "a file") as (handle, _):
                for chunk in iter(lambda: handle.read(HASH_CHUNK_BYTES), b""):
                    digest.update(chunk)
            if len(self._hashes) >= HASH_CACHE_MAX_ENTRIES:
                self._hashes.clear()
            cached = self._hashes[key] = digest.hexdigest()
        return cached

    def read(self, args: dict[str, Any]) -> dict[str, Any]:
        given = _path_arg("read_output", args, "path")
        offset = _int_arg("read_output", args, "offset", 0)
        max_bytes = min(_int_arg("read_output", args, "max_bytes", READ_OUTPUT_DEFAULT_BYTES), READ_OUTPUT_MAX_BYTES)
        if offset < 0 or max_bytes <= 0:
            raise ToolFailed("read_output: offset must be >= 0 and max_bytes > 0")
        target = self._resolve(given)
        with _os_errors("read_output", given), _open_regular(target, "read_output", given) as (handle, size):
            handle.seek(offset)
            data = handle.read(max_bytes)
        return {
            "data": base64.b64encode(data).decode("ascii"),
            "size_bytes": size,
            "mime_type": mime_type(given),
            "eof": offset + len(data) >= size,
        }

    def _resolve(self, given: str) -> str:
        if given.startswith("/"):
            raise ToolFailed(f"read_output: {given}: give a path relative to the outputs directory")
        if ".." in given.split("/"):
            raise ToolFailed(f"read_output: {given}: '..' is not allowed")
        root = self.roots.real(self.roots.outputs)
        with _os_errors("read_output", given):
            target = _canonicalize(os.path.join(root, given))
        if not _within(target, root):
            raise ToolFailed(f"read_output: {given}: outside the outputs directory")
        return target


def _walk_outputs(root: str) -> Iterator[str]:
    """Every non-directory entry under `root`, in name order, never through a linked directory; at most a cap."""
    count = 0
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not os.path.islink(os.path.join(dirpath, d)))
        for name in sorted(filenames):
            count += 1
            if count > OUTPUTS_MAX_FILES:
                return
            yield os.path.join(dirpath, name)


def mime_type(path: str) -> str:
    guessed, _ = mimetypes.guess_type(path)
    if guessed:
        return guessed
    return "text/plain" if os.path.splitext(path)[1].lower() in _TEXT_SUFFIXES else "application/octet-stream"


def _rfc3339(mtime_ns: int) -> str:
    seconds, nanos = divmod(mtime_ns, 1_000_000_000)
    moment = datetime.fromtimestamp(seconds, timezone.utc)  # noqa: UP017 - datetime.UTC is 3.11+; this runs on 3.8
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{nanos // 1_000_000:03d}Z"


# --- bash -----------------------------------------------------------------------------------------------------------


def _shell_env() -> dict[str, str]:
    """The helper's env, which the host built for the sandbox; `ANTHROPIC_*` dropped in case one slipped in."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("ANTHROPIC_")}
    env.update(PS1="", PS2="", TERM="dumb")
    return env


@dataclass
class ShellRun:
    """One command's end: "done", "exited" (the shell with it), "timed_out" (killed) or "stuck" (the shell too)."""

    output: bytes
    truncated: bool
    exit_code: int | None
    outcome: str


@dataclass
class _Capture:
    """The merged output of one command up to its sentinel, never holding much more than the output cap."""

    marker: bytes
    xtrace: bytes
    """How `set -x` shows the printf's arguments; the line holding it is the framing's, not the command's."""
    buffer: bytearray = field(default_factory=bytearray)
    truncated: bool = False
    found: int = -1
    exit_code: int | None = None
    trailer: list[bytes] = field(default_factory=list)
    """The sentinel line's words after the marker: the exit code, then what the framing adds."""
    done: bool = False

    def feed(self, chunk: bytes) -> None:
        if self.found < 0:
            start = max(0, len(self.buffer) - len(self.marker) + 1)
            self.buffer += chunk
            self.found = self.buffer.find(self.marker, start)
            if self.found < 0:
                self._keep_tail()
                return
        else:
            self.buffer += chunk
        self._parse_exit_code()

    def _keep_tail(self) -> None:
        """Drops the head; the marker's length more than the cap is kept, so a marker split across reads is found."""
        excess = len(self.buffer) - BASH_OUTPUT_LIMIT_BYTES - len(self.marker)
        if excess > 0:
            del self.buffer[:excess]
            self.truncated = True

    def _parse_exit_code(self) -> None:
        rest = self.buffer[self.found + len(self.marker) :]
        end = rest.find(b"\n")
        if end >= 0:
            self.done = True
            self.trailer = bytes(rest[:end]).split()
            with contextlib.suppress(ValueError, IndexError):
                self.exit_code = int(self.trailer[0])

    def output(self) -> tuple[bytes, bool]:
        out = self.buffer if self.found < 0 else self.buffer[: self.found]
        trimmed = out.rstrip(b"\n")
        last_line = trimmed.rfind(b"\n") + 1
        if self.xtrace in trimmed[last_line:]:
            out = trimmed[: max(0, last_line - 1)]
        if len(out) > BASH_OUTPUT_LIMIT_BYTES:
            return bytes(out[-BASH_OUTPUT_LIMIT_BYTES:]), True
        return bytes(out), self.truncated


class Shell:
    """One persistent `/bin/bash`: cwd, variables and background jobs survive from one command to the next.

    It leads a process group of its own, so what it starts can be found (and
    killed) even after a parent in between has died.
    """

    def __init__(self, workdir: str) -> None:
        self.proc = subprocess.Popen(
            ["/bin/bash", "--noprofile", "--norc"],
            cwd=workdir,
            env=_shell_env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self._in = self.proc.stdin.fileno()
        self._out = self.proc.stdout.fileno()
        os.set_blocking(self._in, False)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def run(self, group: str, timeout_s: float, parse_first: bool = True) -> ShellRun:
        """Runs `group` (a `{ ...; } </dev/null 2>&1`), after checking that it parses when `parse_first`.

        A group that does not parse must never reach the shell's input: it would swallow the framing and hang
        the shell until the timeout. So the shell is first given it as data, to `eval` as a function definition,
        which parses the body without running it; only a group that parses is then sent as it is. (Text that
        closes the braces around it twice, `}; }; cmd; { {`, escapes the definition as it escapes the group.)
        """
        until = time.monotonic() + timeout_s
        if parse_first:
            checked, trailer = self._exchange(lambda head, tail: _parse_script(group, head, tail), until)
            if checked.outcome != "done":
                return checked
            if checked.exit_code != 0:
                return ShellRun(_complaint(checked.output, trailer), False, 2, "done")
        run, _ = self._exchange(lambda head, tail: group + _FRAME.format(head=head, tail=tail) + "\n", until)
        return run

    def _exchange(self, script: Callable[[str, str], str], until: float) -> tuple[ShellRun, list[bytes]]:
        """Sends `script(head, tail)`, which ends by printing the sentinel, and reads up to it.

        The nonce goes to printf in two arguments, so neither the command, nor
        `set -v`/`set -x` echoing the printf line, can print the marker itself.
        """
        head, tail = "__ms_done_", secrets.token_hex(16) + "__"
        capture = _Capture(("\n" + head + tail).encode(), xtrace=f"{head} {tail}".encode())
        pending = bytearray(script(head, tail).encode("utf-8", "replace"))
        state = self._pump(capture, pending, until)
        if state == "time":
            state = self._stop_command(capture, pending)
            outcome = "timed_out" if state == "done" else "stuck"
            return ShellRun(*capture.output(), None, outcome), capture.trailer
        if state == "eof":
            return ShellRun(*capture.output(), self._exit_status(), "exited"), capture.trailer
        return ShellRun(*capture.output(), capture.exit_code, "done"), capture.trailer

    def _pump(self, capture: _Capture, pending: bytearray, until: float) -> str:
        """Writes the script and reads output until the sentinel ("done"), EOF ("eof") or `until` ("time")."""
        while not capture.done:
            remaining = until - time.monotonic()
            if remaining <= 0:
                return "time"
            writing = [self._in] if pending else []
            readable, writable, _ = select.select([self._out], writing, [], remaining)
            if writable:
                _write_some(self._in, pending)
            if readable:
                chunk = os.read(self._out, PIPE_CHUNK_BYTES)
                if not chunk:
                    return "eof"
                capture.feed(chunk)
        return "done"

    def _stop_command(self, capture: _Capture, pending: bytearray) -> str:
        """Kills every process under the shell, again and again for a grace, while waiting for the sentinel."""
        grace_end = time.monotonic() + BASH_KILL_GRACE_S
        state = "time"
        while state == "time" and time.monotonic() < grace_end:
            for pid in _descendants(self.proc.pid):
                _kill(pid)
            state = self._pump(capture, pending, min(grace_end, time.monotonic() + BASH_KILL_POLL_S))
        return state

    def _exit_status(self) -> int | None:
        try:
            code = self.proc.wait(SHELL_EXIT_WAIT_S)
        except subprocess.TimeoutExpired:
            return None
        return 128 - code if code < 0 else code  # killed by a signal: the shell's own convention

    def kill(self) -> None:
        """Kills the shell and everything it started (the tree first, while parent links still lead to it)."""
        for pid in _descendants(self.proc.pid):
            _kill(pid)
        _kill_process_group(self.proc.pid)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(SHELL_EXIT_WAIT_S)

    def close(self) -> None:
        """Kills the shell and closes its pipes; only for a shell no thread is reading."""
        self.kill()
        _close_pipes(self.proc)


def _process_table() -> Iterator[tuple[int, int, int]]:
    """(pid, parent pid, process group) of every process this user can see, from /proc."""
    try:
        names = os.listdir("/proc")
    except OSError:
        return
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as handle:
                data = handle.read()
        except OSError:
            continue
        fields = data[data.rfind(b")") + 2 :].split()  # the command name may hold spaces and parentheses
        yield int(name), int(fields[1]), int(fields[2])


def _descendants(root: int) -> set[int]:
    """Processes below `root`, plus members of its process group whose parents already died."""
    children: dict[int, list[int]] = {}
    group: set[int] = set()
    for pid, ppid, pgrp in _process_table():
        children.setdefault(ppid, []).append(pid)
        if pgrp == root and pid != root:
            group.add(pid)
    tree: set[int] = set()
    stack = [root]
    while stack:
        for child in children.get(stack.pop(), []):
            if child not in tree:
                tree.add(child)
                stack.append(child)
    return tree | group


def _kill(pid: int) -> None:
    with contextlib.suppress(OSError):
        os.kill(pid, signal.SIGKILL)


def _kill_process_group(pgid: int) -> None:
    with contextlib.suppress(OSError):
        os.killpg(pgid, signal.SIGKILL)


_FRAME = "; printf '\\n%s%s%d\\n' '{head}' '{tail}' \"$?\""
_PARSE = (
    # xtrace off while checking (and the switch itself hidden), restored after; nothing is left defined.
    "{{ __ms_x=$-; set +x; }} 2>/dev/null; "
    "if eval {definition} 2>&1; then unset -f __ms_parse; __ms_s=0; else __ms_s=$?; fi; "
    "printf '\\n%s%s%d %d\\n' '{head}' '{tail}' \"$__ms_s\" \"$LINENO\"; "
    "__ms_s=$__ms_x; unset __ms_x; case $__ms_s in *x*) unset __ms_s; set -x;; *) unset __ms_s;; esac\n"
    # An empty line: after `eval` meets an unterminated quote, bash 5.2 misreads a `}` on the next line it reads.
    "\n"
)
_EVAL_LINE = re.compile(rb"^([^:\n]*: )(?:eval: )?line (\d+):", re.MULTILINE)
_HEREDOC_LINE = re.compile(rb"(here-document at line )(\d+)")


def _parse_script(group: str, head: str, tail: str) -> str:
    """The shell's own syntax check of `group`: defining a function parses its body and runs none of it."""
    definition = "__ms_parse() {\n" + group + "\n}"
    quoted = "'" + definition.replace("'", "'\\''") + "'"
    return _PARSE.format(definition=quoted, head=head, tail=tail)


def _complaint(output: bytes, trailer: list[bytes]) -> bytes:
    """bash's complaint about a group, with its line numbers counted from the group's first line, as `bash -n`
    would count them (the shell counts every line it was ever sent)."""
    try:
        base = int(trailer[1])
    except (IndexError, ValueError):
        return output or b"bash: syntax error"

    def line(number: bytes) -> bytes:
        return b"%d" % max(1, int(number) - base)

    text = _EVAL_LINE.sub(lambda m: m[1] + b"line " + line(m[2]) + b":", output)
    return _HEREDOC_LINE.sub(lambda m: m[1] + line(m[2]), text).strip() or b"bash: syntax error"


def _syntax_error(group: str) -> str | None:
    """bash's complaint if `group` does not parse, else None.

    Checked in a separate `bash -n` for a command too large for the shell's own check (`Shell.run`): a command
    that does not parse (an unclosed quote, a heredoc without its end) would swallow the sentinel line and hang
    the shell until the timeout, which then resets it. extglob is on because it only widens what parses, and a
    session may have turned it on.
    """
    argv = ["/bin/bash", "--noprofile", "--norc", "-O", "extglob", "-n"]
    try:
        finished = run_capped(argv, group.encode("utf-8", "replace"), SYNTAX_CHECK_TIMEOUT_S, BASH_OUTPUT_LIMIT_BYTES)
    except OSError:
        return None
    if finished.returncode in (0, None):
        return None
    return _ANSI.sub("", finished.stderr.decode("utf-8", "replace")).strip() or "bash: syntax error"


def _only_comments(command: str) -> bool:
    return all(not line.strip() or line.lstrip().startswith("#") for line in command.split("\n"))


def _clean_output(data: bytes, truncated: bool) -> str:
    """Decoded, ANSI escapes stripped; a cut head loses the partial UTF-8 character it may start with."""
    if truncated:
        skip = 0
        while skip < min(3, len(data)) and 0x80 <= data[skip] < 0xC0:
            skip += 1
        data = data[skip:]
    text = _ANSI.sub("", data.decode("utf-8", "replace")).rstrip("\n")
    return "[output truncated]\n" + text if truncated else text


def _bash_timeout_ms(args: dict[str, Any]) -> int:
    """The default when missing, 0 or negative; at most the maximum. A whole float (JSON `500.0`) is accepted."""
    value = args.get("timeout_ms")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    value = _int_arg("bash", {"timeout_ms": value}, "timeout_ms", 0)
    return BASH_DEFAULT_TIMEOUT_MS if value <= 0 else min(value, BASH_MAX_TIMEOUT_MS)


def _timeout_note(timeout_ms: int, restarted: bool) -> str:
    note = f"[the command timed out after {timeout_ms / 1000:g} s and was killed"
    if restarted:
        note += "; the shell did not respond, so it was restarted: cwd and variables were reset"
    return note + "]"


SHELL_EXITED_NOTE = "[the previous shell had exited, so this is a fresh one: cwd and variables were reset]"


class BashTool:
    """The helper's one shell and the `bash` calls that share it; `call` runs only inside its request's `turn`."""

    def __init__(self, workdir: str) -> None:
        self.workdir = workdir
        self._shell: Shell | None = None
        self._turns = threading.Condition()
        self._next_turn = 0
        self._serving = 0
        self._closed = False

    def take_turn(self) -> int:
        """A place in line, taken as the request arrives: a plain lock would let a later call overtake."""
        with self._turns:
            self._next_turn += 1
            return self._next_turn - 1

    @contextlib.contextmanager
    def turn(self, ticket: int) -> Iterator[None]:
        """Waits for `ticket`'s turn; the turn passes on however the call ends."""
        with self._turns:
            self._turns.wait_for(lambda: self._serving == ticket)
        try:
            yield
        finally:
            with self._turns:
                self._serving += 1
                self._turns.notify_all()

    def call(self, args: dict[str, Any]) -> dict[str, Any]:
        command = _str_arg("bash", args, "command", required=False)
        restart = _bool_arg("bash", args, "restart")
        timeout_ms = _bash_timeout_ms(args)
        notes: list[str] = []
        if restart:
            self._replace_shell()
            notes.append("bash session restarted")
            if not command:
                return _bash_result(notes, 0, restarted=True)
        if not command or not command.strip():
            raise ToolFailed("bash: command is required")
        return self._run(command, timeout_ms, notes, restarted=restart)

    def _run(self, command: str, timeout_ms: int, notes: list[str], restarted: bool) -> dict[str, Any]:
        if self._shell is not None and not self._shell.alive():
            self._shell.close()
            self._shell = None
            notes.append(SHELL_EXITED_NOTE)
            restarted = True
        if _only_comments(command):
            return _bash_result(notes, 0, restarted=restarted)  # `{ # x\n}` would be a syntax error
        group = "{ " + command + "\n} </dev/null 2>&1"
        large = len(group.encode("utf-8", "replace")) > SHELL_PARSE_MAX_BYTES
        complaint = _syntax_error(group) if large else None
        if complaint is not None:
            return _bash_result([*notes, complaint], 2, restarted=restarted)
        shell = self._shell or self._start()
        run = shell.run(group, timeout_ms / 1000, parse_first=not large)
        return self._report(run, timeout_ms, notes, restarted)

    def _report(self, run: ShellRun, timeout_ms: int, notes: list[str], restarted: bool) -> dict[str, Any]:
        parts = [*notes, _clean_output(run.output, run.truncated)]
        if run.outcome == "exited":
            parts.append(f"[the shell exited with code {run.exit_code}; the next command starts a fresh one]")
        elif run.outcome == "stuck":
            with contextlib.suppress(ToolFailed):  # no new shell now: the next call tries again and says why
                self._replace_shell()
            restarted = True
        if run.outcome in ("timed_out", "stuck"):
            parts.append(_timeout_note(timeout_ms, run.outcome == "stuck"))
        result = _bash_result(parts, run.exit_code, restarted=restarted, truncated=run.truncated)
        result["timed_out"] = run.outcome in ("timed_out", "stuck")
        return result

    def _start(self) -> Shell:
        if self._closed:
            raise ToolFailed("bash: the sandbox helper is stopping")
        try:
            self._shell = Shell(self.workdir)
        except OSError as exc:
            raise ToolFailed(f"bash: cannot start /bin/bash: {_reason(exc)}") from exc
        return self._shell

    def _replace_shell(self) -> None:
        if self._shell is not None:
            self._shell.close()
            self._shell = None
        self._start()

    def close(self) -> None:
        """Kills the shell for good; called on EOF without waiting for a turn, so a running command dies with it."""
        shell, self._shell = self._shell, None
        self._closed = True
        if shell is not None:
            shell.kill()  # not close(): a running call may still be reading its pipe, whose fd must not be reused


def _bash_result(parts: list[str], exit_code: int | None, restarted: bool, truncated: bool = False) -> dict[str, Any]:
    return {
        "output": "\n".join(part for part in parts if part),
        "exit_code": exit_code,
        "timed_out": False,
        "truncated": truncated,
        "restarted": restarted,
    }


# --- skills ---------------------------------------------------------------------------------------------------------

_SKILL_NAME = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_SKILL_VERSION = re.compile(r"^skill_[0-9A-Z]{26}/[1-9][0-9]{0,9}$")


def link_skills(roots: Roots, args: dict[str, Any]) -> dict[str, Any]:
    """Makes `skills/<name>` a link to `skill_store/<skill_id>/<version>` for each of `links`, and removes the
    links not among them: the session's skills, whose files are in the read-only skill store."""
    links = args.get("links")
    if not isinstance(links, dict):
        raise ToolFailed("link_skills: links must be an object of name -> skill_id/version")
    for name, target in links.items():
        if not _SKILL_NAME.match(name) or not isinstance(target, str) or not _SKILL_VERSION.match(target):
            raise ToolFailed(f"link_skills: {name!r} -> {target!r} is not a skill name and version")
    for existing in os.listdir(roots.skills):
        if existing not in links:
            os.unlink(os.path.join(roots.skills, existing))
    for name, target in links.items():
        path = os.path.join(roots.skills, name)
        wanted = os.path.join(roots.skill_store, target)
        if os.path.islink(path) and os.readlink(path) == wanted:
            continue
        scratch = f"{path}.{os.getpid()}.{threading.get_ident()}"
        os.symlink(wanted, scratch)
        os.replace(scratch, path)
    return {"linked": len(links)}


# --- the protocol ---------------------------------------------------------------------------------------------------


if TYPE_CHECKING:  # subscripted builtins at run time need Python 3.9
    Handler = Callable[[dict[str, Any]], dict[str, Any]]


class Helper:
    """Answers requests: each in its own thread, each response one whole line under the stdout lock."""

    def __init__(self, roots: Roots, stdout: IO[bytes]) -> None:
        self.bash = BashTool(roots.workdir)
        outputs = Outputs(roots)
        self.ops: dict[str, Handler] = {
            "ping": ping,
            "bash": self.bash.call,
            "read": lambda args: read_file(roots, args),
            "write": lambda args: write_file(roots, args),
            "edit": lambda args: edit_file(roots, args),
            "glob": lambda args: glob_files(roots, args),
            "grep": lambda args: grep_files(roots, args),
            "list_outputs": outputs.list,
            "read_output": outputs.read,
            "link_skills": lambda args: link_skills(roots, args),
        }
        self._stdout = stdout
        self._stdout_lock = threading.Lock()

    def submit(self, raw: bytes) -> threading.Thread | None:
        """Parses a line (in the reading thread, so `bash` turns follow arrival order) and runs it in a new thread."""
        try:
            request = json.loads(raw)
        except ValueError as exc:
            self._send({"id": None, "ok": False, "error": f"malformed request: {exc}"})
            return None
        turn = self.bash.take_turn() if _op_of(request) == "bash" else None
        thread = threading.Thread(target=self._serve, args=(request, turn), daemon=True)
        try:
            thread.start()
        except RuntimeError:  # no thread to be had: answer in line, so a taken turn is never left unserved
            self._serve(request, turn)
            return None
        return thread

    def _serve(self, request: object, turn: int | None) -> None:
        request_id = request.get("id") if isinstance(request, dict) else None
        if isinstance(request_id, bool) or not isinstance(request_id, int):
            request_id = None
        if turn is None:
            response = self._respond(request_id, request)
        else:
            with self.bash.turn(turn):
                response = self._respond(request_id, request)
        self._send(response)

    def _respond(self, request_id: int | None, request: object) -> dict[str, Any]:
        try:
            result = self._dispatch(request_id, request)
        except ToolFailed as exc:
            return {"id": request_id, "ok": False, "error": str(exc)}
        except OSError as exc:
            return {"id": request_id, "ok": False, "error": f"{_op_of(request)}: {_reason(exc)}"}
        except Exception:
            logger.exception("request %s (%s) failed", request_id, _op_of(request))
            return {"id": request_id, "ok": False, "error": f"{_op_of(request)}: internal error in the sandbox helper"}
        return {"id": request_id, "ok": True, "result": result}

    def _dispatch(self, request_id: int | None, request: object) -> dict[str, Any]:
        if not isinstance(request, dict):
            raise ToolFailed("malformed request: not a JSON object")
        if request_id is None:
            raise ToolFailed("malformed request: id must be an integer")
        op = request.get("op")
        handler = self.ops.get(op) if isinstance(op, str) else None
        if handler is None:
            raise ToolFailed(f"unknown op: {op!r}")
        args = request.get("args")
        if args is None:
            args = {}
        if not isinstance(args, dict):
            raise ToolFailed(f"{op}: args must be a JSON object")
        return handler(args)

    def _send(self, response: dict[str, Any]) -> None:
        """One line per response; a string that is not valid Unicode is repaired rather than lost."""
        line = json.dumps(response, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "replace") + b"\n"
        with self._stdout_lock:
            try:
                self._stdout.write(line)
                self._stdout.flush()
            except OSError as exc:
                logger.warning("cannot answer request %s: %s", response.get("id"), _reason(exc))

    def close(self) -> None:
        self.bash.close()


def _op_of(request: object) -> str:
    op = request.get("op") if isinstance(request, dict) else None
    return op if isinstance(op, str) else "request"


def ping(args: dict[str, Any]) -> dict[str, Any]:
    return {"version": HELPER_VERSION, "python": platform.python_version(), "rg": shutil.which("rg") is not None}


def main(argv: list[str] | None = None) -> int:
    """Serves requests from stdin until EOF, then kills the shell and exits 0."""
    argv = sys.argv[1:] if argv is None else argv
    if argv == ["--grep-worker"]:
        return grep_worker_main()
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="sandbox helper: %(levelname)s %(message)s")
    helper = Helper(Roots.from_env(), sys.stdout.buffer)
    running: list[threading.Thread] = []
    try:
        for raw in sys.stdin.buffer:
            thread = helper.submit(raw) if raw.strip() else None
            if thread is not None:
                running = [*(t for t in running if t.is_alive()), thread]
    finally:
        helper.close()
        _finish(running)
    return 0


def _finish(running: list[threading.Thread]) -> None:
    """Gives requests already running a moment to answer (a killed shell ends `bash` at once), then lets them go."""
    deadline = time.monotonic() + EXIT_GRACE_S
    for thread in running:
        thread.join(max(0.0, deadline - time.monotonic()))


if __name__ == "__main__":
    sys.exit(main())
