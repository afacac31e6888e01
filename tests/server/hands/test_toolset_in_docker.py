"""Every built-in tool through `SandboxTools.execute`, in a real container: results and error texts."""

from __future__ import annotations

import base64
import threading
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import docker
import docker.errors
import pytest

from server.core.config import DEFAULT_IMAGE, ServerConfig
from server.core.tools import ToolResult
from server.hands.toolset import BUILTIN_TOOL_SPECS, SandboxTools
from server.services.runtime import open_runtime
from server.services.sessions import NewSession

pytestmark = [pytest.mark.docker, pytest.mark.anyio]

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


@pytest.fixture(scope="module")
def page_server() -> Iterator[str]:
    class Page(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"<html><head><title>Notes</title></head><body><h1>Hello</h1><script>x()</script></body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


@pytest.fixture
async def tools(data_dir: Path, docker_client: docker.DockerClient) -> AsyncIterator[SandboxTools]:
    config = ServerConfig(data_dir=data_dir, image=DEFAULT_IMAGE, web_fetch_allow_private=True)
    async with open_runtime(config) as runtime:
        session = await runtime.sessions.create(NewSession())
        try:
            yield runtime.sandboxes.tools(session.id, session.environment)
        finally:
            await runtime.sessions.delete(session.id)


async def ok(tools: SandboxTools, name: str, **tool_input: object) -> ToolResult:
    result = await tools.execute(name, tool_input)  # type: ignore[arg-type]
    assert not result.is_error, result.as_text()
    return result


async def error(tools: SandboxTools, name: str, **tool_input: object) -> str:
    result = await tools.execute(name, tool_input)  # type: ignore[arg-type]
    assert result.is_error, result.as_text()
    return result.as_text()


def test_the_model_is_told_about_every_tool_with_an_input_schema() -> None:
    assert sorted(BUILTIN_TOOL_SPECS) == ["bash", "edit", "glob", "grep", "read", "web_fetch", "write"]
    assert BUILTIN_TOOL_SPECS["bash"]["input_schema"]["properties"].keys() == {"command", "restart", "timeout_ms"}


async def test_write_read_edit_with_the_unique_match_rule(tools: SandboxTools) -> None:
    wrote = await ok(tools, "write", file_path="src/app.py", content="x = 1\ny = 1\n")
    assert wrote.as_text().startswith("wrote 12 bytes to")
    assert "x = 1" in (await ok(tools, "read", file_path="src/app.py")).as_text()
    assert "appears 2 times" in await error(tools, "edit", file_path="src/app.py", old_string="= 1", new_string="= 2")
    assert "not found" in await error(tools, "edit", file_path="src/app.py", old_string="z", new_string="w")
    edited = await ok(tools, "edit", file_path="src/app.py", old_string="= 1", new_string="= 2", replace_all=True)
    assert "2 replacement" in edited.as_text()
    assert (await ok(tools, "read", file_path="src/app.py", view_range=[2, 2])).as_text().strip().endswith("y = 2")


async def test_glob_and_grep(tools: SandboxTools) -> None:
    await ok(tools, "bash", command="mkdir -p pkg && echo 'def alpha(): pass' > pkg/a.py && echo beta > pkg/b.txt")
    assert "pkg/a.py" in (await ok(tools, "glob", pattern="**/*.py")).as_text()
    assert (await ok(tools, "glob", pattern="**/*.rs")).as_text() == "no matches"
    found = (await ok(tools, "grep", pattern="def alp")).as_text()
    assert "a.py:1:def alpha(): pass" in found
    refused = await error(tools, "glob", pattern="/etc/*")
    assert "absolute" in refused or "outside" in refused


async def test_long_output_keeps_its_tail(tools: SandboxTools) -> None:
    text = (await ok(tools, "bash", command="seq 1 100000")).as_text()
    assert text.startswith("[output truncated]")
    assert text.rstrip().endswith("100000")
    assert len(text.encode()) <= 100 * 1024 + 100


async def test_binary_files_are_refused_as_text_and_images_come_back_as_image_blocks(tools: SandboxTools) -> None:
    png_b64 = base64.b64encode(PNG).decode()
    await ok(tools, "bash", command=f"head -c 64 /dev/urandom > blob.bin && echo {png_b64} | base64 -d > dot.png")
    assert "binary" in (await error(tools, "read", file_path="blob.bin")).lower()
    image = await ok(tools, "read", file_path="dot.png")
    [block] = image.content
    assert block["type"] == "image"
    assert block["source"] == {"type": "base64", "media_type": "image/png", "data": png_b64}


@pytest.mark.parametrize("path", ["/etc/passwd", "../../etc/passwd", "link-out"])
async def test_file_tools_refuse_paths_outside_the_sandboxs_files(tools: SandboxTools, path: str) -> None:
    await ok(tools, "bash", command="ln -sf /etc/passwd /workspace/link-out")
    assert "root:" not in await error(tools, "read", file_path=path)
    assert "outside" in await error(tools, "write", file_path=path, content="x")


async def test_invalid_input_and_unknown_tools_are_error_results(tools: SandboxTools) -> None:
    assert "invalid input" in await error(tools, "read", path="x")
    assert "no such tool" in await error(tools, "teleport")
    assert "give a command" in await error(tools, "bash")


async def test_restart_resets_the_shell(tools: SandboxTools) -> None:
    await ok(tools, "bash", command="cd /tmp && export KEEP=1")
    assert "restarted" in (await ok(tools, "bash", restart=True)).as_text()
    assert (await ok(tools, "bash", command='pwd; echo "[$KEEP]"')).as_text() == "/workspace\n[]"


async def test_web_fetch_runs_on_the_host_and_returns_readable_text(tools: SandboxTools, page_server: str) -> None:
    text = (await ok(tools, "web_fetch", url=page_server)).as_text()
    assert "Notes" in text
    assert "Hello" in text
    assert "x()" not in text
    refused = await error(tools, "web_fetch", url="file:///etc/passwd")
    assert refused.startswith("web_fetch: ")
    assert "root:" not in refused
