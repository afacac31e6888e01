"""The server as seen by a client nobody here wrote: the MCP Inspector CLI, talking stdio to a real server process.

Each Inspector call starts its own `python -m server serve`, so these tests also show that the data dir
outlives one server and is handed from one process to the next.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest
from conftest import missing_part
from serving import connected

from server.core.config import ServerConfig
from server.core.ids import is_id

pytestmark = pytest.mark.inspector

REPO_ROOT = Path(__file__).resolve().parents[2]
INSPECTOR_VERSION = "2.12.0"
DEFAULT_INSPECTOR = Path.home() / ".cache/managed-sessions-test/inspector/node_modules/.bin/mcp-inspector"
INSPECTOR_DEADLINE_S = 120.0
"""Node, the Inspector and a server start-up per call; slow CI machines need the room."""

EXIT_TOOL_ERROR = 5
"""The Inspector CLI's exit status for a tool result with isError (and for an unknown tool)."""

READ_ONLY_PREFIXES = ("get_", "list_", "read_")
DESTRUCTIVE_PREFIXES = ("archive_", "delete_")


@dataclass(frozen=True)
class Inspected:
    returncode: int
    stdout: str
    stderr: str

    def result(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.stdout)
        return parsed["result"]

    def error(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.stderr.strip().splitlines()[-1])
        return parsed["error"]


@pytest.fixture
def inspector() -> Path:
    configured = os.environ.get("MCP_INSPECTOR_BIN")
    path = Path(configured) if configured else DEFAULT_INSPECTOR
    if not path.is_file():
        missing_part(
            "inspector",
            f"no {path}; install it with `npm install --prefix {DEFAULT_INSPECTOR.parents[2]} "
            f"@modelcontextprotocol/inspector@{INSPECTOR_VERSION}` or set MCP_INSPECTOR_BIN",
        )
    if shutil.which("node") is None:
        missing_part("inspector", "node is not on PATH")
    return path


@pytest.fixture
def inspect(inspector: Path, subprocess_env: dict[str, str], tmp_path: Path) -> Callable[..., Inspected]:
    """Runs one Inspector CLI command against a fresh `python -m server serve` on the test's data dir."""
    home = tmp_path / "inspector-home"  # the Inspector keeps its own state under $HOME
    home.mkdir()
    server_env = [f"{key}={subprocess_env[key]}" for key in ("MANAGED_SESSIONS_DATA_DIR", "MANAGED_SESSIONS_MODEL")]

    def run(*method: str) -> Inspected:
        command = [str(inspector), "--cli", "--format", "json", "-q", "--cwd", str(REPO_ROOT)]
        for assignment in [*server_env, f"PYTHONPATH={REPO_ROOT}"]:
            command += ["-e", assignment]
        command += [sys.executable, "-m", "server", "serve", *method]
        done = subprocess.run(
            command,
            env={**subprocess_env, "HOME": str(home)},
            capture_output=True,
            text=True,
            timeout=INSPECTOR_DEADLINE_S,
        )
        return Inspected(done.returncode, done.stdout, done.stderr)

    return run


def call(inspect: Callable[..., Inspected], tool: str, arguments: dict[str, Any] | None = None) -> Inspected:
    args = ["--tool-args-json", json.dumps(arguments)] if arguments else []
    return inspect("--method", "tools/call", "--tool-name", tool, *args)


def test_the_inspector_lists_every_tool_with_input_and_output_schemas(
    inspect: Callable[..., Inspected], config: ServerConfig
) -> None:
    listed = inspect("--method", "tools/list")

    assert listed.returncode == 0, listed.stderr
    tools = {tool["name"]: tool for tool in listed.result()["tools"]}
    # Every tool the server registers, so a new tool is covered here without editing this test.
    assert set(tools) == anyio.run(registered_tool_names, config)
    assert {"create_session", "send_message", "get_events", "read_output_file", "delete_credential"} <= set(tools)
    for name, tool in tools.items():
        assert tool["inputSchema"]["type"] == "object", name
        assert tool["outputSchema"]["type"] == "object", name
        assert tool["description"], name
        assert tool["annotations"]["readOnlyHint"] is name.startswith(READ_ONLY_PREFIXES), name
        assert tool["annotations"]["destructiveHint"] is name.startswith(DESTRUCTIVE_PREFIXES), name
    assert "session_id" in tools["get_session"]["inputSchema"]["required"]


async def registered_tool_names(config: ServerConfig) -> set[str]:
    """The tools the server has, asked in process (the Inspector's view is checked against this)."""
    async with connected(config) as client:
        return {tool.name for tool in (await client.list_tools()).tools}


def test_the_inspector_creates_an_environment_that_the_next_server_reads_back(
    inspect: Callable[..., Inspected],
) -> None:
    created = call(inspect, "create_environment", {"name": "insp"})

    assert created.returncode == 0, created.stderr
    environment = created.result()["structuredContent"]
    assert created.result()["isError"] is False
    assert is_id(environment["id"], "env")
    assert (environment["name"], environment["archived_at"]) == ("insp", None)
    assert environment["id"] in created.result()["content"][0]["text"]

    fetched = call(inspect, "get_environment", {"environment_id": environment["id"]})
    sessions = call(inspect, "list_sessions")

    assert fetched.returncode == 0, fetched.stderr
    assert fetched.result()["structuredContent"] == environment
    assert sessions.returncode == 0, sessions.stderr
    assert sessions.result()["structuredContent"] == {"sessions": [], "next_cursor": None}


def test_a_tool_error_makes_the_inspector_exit_with_status_5_and_carries_the_message(
    inspect: Callable[..., Inspected],
) -> None:
    unknown = "sesn_01JD7Y3Q4K2W8T6X0V5N9R1M3P"

    failed = call(inspect, "get_session", {"session_id": unknown})

    assert failed.returncode == EXIT_TOOL_ERROR, failed.stderr
    assert failed.result()["isError"] is True
    assert unknown in failed.result()["content"][0]["text"]
    assert "list_sessions" in failed.result()["content"][0]["text"]  # the message says what to do next
    assert failed.error()["code"] == "tool_is_error"


def test_an_unknown_tool_makes_the_inspector_exit_with_status_5(inspect: Callable[..., Inspected]) -> None:
    failed = call(inspect, "no_such_tool")

    assert failed.returncode == EXIT_TOOL_ERROR, failed.stderr
    assert failed.error()["code"] == "tool_not_found"
