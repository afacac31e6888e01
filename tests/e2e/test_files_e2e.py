"""Files both ways with real Docker: a CSV uploaded through the SDK is mounted read-only in a session's sandbox,
the agent reads it with a built-in tool and leaves a result in /mnt/session/outputs/, and the client lists that
by `scope_id` and downloads it byte-identical. An image sent by file id reaches the model as a base64 block."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import anthropic
import docker
import pytest
from mcp import Client
from mcp_http import mcp_client
from model_server import ModelServer, RecordedRequest, reply, tool_use
from rest_serving import RestServer, rest_server
from scenario import call_ok

from server.core.config import DEFAULT_IMAGE, ServerConfig
from server.core.content import FileSource, ImageBlock, TextBlock
from server.core.events import SessionStatusRunning, UserMessage
from server.fronts.mcp.server import build_server
from server.services.runtime import Runtime, open_runtime
from vault.memory_store import MemoryStore

pytestmark = [pytest.mark.docker, pytest.mark.anyio]

CSV = b"item,amount\napples,3\npears,4\nplums,5\n"
RESULT = b"total,12\n"
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
SUM = "awk -F, 'NR>1 {s+=$2} END {print \"total,\" s}' {src} > /mnt/session/outputs/result.csv && echo summed"
TAMPER = (
    "(echo changed >> {src}) 2>/dev/null || echo WRITE-REFUSED; rm -f {src} 2>/dev/null || echo RM-REFUSED; "
    "(echo new > /mnt/session/uploads/new.txt) 2>/dev/null || echo ADD-REFUSED; stat -c '%U %a' {src}"
)


@pytest.fixture
def docker_config(config: ServerConfig, docker_client: docker.DockerClient) -> ServerConfig:
    return ServerConfig(data_dir=config.data_dir, image=DEFAULT_IMAGE, model="claude-test", model_key_present=True)


def _results(request: RecordedRequest) -> str:
    return str(request.tool_results())


async def test_a_csv_goes_in_read_only_and_the_result_comes_out(
    docker_config: ServerConfig, model: ModelServer
) -> None:
    with rest_server(docker_config, secrets=MemoryStore()) as rest:
        async with rest.async_client() as client:
            await _round_trip(rest, client, model)


async def _round_trip(rest: RestServer, client: anthropic.AsyncAnthropic, model: ModelServer) -> None:
    uploaded = await client.beta.files.upload(file=("sales.csv", CSV, "text/csv"))
    mounted = f"/mnt/session/uploads/{uploaded.id}"
    model.enqueue(
        reply(tool_use("read", {"file_path": mounted})),
        lambda request: reply(
            tool_use("bash", {"command": SUM.replace("{src}", "/data/sales.csv")})
            if "plums" in _results(request)
            else "the upload was not readable"
        ),
        reply(tool_use("bash", {"command": TAMPER.replace("{src}", mounted)})),
        reply("Done: total in result.csv."),
    )
    async with mcp_client(rest) as mcp:
        resources: list[dict[str, Any]] = [
            {"type": "file", "file_id": uploaded.id},
            {"type": "file", "file_id": uploaded.id, "mount_path": "/data/sales.csv"},
        ]
        created = await mcp.call_tool("create_session", {"resources": resources})
        assert created.structured_content is not None, created.content
        session_id = created.structured_content["id"]
        sent = await mcp.call_tool("send_message", {"session_id": session_id, "text": "sum it", "wait_seconds": 55})
        assert sent.structured_content is not None, sent.content
        assert sent.structured_content["status"] == "idle", sent.structured_content
        assert sent.structured_content["reply"] == "Done: total in result.csv."

    tamper_output = _results(model.requests[-1])
    assert "WRITE-REFUSED" in tamper_output
    assert "RM-REFUSED" in tamper_output
    assert "ADD-REFUSED" in tamper_output
    assert "root 444" in tamper_output

    listed = [f async for f in client.beta.files.list(scope_id=session_id)]
    assert [(f.filename, f.size_bytes, f.downloadable) for f in listed] == [("result.csv", len(RESULT), True)]
    assert await (await client.beta.files.download(listed[0].id)).read() == RESULT
    assert await (await client.beta.files.download(uploaded.id)).read() == CSV  # the upload is untouched


async def test_files_are_there_again_after_the_container_is_replaced(
    docker_config: ServerConfig, model: ModelServer, docker_client: docker.DockerClient
) -> None:
    model.enqueue(
        reply(tool_use("bash", {"command": "cat /data/sales.csv"})),
        reply("first"),
        reply(tool_use("bash", {"command": "cat /data/sales.csv"})),
        reply("second"),
    )
    async with open_runtime(docker_config, secrets=MemoryStore()) as runtime:
        uploaded = await runtime.files.upload_bytes("sales.csv", "text/csv", CSV)
        async with mcp_over(runtime) as call:
            session = await call("create_session", {"resources": [_file(uploaded.id, "/data/sales.csv")]})
            await call("send_message", {"session_id": session["id"], "text": "look", "wait_seconds": 55})
            for container in docker_client.containers.list(filters={"name": session["id"].lower()}):
                container.remove(force=True)
            second = await call("send_message", {"session_id": session["id"], "text": "again", "wait_seconds": 55})
    assert second["reply"] == "second"
    assert "plums" in _results(model.requests[-1])


async def test_an_image_named_by_file_id_reaches_the_model_as_base64(
    docker_config: ServerConfig, model: ModelServer
) -> None:
    model.enqueue(reply("a red dot"), reply("never asked"))
    async with open_runtime(docker_config, secrets=MemoryStore()) as runtime:
        image = await runtime.files.upload_bytes("dot.png", None, PNG)
        async with mcp_over(runtime) as call:
            session = await call("create_session", {})
        await runtime.sessions.append(
            session["id"],
            [
                UserMessage(content=[TextBlock(text="what is this?"), ImageBlock(source=FileSource(file_id=image.id))]),
                SessionStatusRunning(),
            ],
        )
        runtime.runner.start(session["id"])
        await runtime.inbox.wait_idle(
            session["id"], (await runtime.sessions.read_events(session["id"], 0))[0], 30, None
        )
        events = await runtime.sessions.read_events(session["id"], 0)
    (request,) = model.requests
    image_block = request.messages[0]["content"][1]  # type: ignore[index]
    assert image_block["type"] == "image"  # type: ignore[index,call-overload]
    assert image_block["source"] == {  # type: ignore[index,call-overload]
        "type": "base64",
        "media_type": "image/png",
        "data": base64.b64encode(PNG).decode(),
    }
    stored = events[0].payload()
    assert stored["content"][1]["source"] == {"type": "file", "file_id": image.id}  # type: ignore[index,call-overload]


@asynccontextmanager
async def mcp_over(runtime: Runtime) -> AsyncIterator[Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]]:
    """Tool calls over an in-memory MCP client of this runtime (the test also reaches the runtime itself)."""
    async with Client(build_server(runtime)) as client:

        async def call(tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
            return await call_ok(client, tool, arguments)

        yield call


def _file(file_id: str, mount_path: str) -> dict[str, str]:
    return {"type": "file", "file_id": file_id, "mount_path": mount_path}
