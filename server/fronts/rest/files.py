"""`/v1/files`: upload (multipart, streamed to disk), list (uploads, or a session's outputs by `scope_id`),
metadata, download (streamed), delete. Nothing here needs a beta header: `client.beta.files` sends none."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Annotated, Any
from urllib.parse import quote

from pydantic import Field
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from server.core.errors import NotFoundError
from server.core.files import FileMetadata
from server.fronts.rest.common import page, path_id, runtime
from server.fronts.rest.wire import ApiError, QueryModel, endpoint, json_response, read_query

__all__ = ["file_routes"]

MULTIPART_OVERHEAD_BYTES = 64 * 1024
"""Room for the multipart framing and small fields beside the file part."""
MAX_IDS = 100

Message = MutableMapping[str, Any]


class FileListQuery(QueryModel):
    limit: Annotated[int, Field(ge=1, le=1000)] = 20
    page: Annotated[str | None, Field(max_length=80)] = None
    scope_id: Annotated[str | None, Field(min_length=1, max_length=64)] = None
    ids: Annotated[list[Annotated[str, Field(max_length=64)]] | None, Field(max_length=MAX_IDS)] = None


def shown(metadata: FileMetadata) -> dict[str, Any]:
    return metadata.model_dump(mode="json")


def _capped(receive: Callable[[], Awaitable[Message]], limit: int) -> Callable[[], Awaitable[Message]]:
    """The request's body stream, failing with 413 once more than `limit` bytes came (a body without a
    Content-Length, or one that lies about it)."""
    seen = 0

    async def capped_receive() -> Message:
        nonlocal seen
        message = await receive()
        seen += len(message.get("body", b""))
        if seen > limit:
            raise _too_large(limit - MULTIPART_OVERHEAD_BYTES)
        return message

    return capped_receive


def _too_large(max_bytes: int) -> ApiError:
    return ApiError(
        413,
        "request_too_large",
        f"the upload is over {max_bytes} bytes ({max_bytes // (1024 * 1024)} MB), this server's limit "
        "(MANAGED_SESSIONS_MAX_UPLOAD_MB); send a smaller file",
    )


@endpoint
async def upload(request: Request) -> Response:
    files = runtime(request).files
    limit = files.max_upload_bytes + MULTIPART_OVERHEAD_BYTES
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(files.max_upload_bytes)
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise ApiError(400, "invalid_request_error", "send the file as multipart/form-data, in a part named 'file'")
    capped = Request(request.scope, _capped(request.receive, limit))
    async with capped.form(max_files=1, max_fields=8) as form:
        part = form.get("file")
        if not isinstance(part, UploadFile):
            raise ApiError(400, "invalid_request_error", "the multipart body needs a file part named 'file'")
        if "expires_in_seconds" in form:
            raise ApiError(
                400, "invalid_request_error", "expires_in_seconds is not supported here: files stay until deleted"
            )
        stored = await files.upload(part.filename, part.content_type, part.file)
    return json_response(shown(stored))


@endpoint
async def list_files(request: Request) -> Response:
    query = read_query(request, FileListQuery)
    files = runtime(request).files
    if query.ids is not None:
        if query.page is not None:
            raise ApiError(400, "invalid_request_error", "ids excludes page and limit; pass one or the other")
        found = []
        for file_id in dict.fromkeys(query.ids):
            try:
                found.append(shown(await files.get(file_id)))
            except NotFoundError:
                continue  # as the hosted API: ids that name nothing are left out
        return json_response(page(found, None))
    listed = await files.list_page(query.limit, query.page, query.scope_id)
    return json_response(page([shown(f) for f in listed.files], listed.next_cursor))


@endpoint
async def retrieve(request: Request) -> Response:
    return json_response(shown(await runtime(request).files.get(path_id(request, "file_id"))))


@endpoint
async def download(request: Request) -> Response:
    metadata, chunks = await runtime(request).files.content(path_id(request, "file_id"))
    headers = {"content-disposition": f"attachment; filename*=UTF-8''{quote(metadata.filename, safe='')}"}
    if metadata.output_path is None:  # an upload never changes; an output file may while it is read
        headers["content-length"] = str(metadata.size_bytes)
    return StreamingResponse(chunks, media_type=metadata.mime_type, headers=headers)


@endpoint
async def delete(request: Request) -> Response:
    return json_response(await runtime(request).files.delete(path_id(request, "file_id")))


def file_routes() -> list[BaseRoute]:
    return [
        Route("/files", upload, methods=["POST"]),
        Route("/files", list_files, methods=["GET"]),
        Route("/files/{file_id}", retrieve, methods=["GET"]),
        Route("/files/{file_id}", delete, methods=["DELETE"]),
        Route("/files/{file_id}/content", download, methods=["GET"]),
    ]
