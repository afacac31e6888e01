"""The MCP `upload_file` tool: a small file into the store, to mount on a session (`create_session` resources)
or to name in a message's image or document block."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated

from mcp.types import CallToolResult
from pydantic import Field

from server.core.errors import InvalidRequestError
from server.core.files import FileMetadata
from server.fronts.mcp.registry import Registry
from server.fronts.mcp.tools.common import WRITE, Ctx, reply, runtime
from server.services.files import MAX_MCP_UPLOAD_BYTES

__all__ = ["register_file_tools"]

_MAX_BASE64_CHARS = (MAX_MCP_UPLOAD_BYTES + 2) // 3 * 4


def register_file_tools(mcp: Registry) -> None:
    @mcp.tool(annotations=WRITE)
    async def upload_file(
        ctx: Ctx,
        filename: Annotated[str, Field(min_length=1, max_length=255, description="The file's name (a basename).")],
        content: Annotated[
            str | None, Field(default=None, max_length=MAX_MCP_UPLOAD_BYTES, description="Text content (UTF-8).")
        ] = None,
        content_base64: Annotated[
            str | None,
            Field(default=None, max_length=_MAX_BASE64_CHARS, description="Binary content, base64-encoded."),
        ] = None,
        mime_type: Annotated[
            str | None, Field(default=None, max_length=255, description="Default: guessed from the filename.")
        ] = None,
    ) -> Annotated[CallToolResult, FileMetadata]:
        """Upload a file (at most 512 KiB) and get its file_ id.

        Pass exactly one of content (text) or content_base64. Mount it read-only on a session with
        create_session(resources=[{type: 'file', file_id, mount_path?}]) (default /mnt/session/uploads/<file_id>).
        """
        if (content is None) == (content_base64 is None):
            raise InvalidRequestError("pass exactly one of content (text) or content_base64")
        if content is not None:
            data = content.encode("utf-8")
        else:
            assert content_base64 is not None
            try:
                data = base64.b64decode(content_base64, validate=True)
            except (binascii.Error, ValueError) as exc:
                raise InvalidRequestError(f"content_base64 is not valid base64: {exc}") from exc
        stored = await runtime(ctx).files.upload_bytes(filename, mime_type, data)
        return reply(stored, f"Uploaded {stored.filename} as {stored.id} ({stored.size_bytes} bytes).")
