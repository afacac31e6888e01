"""MCP tools and the resource for the files a session leaves in /mnt/session/outputs/."""

from __future__ import annotations

import base64
from typing import Annotated, cast

from mcp.server.mcpserver import Context
from mcp.types import BlobResourceContents, CallToolResult, EmbeddedResource, ImageContent, TextContent
from pydantic import BaseModel, Field, StrictInt

from server.core.ids import SessionId
from server.fronts.mcp.registry import Registry
from server.fronts.mcp.tools.common import READ_ONLY, Ctx, reply, runtime
from server.services.runtime import Runtime
from server.services.sessions import OutputChunk, OutputFiles

__all__ = ["register_output_tools"]

DEFAULT_READ_BYTES = 1_048_576
MAX_READ_BYTES = 4_194_304
MAX_OFFSET = 2**53 - 1
"""The largest integer every JSON client reads exactly (and far past any file)."""
_TEXT_TYPES = ("application/json", "application/xml", "application/javascript", "application/x-yaml")
_IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp")


class OutputRead(BaseModel):
    """What part of the file this call returned; the bytes are in the content."""

    path: str
    mime_type: str
    size_bytes: int
    offset: int
    returned_bytes: int
    eof: bool = Field(description="False when more bytes follow: call again with offset + returned_bytes.")


def _content(session_id: str, chunk: OutputChunk) -> TextContent | ImageContent | EmbeddedResource:
    """Text for text files, image content for images, an embedded blob for anything else."""
    if chunk.mime_type.startswith("text/") or chunk.mime_type in _TEXT_TYPES:
        try:
            return TextContent(type="text", text=chunk.data.decode("utf-8"))
        except UnicodeDecodeError:
            pass  # not really text: fall through to a blob
    encoded = base64.b64encode(chunk.data).decode("ascii")
    if chunk.mime_type in _IMAGE_TYPES and chunk.offset == 0 and chunk.eof:
        return ImageContent(type="image", data=encoded, mime_type=chunk.mime_type)
    blob = BlobResourceContents(
        uri=f"session://{session_id}/outputs/{chunk.path}", mime_type=chunk.mime_type, blob=encoded
    )
    return EmbeddedResource(type="resource", resource=blob)


def register_output_tools(mcp: Registry) -> None:
    @mcp.tool(annotations=READ_ONLY)
    async def list_output_files(ctx: Ctx, session_id: SessionId) -> Annotated[CallToolResult, OutputFiles]:
        """List the files the agent left in /mnt/session/outputs/: path, size, mime type, sha256, modified time."""
        listing = await runtime(ctx).sessions.output_files(session_id)
        return reply(listing, f"{len(listing.files)} output file(s).")

    @mcp.tool(annotations=READ_ONLY)
    async def read_output_file(
        ctx: Ctx,
        session_id: SessionId,
        path: Annotated[str, Field(min_length=1, max_length=4096, description="As list_output_files shows it.")],
        offset: Annotated[StrictInt, Field(ge=0, le=MAX_OFFSET, description="Byte offset to start at.")] = 0,
        max_bytes: Annotated[StrictInt, Field(ge=1, le=MAX_READ_BYTES, description="At most this many bytes.")] = (
            DEFAULT_READ_BYTES
        ),
    ) -> Annotated[CallToolResult, OutputRead]:
        """Read an output file: text as text, images as image content, other files as an embedded blob.

        Paths are relative to /mnt/session/outputs/; anything leading outside it is refused."""
        chunk = await runtime(ctx).sessions.read_output(session_id, path, offset, max_bytes)
        info = OutputRead(
            path=chunk.path,
            mime_type=chunk.mime_type,
            size_bytes=chunk.size_bytes,
            offset=chunk.offset,
            returned_bytes=len(chunk.data),
            eof=chunk.eof,
        )
        return CallToolResult(content=[_content(session_id, chunk)], structured_content=info.model_dump(mode="json"))

    @mcp.resource("session://{session_id}/outputs/{+path}", description="A file from a session's outputs folder.")
    async def output_resource(session_id: str, path: str, ctx: Context) -> str | bytes:
        sessions = cast(Runtime, ctx.request_context.lifespan_context).sessions
        chunk = await sessions.read_output(session_id, path, 0, MAX_READ_BYTES)
        if chunk.mime_type.startswith("text/"):
            return chunk.data.decode("utf-8", errors="replace")
        return chunk.data
