"""The README's `claude mcp add` line for the HTTP server, run as written by the real Claude Code CLI.

`claude mcp add` takes its options variadically (`-H/--header <header...>`, `-e/--env <env...>`): a header
placed before the name and URL swallows them. The README puts `--header` after the URL; this test runs that
very line (read from the README) against a server whose token was generated into a real keyring, and
`claude mcp list` connects to it. The CLI never reaches a model here: `mcp add/list/get` only talk to MCP.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import missing_part
from processes import http_server, python_path_env

pytestmark = [pytest.mark.claude_code, pytest.mark.keyring]

CLAUDE_CODE_VERSION = "2.1.197"
DEFAULT_CLAUDE = Path.home() / ".cache/managed-sessions-test/claude-code/node_modules/.bin/claude"
README = Path(__file__).parents[2] / "README.md"


@pytest.fixture
def claude() -> Path:
    configured = os.environ.get("CLAUDE_CODE_BIN")
    path = Path(configured) if configured else DEFAULT_CLAUDE
    if not path.exists() or shutil.which("node") is None:
        missing_part(
            "claude_code",
            f"no {path}; install it with `npm install --prefix {DEFAULT_CLAUDE.parents[2]} "
            f"@anthropic-ai/claude-code@{CLAUDE_CODE_VERSION}` or set CLAUDE_CODE_BIN",
        )
    return path


def readme_http_line() -> str:
    """The README's `claude mcp add` command for a running HTTP server (continuation lines joined)."""
    text = README.read_text()
    match = re.search(r"# or, against a running HTTP server:\n((?:.*\\\n)*.*)\n", text)
    assert match, "the README lost its `claude mcp add` line for the HTTP server"
    return match.group(1).replace("\\\n", " ")


def run(command: str, env: dict[str, str], claude: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """A shell line with `claude` meaning the pinned CLI, as a user would type it."""
    script = f'claude() {{ "{claude}" "$@"; }}\n{command}'
    return subprocess.run(
        ["bash", "-c", script], env=env, cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


@dataclass(frozen=True)
class Setup:
    server_env: dict[str, str]
    cli_env: dict[str, str]
    project: Path


@pytest.fixture
def setup(subprocess_env: dict[str, str], keyring_env: dict[str, str], tmp_path: Path) -> Setup:
    """A server environment with a real keyring (so `managed-sessions token show` answers, as for a user) and a
    Claude Code home of the test's own, with a project folder to run the CLI in."""
    home = tmp_path / "home"
    project = home / "project"
    project.mkdir(parents=True)
    env = python_path_env({**subprocess_env, **keyring_env})
    venv_bin = Path(__file__).parents[2] / ".venv" / "bin"
    env["PATH"] = f"{venv_bin}:{env['PATH']}"  # `managed-sessions token show` inside the README's line
    cli_env = {**env, "HOME": str(home), "DISABLE_AUTOUPDATER": "1", "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1"}
    return Setup(env, cli_env, project)


def test_the_readme_line_adds_a_server_claude_code_connects_to(claude: Path, setup: Setup, tmp_path: Path) -> None:
    with http_server(setup.server_env, tmp_path / "server.log") as (port, _):
        line = readme_http_line().replace("127.0.0.1:8765", f"127.0.0.1:{port}")
        added = run(line, setup.cli_env, claude, setup.project)
        assert added.returncode == 0, added.stderr + added.stdout

        listed = run("claude mcp list", setup.cli_env, claude, setup.project)
        assert re.search(
            rf"managed-sessions: http://127\.0\.0\.1:{port}/mcp \(HTTP\) - \S+ Connected", listed.stdout
        ), listed.stdout + listed.stderr

        # The same line with the header where the old README had it: the CLI takes the name and URL as headers.
        run("claude mcp remove managed-sessions", setup.cli_env, claude, setup.project)
        old = f'claude mcp add -t http -H "Authorization: Bearer x" managed-sessions http://127.0.0.1:{port}/mcp'
        misread = run(old, setup.cli_env, claude, setup.project)
        assert misread.returncode != 0
        assert "missing required argument 'name'" in misread.stderr + misread.stdout


def test_a_wrong_token_does_not_connect(claude: Path, setup: Setup, tmp_path: Path) -> None:
    with http_server(setup.server_env, tmp_path / "server.log") as (port, _):
        url = f"http://127.0.0.1:{port}/mcp"
        line = f'claude mcp add --transport http managed-sessions {url} --header "Authorization: Bearer wrong"'
        assert run(line, setup.cli_env, claude, setup.project).returncode == 0
        listed = run("claude mcp list", setup.cli_env, claude, setup.project)
        assert re.search(r"managed-sessions: .* - \S+ Failed to connect", listed.stdout), listed.stdout + listed.stderr
