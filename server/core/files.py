"""Files as both fronts show them: uploads kept by the server, and a session's output files.

An upload is stored whole under the data dir; an output file stays in its session's sandbox and is read from
there on download. Both are `FileMetadata`, the Managed Agents API's shape; an output file carries
`scope: {type: "session", id}`.
"""

from __future__ import annotations

import mimetypes
import posixpath
from typing import Literal

from pydantic import BaseModel, Field

__all__ = [
    "DEFAULT_MIME_TYPE",
    "FileDeleted",
    "FileList",
    "FileMetadata",
    "FileScope",
    "check_filename",
]

DEFAULT_MIME_TYPE = "application/octet-stream"
MAX_FILENAME_CHARS = 255


class FileScope(BaseModel):
    type: Literal["session"] = "session"
    id: str = Field(description="The session (sesn_...) whose outputs folder holds the file.")


class FileMetadata(BaseModel):
    """A file: an upload (no scope) or a session's output file (scope: the session)."""

    type: Literal["file"] = "file"
    id: str = Field(description="file_ id.")
    filename: str
    mime_type: str
    size_bytes: int
    created_at: str
    downloadable: bool = True
    expires_at: str | None = None
    scope: FileScope | None = None
    output_path: str | None = Field(
        default=None, exclude=True, description="An output file's path under /mnt/session/outputs/."
    )


class FileList(BaseModel):
    files: list[FileMetadata]
    next_cursor: str | None = Field(description="Pass as the page cursor to continue; null on the last page.")


class FileDeleted(BaseModel):
    id: str
    type: Literal["file_deleted"] = "file_deleted"


def check_filename(name: str | None, mime_type: str) -> str:
    """Only the last path component is kept (a client's directories are none of the server's business); an
    empty one becomes `unnamed`, as the hosted API does."""
    base = posixpath.basename((name or "").replace("\\", "/")).strip().replace("\0", "")
    if not base or base in (".", ".."):
        return "unnamed" + _extension(mime_type)
    return base[:MAX_FILENAME_CHARS]


def _extension(mime_type: str) -> str:
    return mimetypes.guess_extension(mime_type) or ""
