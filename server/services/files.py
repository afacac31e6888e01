"""Files both ways: uploads kept in the file store, and a session's output files read from its sandbox.

Both fronts call this service: REST `/v1/files` and MCP `upload_file`. Limits are checked here once: an upload
is refused past `max_bytes` while it is copied in (nothing is kept), an MCP upload past `MAX_MCP_UPLOAD_BYTES`.
An output file gets a stable `file_` id the first time it is listed (the same path keeps it), and is read from
the sandbox in chunks on download, never copied to the host.
"""

from __future__ import annotations

import base64
import io
import mimetypes
from collections.abc import AsyncIterator, Sequence
from typing import BinaryIO

from server.core.blocking import in_thread
from server.core.common import now_rfc3339
from server.core.content import ContentBlock, DocumentBlock, FileSource, ImageBlock
from server.core.errors import InvalidRequestError, NotFoundError, TooLargeError
from server.core.files import DEFAULT_MIME_TYPE, FileDeleted, FileList, FileMetadata, FileScope, check_filename
from server.core.ids import is_id, new_id
from server.services.sessions import SessionManager
from server.store.ports import FileStore, OutputRecord

__all__ = ["MAX_MCP_UPLOAD_BYTES", "MAX_MODEL_FILE_BYTES", "FileService"]

MAX_MCP_UPLOAD_BYTES = 512 * 1024
"""An MCP upload passes through a model's context as text or base64: 512 KiB is already ~130,000 tokens of text
(and ~700,000 base64 characters)."""
MAX_MODEL_FILE_BYTES = 32 * 1024 * 1024
"""A file sent to the model as an image or document block (the Messages API refuses bigger requests)."""
DOWNLOAD_CHUNK_BYTES = 1024 * 1024
_CURSOR_PREFIX = "page_"


