"""Output reads from an archive, on tars built here: the link cases the engine's archive can hold, without an engine.
The Docker tests (`test_idle_sandboxes.py`) check the same answers against the helper's."""

from __future__ import annotations

import hashlib
import io
import tarfile
from collections.abc import Iterable

import pytest

from server.core.errors import InvalidRequestError
from server.hands.docker.output_archive import list_archived, read_archived


def archive(*members: tuple[bytes, str, str | bytes]) -> bytes:
    """A tar named as the engine names it (the folder first, as 'outputs/'): (kind, name, data or link target)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        tar.addfile(_info("outputs", tarfile.DIRTYPE))
        for kind, name, body in members:
            info = _info(f"outputs/{name}", kind)
            if kind in (tarfile.SYMTYPE, tarfile.LNKTYPE):
                info.linkname = str(body)
                tar.addfile(info)
            else:
                data = body if isinstance(body, bytes) else body.encode()
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _info(name: str, kind: bytes) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mtime = 1_795_000_000
    return info


def chunked(data: bytes, size: int = 7) -> Iterable[bytes]:
    """As the engine streams it: in pieces that cut headers anywhere."""
    return [data[i : i + size] for i in range(0, len(data), size)]


TREE = archive(
    (tarfile.DIRTYPE, "reports", b""),
    (tarfile.REGTYPE, "reports/summary.md", b"# Done\n"),
    (tarfile.REGTYPE, "one.txt", b"0123456789"),
    (tarfile.LNKTYPE, "two.txt", "outputs/one.txt"),
    (tarfile.SYMTYPE, "relative", "reports/summary.md"),
    (tarfile.SYMTYPE, "absolute", "/mnt/session/outputs/one.txt"),
    (tarfile.SYMTYPE, "out-and-back", "../outputs/one.txt"),
    (tarfile.SYMTYPE, "dir-link", "reports"),
    (tarfile.SYMTYPE, "escape", "/etc/passwd"),
    (tarfile.SYMTYPE, "loop-a", "loop-b"),
    (tarfile.SYMTYPE, "loop-b", "loop-a"),
    (tarfile.FIFOTYPE, "fifo", b""),
)


def read(path: str, offset: int = 0, max_bytes: int = 100) -> bytes:
    return read_archived(lambda: chunked(TREE), path, offset, max_bytes).data


def test_listing_has_regular_files_and_second_names_only() -> None:
    files = list_archived(chunked(TREE))
    assert [f.path for f in files] == ["one.txt", "reports/summary.md", "two.txt"]
    one, summary, two = files
    assert summary.sha256 == hashlib.sha256(b"# Done\n").hexdigest()
    assert (summary.size_bytes, summary.mime_type) == (7, "text/markdown")
    assert (two.sha256, two.size_bytes) == (one.sha256, one.size_bytes)
    assert one.modified_at.endswith(".000Z")


@pytest.mark.parametrize(
    ("path", "data"),
    [
        ("one.txt", b"0123456789"),
        ("two.txt", b"0123456789"),
        ("relative", b"# Done\n"),
        ("absolute", b"0123456789"),
        ("out-and-back", b"0123456789"),
        ("dir-link/summary.md", b"# Done\n"),
        ("./reports//summary.md", b"# Done\n"),
    ],
)
def test_links_that_stay_inside_are_followed(path: str, data: bytes) -> None:
    assert read(path) == data


def test_a_read_is_a_slice_that_says_where_the_file_ends() -> None:
    chunk = read_archived(lambda: chunked(TREE), "one.txt", 3, 4)
    assert (chunk.data, chunk.size_bytes, chunk.eof) == (b"3456", 10, False)
    assert read_archived(lambda: chunked(TREE), "one.txt", 6, 4).eof


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("escape", "outside the outputs directory"),
        ("loop-a", "too many levels of symbolic links"),
        ("missing", "no such file or directory"),
        ("dir-link/missing", "no such file or directory"),
        ("one.txt/x", "not a directory"),
        ("reports", "not a regular file"),
        ("fifo", "not a regular file"),
        ("/etc/passwd", "give a path relative to the outputs directory"),
        ("reports/../one.txt", "'..' is not allowed"),
    ],
)
def test_refusals_are_the_helpers(path: str, reason: str) -> None:
    with pytest.raises(InvalidRequestError) as refused:
        read(path)
    assert str(refused.value) == f"read_output: {path}: {reason}"
