"""What a client may send a session, and the rules an event must pass before the log is touched.

Both fronts send through `Inbox.send`: MCP one event per tool call, REST a list per request. These checks need
no log, so a whole list is checked before any of it is recorded (nothing half-written); the checks that need the
log (is that tool use waiting?) are `Inbox`'s.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from typing import Annotated

from pydantic import Field

from server.core.content import Base64Source, ContentBlock, DocumentBlock, ImageBlock, TextBlock, UrlSource
from server.core.errors import InvalidRequestError
from server.core.events import UserCustomToolResult, UserInterrupt, UserMessage, UserToolConfirmation

__all__ = [
    "MAX_DENY_MESSAGE_CHARS",
    "MAX_EVENTS_PER_SEND",
    "MAX_MESSAGE_CHARS",
    "UserEvent",
    "check_user_events",
]

MAX_MESSAGE_CHARS = 500_000
"""The text of one message (or one custom tool result), all its text blocks together."""
MAX_DENY_MESSAGE_CHARS = 10_000
MAX_EVENTS_PER_SEND = 50
"""Events per send, as the hosted API caps `initial_events`: a client with more sends them in turns."""
IMAGE_MEDIA_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
"""What the Messages API takes as a base64 image; anything else would fail the turn, not the request."""
DOCUMENT_MEDIA_TYPES = frozenset({"application/pdf"})

UserEvent = Annotated[
    UserMessage | UserInterrupt | UserToolConfirmation | UserCustomToolResult, Field(discriminator="type")
]
"""An event a client sends."""


def check_user_events(events: Sequence[UserEvent]) -> None:
    """Refuses a list that breaks a rule no log is needed for, naming the event (`events[i]`) and the fix."""
    if not events:
        raise InvalidRequestError("events is empty; send at least one event")
    if len(events) > MAX_EVENTS_PER_SEND:
        raise InvalidRequestError(f"{len(events)} events in one send; the limit is {MAX_EVENTS_PER_SEND}")
    for index, event in enumerate(events):
        where = f"events[{index}] ({event.type})"
        thread = None if isinstance(event, UserMessage) else event.session_thread_id
        if thread is not None:
            raise InvalidRequestError(f"{where}: session_thread_id: this server runs one thread per session; omit it")
        match event:
            case UserMessage(content=content):
                if not content:
                    raise InvalidRequestError(f"{where}: content is empty; send at least one block")
                _check_content(where, content, empty_text=False)
            case UserCustomToolResult(content=content):
                _check_content(where, content, empty_text=True)
            case UserToolConfirmation(result=result, deny_message=deny_message):
                _check_confirmation(where, result, deny_message)
            case UserInterrupt():
                pass


def _check_confirmation(where: str, result: str, deny_message: str | None) -> None:
    if deny_message is not None and result != "deny":
        raise InvalidRequestError(f"{where}: deny_message goes with result 'deny' only")
    if deny_message is not None and len(deny_message) > MAX_DENY_MESSAGE_CHARS:
        raise InvalidRequestError(f"{where}: deny_message is over {MAX_DENY_MESSAGE_CHARS} characters")


def _check_content(where: str, content: Sequence[ContentBlock], *, empty_text: bool) -> None:
    """`empty_text`: whether an empty text block passes (a custom tool result may say nothing, as over MCP)."""
    chars = 0
    for index, block in enumerate(content):
        at = f"{where}: content[{index}]"
        match block:
            case TextBlock(text=text):
                if not text and not empty_text:
                    raise InvalidRequestError(f"{at}: text is empty; the model refuses empty text blocks")
                chars += len(text)
            case ImageBlock(source=source):
                _check_source(at, source, IMAGE_MEDIA_TYPES)
            case DocumentBlock(source=source):
                _check_source(at, source, DOCUMENT_MEDIA_TYPES)
    if chars > MAX_MESSAGE_CHARS:
        raise InvalidRequestError(f"{where}: the text is {chars} characters; the limit is {MAX_MESSAGE_CHARS}")


def _check_source(at: str, source: object, media_types: frozenset[str]) -> None:
    """Base64 data must decode and name a media type the model reads; a URL must be http(s)."""
    if isinstance(source, Base64Source):
        if source.media_type not in media_types:
            raise InvalidRequestError(f"{at}: media_type {source.media_type!r} is not one of {sorted(media_types)}")
        try:
            base64.b64decode(source.data, validate=True)
        except binascii.Error as exc:
            raise InvalidRequestError(f"{at}: source.data is not valid base64 ({exc})") from exc
    elif isinstance(source, UrlSource) and not source.url.startswith(("https://", "http://")):
        raise InvalidRequestError(f"{at}: source.url {source.url!r} must be an http(s) URL")
