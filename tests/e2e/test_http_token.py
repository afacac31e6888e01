"""The HTTP token when MANAGED_SESSIONS_TOKEN is unset: generated once, kept in a real keyring."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx2
import pytest
from processes import INITIALIZE, MCP_HEADERS, http_server, python_path_env, run_command

pytestmark = [pytest.mark.keyring, pytest.mark.anyio]


def token_from(stderr: str) -> str:
    lines = stderr.splitlines()
    marker = next(i for i, line in enumerate(lines) if "generated an HTTP bearer token" in line)
    return lines[marker + 1].strip()


async def initialize(port: int, token: str) -> int:
    async with httpx2.AsyncClient() as http:
        response = await http.post(
            f"http://127.0.0.1:{port}/mcp", json=INITIALIZE, headers={**MCP_HEADERS, "Authorization": f"Bearer {token}"}
        )
    return response.status_code


async def test_a_generated_token_is_printed_once_kept_in_the_keyring_and_reused(
    subprocess_env: dict[str, str], keyring_env: dict[str, str], tmp_path: Path
) -> None:
    env = python_path_env({**subprocess_env, **keyring_env})
    with http_server(env, tmp_path / "first.log") as (port, _):
        first_log = (tmp_path / "first.log").read_text()
        token = token_from(first_log)
        assert len(token) >= 40
        assert await initialize(port, token) == 200

    with http_server(env, tmp_path / "second.log") as (port, _):
        assert token not in (tmp_path / "second.log").read_text()  # printed once only
        assert await initialize(port, token) == 200

    shown = subprocess.run(
        [sys.executable, "-m", "server", "token", "show"], env=env, capture_output=True, text=True, check=True
    )
    assert shown.stdout.strip() == token
    # The keyring file holds it encrypted: the token's text is not in it.
    keyrings = list((Path(keyring_env["XDG_DATA_HOME"]) / "keyrings").glob("*.keyring"))
    assert keyrings
    assert all(token.encode() not in path.read_bytes() for path in keyrings)
    assert all(
        token.encode() not in path.read_bytes()
        for path in Path(subprocess_env["MANAGED_SESSIONS_DATA_DIR"]).rglob("*")
        if path.is_file()
    )


async def test_without_a_keyring_or_token_the_server_says_how_to_fix_it(
    subprocess_env: dict[str, str], tmp_path: Path
) -> None:
    env = python_path_env(
        {
            **subprocess_env,
            "DBUS_SESSION_BUS_ADDRESS": "unix:path=/nonexistent",
            "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring",
        }
    )
    result = run_command(["serve", "--transport", "http", "--port", "1"], env)
    assert result.returncode == 1
    assert "MANAGED_SESSIONS_TOKEN" in result.stderr
    assert "keyring" in result.stderr


async def test_token_rotate_keeps_a_new_token_and_a_restarted_server_refuses_the_old_one(
    subprocess_env: dict[str, str], keyring_env: dict[str, str], tmp_path: Path
) -> None:
    env = python_path_env({**subprocess_env, **keyring_env})
    with http_server(env, tmp_path / "first.log") as (port, _):
        old = token_from((tmp_path / "first.log").read_text())
        assert await initialize(port, old) == 200

    rotated = run_command(["token", "rotate"], env)
    assert rotated.returncode == 0, rotated.stderr
    new = rotated.stdout.strip()
    assert len(new) >= 40
    assert new != old
    assert "restart the HTTP server" in rotated.stderr
    shown = run_command(["token", "show"], env)
    assert shown.stdout.strip() == new  # the keyring holds the new token

    with http_server(env, tmp_path / "second.log") as (port, _):
        assert "generated an HTTP bearer token" not in (tmp_path / "second.log").read_text()
        assert await initialize(port, old) == 401
        assert await initialize(port, new) == 200
    assert new not in (tmp_path / "second.log").read_text()