class FileService:
    def __init__(self, store: FileStore, sessions: SessionManager, max_upload_bytes: int) -> None:
        self._store = store
        self._sessions = sessions
        self.max_upload_bytes = max_upload_bytes

    async def upload(
        self, filename: str | None, mime_type: str | None, source: BinaryIO, max_bytes: int | None = None
    ) -> FileMetadata:
        """Stores `source` (read in a worker thread, chunk by chunk) as a new file."""
        kind = _mime_type(filename, mime_type)
        metadata = FileMetadata(
            id=new_id("file"),
            filename=check_filename(filename, kind),
            mime_type=kind,
            size_bytes=0,
            created_at=now_rfc3339(),
        )
        return await in_thread(self._store.put, metadata, source, max_bytes or self.max_upload_bytes)

    async def upload_bytes(self, filename: str, mime_type: str | None, data: bytes) -> FileMetadata:
        """An upload whose bytes are already in memory (MCP), with the MCP limit."""
        if len(data) > MAX_MCP_UPLOAD_BYTES:
            raise TooLargeError(
                f"the file is {len(data)} bytes; upload_file takes at most {MAX_MCP_UPLOAD_BYTES} bytes. "
                "Upload bigger files over REST (POST /v1/files)"
            )
        return await self.upload(filename, mime_type, io.BytesIO(data), MAX_MCP_UPLOAD_BYTES)

    async def list_page(self, limit: int, cursor: str | None, scope_id: str | None) -> FileList:
        if scope_id is not None:
            return await self._outputs_page(scope_id, limit, cursor)
        before = _cursor_value(cursor)
        if before is not None and not is_id(before, "file"):
            raise InvalidRequestError(f"page={cursor!r} is not a cursor this server gave; pass a next_page value")
        found = await in_thread(self._store.list_uploads, limit + 1, before)
        shown = found[:limit]
        more = len(found) > limit
        return FileList(files=shown, next_cursor=_CURSOR_PREFIX + shown[-1].id if more and shown else None)

    async def _outputs_page(self, session_id: str, limit: int, cursor: str | None) -> FileList:
        outputs = await self._outputs(session_id)
        offset_text = _cursor_value(cursor) or "0"
        if not offset_text.isdigit():
            raise InvalidRequestError(f"page={cursor!r} is not a cursor this server gave; pass a next_page value")
        offset = int(offset_text)
        shown = outputs[offset : offset + limit]
        more = offset + limit < len(outputs)
        return FileList(files=shown, next_cursor=f"{_CURSOR_PREFIX}{offset + limit}" if more else None)

    async def _outputs(self, session_id: str) -> list[FileMetadata]:
        listing = await self._sessions.output_files(session_id)
        records = await in_thread(self._store.output_ids, session_id, [f.path for f in listing.files])
        return [
            _output_metadata(record, f.size_bytes, f.mime_type)
            for record, f in zip(records, listing.files, strict=True)
        ]

    async def get(self, file_id: str) -> FileMetadata:
        try:
            return await in_thread(self._store.get, file_id)
        except NotFoundError:
            record = await in_thread(self._store.output_record, file_id)
        for output in await self._outputs(record.session_id):
            if output.id == file_id:
                return output
        raise NotFoundError(f"file {file_id!r} is no longer in session {record.session_id!r}'s outputs folder")

    async def content(self, file_id: str) -> tuple[FileMetadata, AsyncIterator[bytes]]:
        """The file and its bytes, in chunks (an upload read from disk, an output file from its sandbox)."""
        metadata = await self.get(file_id)
        if metadata.output_path is None:
            path = await in_thread(self._store.content_path, file_id)
            return metadata, _read_chunks(await in_thread(path.open, "rb"))
        assert metadata.scope is not None
        return metadata, self._output_chunks(metadata.scope.id, metadata.output_path)

    async def _output_chunks(self, session_id: str, path: str) -> AsyncIterator[bytes]:
        offset = 0
        while True:
            chunk = await self._sessions.read_output(session_id, path, offset, DOWNLOAD_CHUNK_BYTES)
            if chunk.data:
                yield chunk.data
            offset += len(chunk.data)
            if chunk.eof or not chunk.data:
                return

    async def delete(self, file_id: str) -> FileDeleted:
        try:
            await in_thread(self._store.delete, file_id)
        except NotFoundError:
            record = await in_thread(self._store.output_record, file_id)
            raise InvalidRequestError(
                f"file {file_id!r} is an output of session {record.session_id!r}; it goes with the session "
                "(delete the session), or the agent removes it from /mnt/session/outputs/"
            ) from None
        return FileDeleted(id=file_id)

    async def check_uploaded(self, file_ids: Sequence[str]) -> None:
        """Refuses ids that name no upload (a resource or a message block names one), before anything is written."""
        for file_id in file_ids:
            try:
                await in_thread(self._store.get, file_id)
            except NotFoundError:
                raise NotFoundError(
                    f"no uploaded file {file_id!r}; upload it first (POST /v1/files or upload_file)"
                ) from None

    async def check_sources(self, blocks: Sequence[ContentBlock]) -> None:
        """Refuses a message whose image or document blocks name a file that is not there."""
        await self.check_uploaded([s.file_id for b in blocks if (s := _file_source(b)) is not None])

    async def as_base64(self, file_id: str) -> tuple[str, str]:
        """An upload's mime type and base64 bytes, as the model receives an image or document block."""
        metadata = await self.get(file_id)
        if metadata.size_bytes > MAX_MODEL_FILE_BYTES:
            raise InvalidRequestError(
                f"file {file_id!r} is {metadata.size_bytes} bytes; a model request takes at most "
                f"{MAX_MODEL_FILE_BYTES}; mount it as a file resource instead"
            )
        _, chunks = await self.content(file_id)
        data = b"".join([chunk async for chunk in chunks])
        return metadata.mime_type, base64.b64encode(data).decode("ascii")


def _file_source(block: ContentBlock) -> FileSource | None:
    if isinstance(block, ImageBlock | DocumentBlock) and isinstance(block.source, FileSource):
        return block.source
    return None


def _output_metadata(record: OutputRecord, size_bytes: int, mime_type: str) -> FileMetadata:
    return FileMetadata(
        id=record.file_id,
        filename=record.path.rsplit("/", 1)[-1],
        mime_type=mime_type,
        size_bytes=size_bytes,
        created_at=record.created_at,
        scope=FileScope(id=record.session_id),
        output_path=record.path,
    )


def _mime_type(filename: str | None, given: str | None) -> str:
    if given and given != DEFAULT_MIME_TYPE:
        return given
    guessed, _ = mimetypes.guess_type(filename or "")
    return guessed or given or DEFAULT_MIME_TYPE


def _cursor_value(cursor: str | None) -> str | None:
    if cursor is None:
        return None
    if not cursor.startswith(_CURSOR_PREFIX):
        raise InvalidRequestError(f"page={cursor!r} is not a cursor this server gave; pass a next_page value")
    return cursor[len(_CURSOR_PREFIX) :]


async def _read_chunks(handle: BinaryIO) -> AsyncIterator[bytes]:
    try:
        while chunk := await in_thread(handle.read, DOWNLOAD_CHUNK_BYTES):
            yield chunk
    finally:
        handle.close()
