"""`MANAGED_SESSIONS_ALLOWED_HOSTS`: the HTTP transport's DNS-rebinding check accepts the Host (and Origin) values
listed there besides loopback, and still refuses any other. A real server child process over real HTTP."""

from __future__ import annotations

from pathlib import Path

import httpx2
import pytest
from processes import INITIALIZE, MCP_HEADERS, http_server, python_path_env

pytestmark = pytest.mark.anyio

TOKEN = "test-token-allowed-hosts-4b7d9e21"


async def test_hosts_in_managed_sessions_allowed_hosts_are_accepted_and_others_refused(
    subprocess_env: dict[str, str], tmp_path: Path
) -> None:
    env = python_path_env(
        {**subprocess_env, "MANAGED_SESSIONS_TOKEN": TOKEN, "MANAGED_SESSIONS_ALLOWED_HOSTS": "ms.internal, 10.0.0.5"}
    )
    with http_server(env, tmp_path / "stderr.log") as (port, _):
        url = f"http://127.0.0.1:{port}/mcp"  # the connection goes to loopback; only the Host header differs
        headers = {**MCP_HEADERS, "Authorization": f"Bearer {TOKEN}"}

        async def status(**extra: str) -> int:
            async with httpx2.AsyncClient() as http:
                return (await http.post(url, json=INITIALIZE, headers={**headers, **extra})).status_code

        assert await status(Host=f"ms.internal:{port}") == 200
        assert await status(Host="ms.internal") == 200
        assert await status(Host=f"10.0.0.5:{port}") == 200
        assert await status(Host=f"ms.internal:{port}", Origin=f"http://ms.internal:{port}") == 200
        assert await status(Host=f"other.internal:{port}") == 421
        assert await status(Host=f"ms.internal.attacker.example:{port}") == 421
        assert await status(Host=f"ms.internal:{port}", Origin="http://other.internal") == 403
