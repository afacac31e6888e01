"""Image and document blocks that name an uploaded file: the model gets base64, an unknown id a clear error."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from fake_sandboxes import FakeSandboxes
from model_server import ModelServer, reply

from server.core.config import ServerConfig
from server.core.content import Base64Source, DocumentBlock, FileSource, ImageBlock, TextBlock
from server.core.errors import NotFoundError
from server.core.events import SessionStatusRunning, UserMessage
from server.services.runtime import Runtime, open_runtime
from server.services.sessions import NewSession
from vault.memory_store import MemoryStore

pytestmark = pytest.mark.anyio


@pytest.fixture
def loop_config(data_dir: Path) -> ServerConfig:
    return ServerConfig(data_dir=data_dir, model="claude-test", model_key_present=True, model_retry_delays_s=())


async def _send(runtime: Runtime, message: UserMessage) -> list[str]:
    session = await runtime.sessions.create(NewSession())
    first, *_ = await runtime.sessions.append(session.id, [message, SessionStatusRunning()])
    runtime.runner.start(session.id)
    await runtime.inbox.wait_idle(session.id, first, 30, None)
    return [e.type for e in await runtime.sessions.read_events(session.id, 0)]


async def test_a_document_by_file_id_is_sent_as_base64_and_base64_passes_unchanged(
    loop_config: ServerConfig, model: ModelServer
) -> None:
    model.enqueue(reply("read it"))
    async with open_runtime(loop_config, sandboxes=FakeSandboxes(), secrets=MemoryStore()) as runtime:
        pdf = await runtime.files.upload_bytes("spec.pdf", None, b"%PDF-1.4 tiny")
        inline = Base64Source(media_type="image/gif", data="R0lGODlhAQABAAAAACw=")
        message = UserMessage(
            content=[
                TextBlock(text="compare"),
                DocumentBlock(source=FileSource(file_id=pdf.id)),
                ImageBlock(source=inline),
            ]
        )
        await _send(runtime, message)
    blocks = model.requests[0].messages[0]["content"]
    assert isinstance(blocks, list)
    assert blocks[1]["source"] == {  # type: ignore[index,call-overload]
        "type": "base64",
        "media_type": "application/pdf",
        "data": base64.b64encode(b"%PDF-1.4 tiny").decode(),
    }
    assert blocks[2]["source"] == inline.model_dump()  # type: ignore[index,call-overload]


async def test_an_unknown_file_id_ends_the_turn_with_a_session_error(
    loop_config: ServerConfig, model: ModelServer
) -> None:
    async with open_runtime(loop_config, sandboxes=FakeSandboxes(), secrets=MemoryStore()) as runtime:
        missing = ImageBlock(source=FileSource(file_id="file_01JD7Y3Q4K2W8T6X0V5N9R1M3P"))
        types = await _send(runtime, UserMessage(content=[TextBlock(text="look"), missing]))
        with pytest.raises(NotFoundError, match="no uploaded file"):
            await runtime.files.check_sources([missing])
    assert "session.error" in types
    assert types[-1] == "session.status_idle"
    assert model.requests == []
