"""`managed-sessions token rotate`: a new token is kept in the keyring, and an HTTP server started with it takes the
new token and refuses the old one. Real child processes, a real SecretService keyring, real HTTP."""

from __future__ import annotations

from pathlib import Path

import httpx2
import pytest
from processes import INITIALIZE, MCP_HEADERS, http_server, python_path_env, run_command

pytestmark = [pytest.mark.keyring, pytest.mark.anyio]


def generated_token(stderr: str) -> str:
    lines = stderr.splitlines()
    marker = next(i for i, line in enumerate(lines) if "generated an HTTP bearer token" in line)
    return lines[marker + 1].strip()


async def initialize(port: int, token: str) -> int:
    async with httpx2.AsyncClient() as http:
        response = await http.post(
            f"http://127.0.0.1:{port}/mcp", json=INITIALIZE, headers={**MCP_HEADERS, "Authorization": f"Bearer {token}"}
        )
    return response.status_code


async def test_token_rotate_keeps_a_new_token_and_the_old_one_stops_working(
    subprocess_env: dict[str, str], keyring_env: dict[str, str], tmp_path: Path
) -> None:
    env = python_path_env({**subprocess_env, **keyring_env})
    with http_server(env, tmp_path / "first.log") as (port, _):
        old = generated_token((tmp_path / "first.log").read_text())
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
