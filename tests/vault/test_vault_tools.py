"""The vault's MCP tools over the in-memory client: metadata in, metadata out, never a secret."""

from __future__ import annotations

from typing import Any

import pytest
from mcp import Client
from scenario import call_error, call_ok

from server.core.config import ServerConfig
from vault import KEYRING_SERVICE, Secret, Vaults

pytestmark = pytest.mark.anyio

TOKEN = "ghp_toolTestSecret_55aa77bb"
BEARER = "mcp_toolTestBearer_66cc88dd"


async def test_vaults_and_their_credentials_through_the_tools(
    client: Client, config: ServerConfig, memory_keyring: Any
) -> None:
    created = await call_ok(client, "create_vault", {"display_name": "team", "metadata": {"owner": "ops"}})
    assert created["id"].startswith("vlt_")
    assert (created["credential_count"], created["metadata"]) == (0, {"owner": "ops"})
    assert "already" in await call_error(client, "create_vault", {"display_name": "team"})

    cli = Vaults(config.vault_index_path)  # what `managed-sessions vault add` does, from another process
    git = cli.add_credential("team", "github_token", "https://GitHub.com/", secret=Secret("t", TOKEN))
    mcp = cli.add_credential(created["id"], "static_bearer", "https://mcp.example.com/mcp/", secret=Secret("b", BEARER))

    assert [v["credential_count"] for v in (await call_ok(client, "list_vaults", {}))["vaults"]] == [2]
    assert (await call_ok(client, "get_vault", {"vault_id": "team"}))["id"] == created["id"]
    listed = await client.call_tool("list_credentials", {"vault_id": created["id"]})
    assert listed.structured_content is not None
    credentials = {c["id"]: c for c in listed.structured_content["credentials"]}
    assert credentials[git.id]["type"] == "github_token"
    assert credentials[git.id]["match"] == "github.com"
    assert credentials[mcp.id]["match"] == "https://mcp.example.com/mcp"
    assert credentials[mcp.id]["source"] == "keyring"
    assert TOKEN not in listed.model_dump_json()
    assert BEARER not in listed.model_dump_json()

    session = await call_ok(client, "create_session", {"vault_ids": [created["id"]]})
    assert session["vault_ids"] == [created["id"]]

    deleted = await call_ok(client, "delete_credential", {"vault_id": "team", "credential_id": git.id})
    assert deleted == {**deleted, "id": git.id, "deleted": True}
    assert (KEYRING_SERVICE, git.id) not in memory_keyring.entries
    assert "no credential" in await call_error(
        client, "delete_credential", {"vault_id": "team", "credential_id": git.id}
    )

    gone = await call_ok(client, "delete_vault", {"vault_id": created["id"]})
    assert gone["credentials_removed"] == 1
    assert (KEYRING_SERVICE, mcp.id) not in memory_keyring.entries
    assert (await call_ok(client, "list_vaults", {}))["vaults"] == []
    assert "unknown vault id" in await call_error(client, "create_session", {"vault_ids": [created["id"]]})
