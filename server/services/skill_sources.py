"""Reading a skill from the host: a folder or a zip archive, bounded before anything is read whole.

Both readers stop at the first file past `MAX_SKILL_FILES`, and count sizes from metadata before reading bytes,
so a 10,000-file folder or a zip bomb costs a listing, not memory. A zip's member is read no further than its
declared size allows (a header can lie), and a member that expands more than `MAX_ZIP_RATIO` times is refused.
Symlinks are refused in both: a skill's files are copied into sandboxes, and a link could point anywhere on
the host. The rules about the files themselves are `server.core.skills.check_skill`'s.
"""

from __future__ import annotations

import os
import stat
import zipfile
from pathlib import Path, PurePosixPath

from server.core.errors import InvalidRequestError, TooLargeError
from server.core.skills import (
    MAX_SKILL_BYTES,
    MAX_SKILL_FILE_BYTES,
    MAX_SKILL_FILES,
    SKILL_FILE,
    SkillSource,
    common_folder,
)

__all__ = ["MAX_ZIP_RATIO", "read_skill_path"]

MAX_ZIP_RATIO = 200
"""Text compresses about 3-10 times; a member that claims more than this is a bomb, not a skill."""
_RATIO_FLOOR_BYTES = 1024 * 1024  # below this, any ratio is harmless
_SKIPPED = {".DS_Store", "__MACOSX", ".git"}


def read_skill_path(path: Path) -> list[SkillSource]:
    """The files of a skill folder or zip; raises `InvalidRequestError` or `TooLargeError` naming the problem."""
    if path.is_symlink():
        raise InvalidRequestError(f"{str(path)!r} is a symlink; pass the folder or zip itself")
    if path.is_dir():
        return _read_folder(path)
    if path.is_file() and zipfile.is_zipfile(path):
        return _read_zip(path)
    if not path.exists():
        raise InvalidRequestError(f"{str(path)!r} does not exist; pass a skill folder (with {SKILL_FILE}) or a zip")
    raise InvalidRequestError(f"{str(path)!r} is neither a folder nor a zip archive")


def _read_folder(root: Path) -> list[SkillSource]:
    found: list[tuple[str, Path, os.stat_result]] = []
    total = 0
    for folder, dirs, files in os.walk(root, followlinks=False):
        dirs[:] = sorted(d for d in dirs if d not in _SKIPPED)
        for name in sorted([*files, *(d for d in dirs if Path(folder, d).is_symlink())]):
            if name in _SKIPPED:
                continue
            full = Path(folder, name)
            info = full.lstat()
            relative = full.relative_to(root).as_posix()
            if not stat.S_ISREG(info.st_mode):
                raise InvalidRequestError(f"{relative!r} is a symlink or special file; a skill holds only files")
            found.append((relative, full, info))
            total += info.st_size
            _check_bounds(len(found), total, relative, info.st_size)
    return [SkillSource(rel, full.read_bytes(), bool(info.st_mode & 0o111)) for rel, full, info in found]


def _read_zip(path: Path) -> list[SkillSource]:
    with zipfile.ZipFile(path) as archive:
        members = [m for m in archive.infolist() if not m.is_dir() and not _skipped(m.filename)]
        total = 0
        for count, member in enumerate(members, 1):
            total += member.file_size
            _check_member(member)
            _check_bounds(count, total, member.filename, member.file_size)
        prefix = common_folder([m.filename for m in members])
        return [
            SkillSource(m.filename[len(prefix) :], _read_member(archive, m), bool((m.external_attr >> 16) & 0o111))
            for m in members
        ]


def _check_member(member: zipfile.ZipInfo) -> None:
    mode = member.external_attr >> 16
    if stat.S_ISLNK(mode):
        raise InvalidRequestError(f"{member.filename!r} in the zip is a symlink; a skill holds only files")
    if member.file_size > _RATIO_FLOOR_BYTES and member.file_size > MAX_ZIP_RATIO * max(member.compress_size, 1):
        raise TooLargeError(
            f"{member.filename!r} in the zip expands {member.file_size // max(member.compress_size, 1)} times "
            f"(at most {MAX_ZIP_RATIO}); this looks like a zip bomb, so nothing was stored"
        )


def _read_member(archive: zipfile.ZipFile, member: zipfile.ZipInfo) -> bytes:
    with archive.open(member) as stream:
        content = stream.read(member.file_size + 1)
    if len(content) > member.file_size:
        raise TooLargeError(f"{member.filename!r} in the zip holds more than its header says; nothing was stored")
    return content


def _check_bounds(count: int, total: int, name: str, size: int) -> None:
    if count > MAX_SKILL_FILES:
        raise TooLargeError(f"a skill holds at most {MAX_SKILL_FILES} files; this one has more; nothing was stored")
    if size > MAX_SKILL_FILE_BYTES:
        raise TooLargeError(f"{name!r} is {size} bytes; a skill's file holds at most {MAX_SKILL_FILE_BYTES}")
    if total > MAX_SKILL_BYTES:
        raise TooLargeError(f"a skill holds at most {MAX_SKILL_BYTES} bytes in all; this one has more")


def _skipped(name: str) -> bool:
    return any(part in _SKIPPED for part in PurePosixPath(name).parts)
