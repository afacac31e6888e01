"""Output files through the MCP tools and resource, against a real sandbox."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import docker
import docker.errors
import pytest
from mcp import MCPError
from mcp.types import BlobResourceContents, EmbeddedResource, ImageContent, TextContent
from scenario import call_error, call_ok
from serving import connected

from server.core.config import DEFAULT_IMAGE, ServerConfig
from server.services.runtime import open_runtime

pytestmark = [pytest.mark.docker, pytest.mark.anyio]

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


@pytest.fixture
def sandbox_config(data_dir: Path, docker_client: docker.DockerClient) -> ServerConfig:
    return ServerConfig(data_dir=data_dir, image=DEFAULT_IMAGE)


async def run(config: ServerConfig, session_id: str, command: str) -> None:
    """Runs a command in the session's sandbox, as the agent would."""
    async with open_runtime(config) as runtime:
        session = await runtime.sessions.get(session_id)
        result = await runtime.sandboxes.tools(session.id, session.environment).execute("bash", {"command": command})
        assert not result.is_error, result.as_text()


async def test_output_files_are_listed_and_read_as_text_image_or_blob(sandbox_config: ServerConfig) -> None:
    async with connected(sandbox_config) as client:
        session = await call_ok(client, "create_session", {})
        png_b64 = base64.b64encode(PNG).decode()
        await run(
            sandbox_config,
            session["id"],
            "cd /mnt/session/outputs && mkdir -p reports && printf '# Done\\n' > reports/summary.md"
            f" && echo {png_b64} | base64 -d > chart.png && head -c 300 /dev/urandom > data.bin"
            " && echo secret > /workspace/not-an-output.txt",
        )
        listing = await call_ok(client, "list_output_files", {"session_id": session["id"]})
        files = {f["path"]: f for f in listing["files"]}
        assert sorted(files) == ["chart.png", "data.bin", "reports/summary.md"]
        assert files["reports/summary.md"]["sha256"] == hashlib.sha256(b"# Done\n").hexdigest()
        assert files["reports/summary.md"]["size_bytes"] == 7
        assert files["chart.png"]["mime_type"] == "image/png"

        text = await client.call_tool("read_output_file", {"session_id": session["id"], "path": "reports/summary.md"})
        assert isinstance(text.content[0], TextContent)
        assert text.content[0].text == "# Done\n"
        assert text.structured_content == {
            "path": "reports/summary.md",
            "mime_type": "text/markdown",
            "size_bytes": 7,
            "offset": 0,
            "returned_bytes": 7,
            "eof": True,
        }
        image = await client.call_tool("read_output_file", {"session_id": session["id"], "path": "chart.png"})
        assert isinstance(image.content[0], ImageContent)
        assert base64.b64decode(image.content[0].data) == PNG
        blob = await client.call_tool("read_output_file", {"session_id": session["id"], "path": "data.bin"})
        assert isinstance(blob.content[0], EmbeddedResource)
        assert isinstance(blob.content[0].resource, BlobResourceContents)
        assert len(base64.b64decode(blob.content[0].resource.blob)) == 300

        part = await call_ok(
            client,
            "read_output_file",
            {"session_id": session["id"], "path": "data.bin", "offset": 100, "max_bytes": 50},
        )
        assert (part["returned_bytes"], part["eof"]) == (50, False)

        resource = await client.read_resource(f"session://{session['id']}/outputs/reports/summary.md")
        assert resource.contents[0].text == "# Done\n"  # type: ignore[union-attr]
        await call_ok(client, "delete_session", {"session_id": session["id"]})


@pytest.mark.parametrize(
    "path", ["../workspace/not-an-output.txt", "/etc/passwd", "reports/../../workspace/x", "escape", "escape-dir/x"]
)
async def test_paths_that_leave_the_outputs_folder_are_refused(sandbox_config: ServerConfig, path: str) -> None:
    async with connected(sandbox_config) as client:
        session = await call_ok(client, "create_session", {})
        await run(
            sandbox_config,
            session["id"],
            "echo secret > /workspace/secret.txt && cd /mnt/session/outputs"
            " && ln -s /etc/passwd escape && ln -s /workspace escape-dir",
        )
        error = await call_error(client, "read_output_file", {"session_id": session["id"], "path": path})
        assert "secret" not in error
        assert "root:" not in error
        listing = await call_ok(client, "list_output_files", {"session_id": session["id"]})
        assert listing["files"] == []  # symlinks are not outputs
        with pytest.raises(MCPError):
            await client.read_resource(f"session://{session['id']}/outputs/{path}")
        await call_ok(client, "delete_session", {"session_id": session["id"]})
