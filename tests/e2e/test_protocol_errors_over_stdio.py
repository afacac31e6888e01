"""The JSON-RPC error codes a real stdio client reads: an unknown prompt or resource is -32602, never code 0,
and the server's stderr holds no traceback for it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from mcp import Client, MCPError, StdioServerParameters, stdio_client
from processes import python_path_env

pytestmark = pytest.mark.anyio


async def test_unknown_prompts_and_resources_answer_invalid_params_over_stdio(
    subprocess_env: dict[str, str], tmp_path: Path
) -> None:
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "server", "serve"], env=python_path_env(subprocess_env)
    )
    with (tmp_path / "stderr.log").open("w") as errlog:
        async with Client(stdio_client(params, errlog=errlog)) as client:
            with pytest.raises(MCPError) as prompt:
                await client.get_prompt("summarize")
            with pytest.raises(MCPError) as resource:
                await client.read_resource("session://sesn_nope")
            with pytest.raises(MCPError) as unknown:
                await client.read_resource("file:///etc/passwd")
    assert (prompt.value.error.code, resource.value.error.code, unknown.value.error.code) == (-32602, -32602, -32602)
    assert "no prompts" in prompt.value.error.message
    assert "sesn_nope" in resource.value.error.message
    assert "Traceback" not in (tmp_path / "stderr.log").read_text()
