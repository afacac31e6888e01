"""Content blocks as events carry them: the Messages API's text, image and document blocks.

Frozen, `extra="forbid"` models discriminated on `type`. Events store them with only the fields that were set
(`model_dump(exclude_unset=True)`), so a block reads back exactly as it was written.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field
from typing_extensions import override

__all__ = [
    "Base64Source",
    "ContentBlock",
    "DocumentBlock",
    "FileSource",
    "ImageBlock",
    "PlainTextSource",
    "TextBlock",
    "UrlSource",
]


class _Block(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    @override
    def model_post_init(self, context: object, /) -> None:
        """`type` counts as set even when it came from its default, so dumps with `exclude_unset` keep it."""
        self.__pydantic_fields_set__.add("type")


class Base64Source(_Block):
    type: Literal["base64"] = "base64"
    media_type: str
    data: str


class UrlSource(_Block):
    type: Literal["url"] = "url"
    url: str


class FileSource(_Block):
    type: Literal["file"] = "file"
    file_id: str


class PlainTextSource(_Block):
    type: Literal["text"] = "text"
    media_type: Literal["text/plain"] = "text/plain"
    data: str


ImageSource = Annotated[Base64Source | UrlSource | FileSource, Field(discriminator="type")]
DocumentSource = Annotated[Base64Source | PlainTextSource | UrlSource | FileSource, Field(discriminator="type")]


class TextBlock(_Block):
    type: Literal["text"] = "text"
    text: str


class ImageBlock(_Block):
    type: Literal["image"] = "image"
    source: ImageSource


class DocumentBlock(_Block):
    type: Literal["document"] = "document"
    source: DocumentSource
    title: str | None = None
    context: str | None = None


ContentBlock = Annotated[TextBlock | ImageBlock | DocumentBlock, Field(discriminator="type")]
"""A block of a message or a tool result."""
