"""The same scenario over every transport: in memory, a real stdio child, and real HTTP with its token."""

from __future__ import annotations

import sys
from pathlib import Path

import httpx2
import pytest
from mcp import Client, StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from processes import INITIALIZE, MCP_HEADERS, MCP_HTTP_TIMEOUT, http_server, python_path_env, run_command
from scenario import run_scenario

pytestmark = pytest.mark.anyio

TOKEN = "test-token-0123456789abcdef"


async def test_scenario_in_memory(client: Client) -> None:
    await run_scenario(client)


async def test_scenario_over_stdio(subprocess_env: dict[str, str], tmp_path: Path) -> None:
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "server", "serve"], env=python_path_env(subprocess_env)
    )
    with (tmp_path / "stderr.log").open("w") as errlog:
        async with Client(stdio_client(params, errlog=errlog)) as client:
            await run_scenario(client)
    # stdout carried only the protocol, so the client parsed every line; logs went to stderr.
    assert "data dir" in (tmp_path / "stderr.log").read_text()


async def test_scenario_over_http_with_the_token(subprocess_env: dict[str, str], tmp_path: Path) -> None:
    env = python_path_env({**subprocess_env, "MANAGED_SESSIONS_TOKEN": TOKEN})
    with http_server(env, tmp_path / "stderr.log") as (port, _):
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with (
            httpx2.AsyncClient(headers=headers, timeout=MCP_HTTP_TIMEOUT) as http,
            Client(streamable_http_client(f"http://127.0.0.1:{port}/mcp", http_client=http)) as client,
        ):
            await run_scenario(client)
    assert TOKEN not in (tmp_path / "stderr.log").read_text()


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong-token", f"Basic {TOKEN}", f"Bearer {TOKEN}x", f"bearer{TOKEN}"],
    ids=["missing", "wrong", "wrong-scheme", "longer", "malformed"],
)
async def test_http_refuses_requests_without_the_token_with_a_401_that_only_names_the_header(
    subprocess_env: dict[str, str], tmp_path: Path, authorization: str | None
) -> None:
    env = python_path_env({**subprocess_env, "MANAGED_SESSIONS_TOKEN": TOKEN})
    with http_server(env, tmp_path / "stderr.log") as (port, _):
        headers = dict(MCP_HEADERS)
        if authorization is not None:
            headers["Authorization"] = authorization
        async with httpx2.AsyncClient() as http:
            response = await http.post(f"http://127.0.0.1:{port}/mcp", json=INITIALIZE, headers=headers)
            health = await http.get(f"http://127.0.0.1:{port}/", headers=headers)
            rest = await http.get(f"http://127.0.0.1:{port}/v1/sessions", headers=headers)
    # The same answer whatever was wrong: which header to send, never which part failed or the token.
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.text == (
        "missing or wrong token: send 'Authorization: Bearer <token>' (or 'x-api-key: <token>'); "
        "'managed-sessions token show' on the server's host prints it\n"
    )
    assert health.status_code == 401
    assert health.text == response.text
    assert rest.status_code == 401
    assert rest.json()["error"] == {"type": "authentication_error", "message": response.text.strip()}
    assert TOKEN not in response.text + rest.text


async def test_http_with_the_token_but_a_foreign_host_header_is_refused(
    subprocess_env: dict[str, str], tmp_path: Path
) -> None:
    env = python_path_env({**subprocess_env, "MANAGED_SESSIONS_TOKEN": TOKEN})
    with http_server(env, tmp_path / "stderr.log") as (port, _):
        url = f"http://127.0.0.1:{port}/mcp"
        headers = {**MCP_HEADERS, "Authorization": f"Bearer {TOKEN}"}
        async with httpx2.AsyncClient() as http:
            ok = await http.post(url, json=INITIALIZE, headers=headers)
            rebound = await http.post(url, json=INITIALIZE, headers={**headers, "Host": "attacker.example:80"})
            bad_origin = await http.post(url, json=INITIALIZE, headers={**headers, "Origin": "http://attacker.example"})
    assert ok.status_code == 200
    assert rebound.status_code == 421
    assert bad_origin.status_code == 403


def test_http_refuses_a_non_loopback_bind_without_an_explicit_token(
    subprocess_env: dict[str, str], tmp_path: Path
) -> None:
    result = run_command(["serve", "--transport", "http", "--host", "0.0.0.0", "--port", "1"], subprocess_env)
    assert result.returncode == 1
    assert "MANAGED_SESSIONS_TOKEN" in result.stderr
    assert "not loopback" in result.stderr
