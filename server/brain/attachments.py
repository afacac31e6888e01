"""Image and document blocks that name an uploaded file, turned into the base64 blocks the model reads.

The log keeps `source: {type: "file", file_id}` as the client sent it; the bytes are read only when a model
request is made (through the `FileContents` port), so the store never holds them twice.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import JsonValue

from server.brain.conversation import Message
from server.brain.ports import FileContents

__all__ = ["has_file_sources", "inline_files"]


def has_file_sources(messages: Sequence[Message]) -> bool:
    return any(_file_id(block) for message in messages for block in _blocks(message))


async def inline_files(messages: Sequence[Message], files: FileContents) -> list[Message]:
    """The messages with each file source replaced by a base64 source (each file read once)."""
    read: dict[str, dict[str, JsonValue]] = {}
    inlined: list[Message] = []
    for message in messages:
        blocks = _blocks(message)
        if not any(_file_id(block) for block in blocks):
            inlined.append(message)
            continue
        new_blocks: list[JsonValue] = []
        for block in blocks:
            file_id = _file_id(block)
            if file_id is None or not isinstance(block, dict):
                new_blocks.append(block)
                continue
            if file_id not in read:
                media_type, data = await files.as_base64(file_id)
                read[file_id] = {"type": "base64", "media_type": media_type, "data": data}
            new_blocks.append({**block, "source": read[file_id]})
        inlined.append({**message, "content": new_blocks})
    return inlined


def _blocks(message: Message) -> list[JsonValue]:
    content = message.get("content")
    return content if isinstance(content, list) else []


def _file_id(block: JsonValue) -> str | None:
    if not isinstance(block, dict) or block.get("type") not in ("image", "document"):
        return None
    source = block.get("source")
    if isinstance(source, dict) and source.get("type") == "file" and isinstance(source.get("file_id"), str):
        file_id = source["file_id"]
        assert isinstance(file_id, str)
        return file_id
    return None
