"""`client.beta.vaults` and `.vaults.credentials` against the server: shapes, rules, and a token that goes into
the secret store and never comes out (the secrets audit over REST is in `test_vault_secrets.py`)."""

from __future__ import annotations

from collections.abc import Iterator

import anthropic
import pytest
from anthropic.types.beta import BetaManagedAgentsDeletedVault, BetaManagedAgentsVault
from anthropic.types.beta.vaults import BetaManagedAgentsCredential, BetaManagedAgentsDeletedCredential
from fake_sandboxes import FakeSandboxes
from rest_serving import RestServer, rest_server

from server.core.config import ServerConfig
from vault import MemoryStore

MCP_URL = "https://mcp.example.com/mcp"
TOKEN = "mcp-rest-token-5f1e2d3c4b5a69788"
NEW_TOKEN = "mcp-rest-token-rotated-0a9b8c7d6e"
UNKNOWN_VAULT = "vlt_000000000000000000000000"


@pytest.fixture
def secrets() -> MemoryStore:
    return MemoryStore()


@pytest.fixture
def served(config: ServerConfig, secrets: MemoryStore) -> Iterator[RestServer]:
    with rest_server(config, sandboxes=lambda _tg: FakeSandboxes(), secrets=secrets) as server:
        yield server


def bearer(token: str = TOKEN, url: str = MCP_URL) -> dict[str, str]:
    return {"type": "static_bearer", "mcp_server_url": url, "token": token}


def test_a_vault_lifecycle_through_the_sync_sdk(served: RestServer) -> None:
    client = served.client()
    raw = client.beta.vaults.with_raw_response.create(display_name="work", metadata={"team": "infra", "tier": "1"})
    assert set(BetaManagedAgentsVault.model_fields) <= set(raw.http_response.json())
    vault = raw.parse()
    assert vault.id.startswith("vlt_")
    assert (vault.type, vault.display_name, vault.archived_at) == ("vault", "work", None)
    assert client.beta.vaults.retrieve(vault.id) == vault

    updated = client.beta.vaults.update(vault.id, display_name="play", metadata={"team": None, "tier": "2"})
    assert (updated.display_name, updated.metadata) == ("play", {"tier": "2"})
    assert updated.updated_at >= vault.updated_at

    archived = client.beta.vaults.archive(vault.id)
    assert archived.archived_at is not None
    with pytest.raises(anthropic.ConflictError):
        client.beta.vaults.update(vault.id, display_name="late")
    assert list(client.beta.vaults.list()) == []
    assert [v.id for v in client.beta.vaults.list(include_archived=True)] == [vault.id]

    deleted = client.beta.vaults.with_raw_response.delete(vault.id)
    assert deleted.http_response.json() == {"id": vault.id, "type": "vault_deleted"}
    assert isinstance(deleted.parse(), BetaManagedAgentsDeletedVault)
    for call in (client.beta.vaults.retrieve, client.beta.vaults.archive, client.beta.vaults.delete):
        with pytest.raises(anthropic.NotFoundError):
            call(vault.id)


@pytest.mark.parametrize(
    "fields",
    [
        {"display_name": ""},
        {"display_name": "x" * 256},
        {"display_name": "ok", "metadata": {f"k{i}": "v" for i in range(17)}},
        {"display_name": "ok", "metadata": {"k": "v" * 513}},
        {"display_name": "ok", "extra_body": {"color": "blue"}},
    ],
)
def test_bad_vault_fields_are_refused(served: RestServer, fields: dict[str, object]) -> None:
    client = served.client()
    with pytest.raises(anthropic.BadRequestError):
        client.beta.vaults.create(**fields)  # type: ignore[arg-type]
    assert list(client.beta.vaults.list(include_archived=True)) == []


def test_vaults_paginate_with_limit_and_page(served: RestServer) -> None:
    client = served.client()
    made = [client.beta.vaults.create(display_name=f"v{i}").id for i in range(5)]
    first = client.beta.vaults.list(limit=2)
    assert [v.id for v in first.data] == made[:2]
    assert first.has_next_page()
    assert [v.id for v in client.beta.vaults.list(limit=2)] == made
    with pytest.raises(anthropic.BadRequestError):
        client.beta.vaults.list(limit=101)
    with pytest.raises(anthropic.BadRequestError):
        client.beta.vaults.list(page="vlt_notoneofours")


def test_a_static_bearer_goes_to_the_secret_store_and_is_never_shown(served: RestServer, secrets: MemoryStore) -> None:
    client = served.client()
    vault = client.beta.vaults.create(display_name="work")
    raw = client.beta.vaults.credentials.with_raw_response.create(
        vault.id, auth=bearer(), display_name="docs", metadata={"owner": "ops"}
    )
    body = raw.http_response.json()
    assert set(BetaManagedAgentsCredential.model_fields) <= set(body)
    assert body["auth"] == {"type": "static_bearer", "mcp_server_url": MCP_URL}
    assert TOKEN not in raw.http_response.text
    credential = raw.parse()
    assert (credential.type, credential.vault_id, credential.display_name) == ("vault_credential", vault.id, "docs")
    found = secrets.get(credential.id)
    assert found is not None
    assert found.reveal() == TOKEN

    assert client.beta.vaults.credentials.retrieve(credential.id, vault_id=vault.id) == credential
    assert [c.id for c in client.beta.vaults.credentials.list(vault.id)] == [credential.id]
    with pytest.raises(anthropic.ConflictError):
        client.beta.vaults.credentials.create(vault.id, auth=bearer(NEW_TOKEN, MCP_URL + "/"))

    updated = client.beta.vaults.credentials.update(
        credential.id, vault_id=vault.id, display_name=None, metadata={"owner": None, "env": "prod"}
    )
    assert (updated.display_name, updated.metadata) == (None, {"env": "prod"})
    client.beta.vaults.credentials.update(
        credential.id, vault_id=vault.id, auth={"type": "static_bearer", "token": NEW_TOKEN}
    )
    rotated = secrets.get(credential.id)
    assert rotated is not None
    assert rotated.reveal() == NEW_TOKEN
    with pytest.raises(anthropic.BadRequestError, match="cannot change"):
        client.beta.vaults.credentials.update(
            credential.id, vault_id=vault.id, auth={"type": "static_bearer", "mcp_server_url": "https://x.org/"}
        )


def test_archiving_a_credential_purges_its_secret_and_deleting_removes_it(
    served: RestServer, secrets: MemoryStore
) -> None:
    client = served.client()
    vault = client.beta.vaults.create(display_name="work")
    credential = client.beta.vaults.credentials.create(vault.id, auth=bearer())
    archived = client.beta.vaults.credentials.archive(credential.id, vault_id=vault.id)
    assert archived.archived_at is not None
    assert secrets.get(credential.id) is None
    with pytest.raises(anthropic.ConflictError):
        client.beta.vaults.credentials.update(credential.id, vault_id=vault.id, display_name="late")
    assert list(client.beta.vaults.credentials.list(vault.id)) == []
    assert [c.id for c in client.beta.vaults.credentials.list(vault.id, include_archived=True)] == [credential.id]
    again = client.beta.vaults.credentials.create(vault.id, auth=bearer(NEW_TOKEN))  # the URL is free again

    deleted = client.beta.vaults.credentials.with_raw_response.delete(again.id, vault_id=vault.id)
    assert deleted.http_response.json() == {"id": again.id, "type": "vault_credential_deleted"}
    assert isinstance(deleted.parse(), BetaManagedAgentsDeletedCredential)
    assert secrets.get(again.id) is None
    with pytest.raises(anthropic.NotFoundError):
        client.beta.vaults.credentials.retrieve(again.id, vault_id=vault.id)
    with pytest.raises(anthropic.NotFoundError):
        client.beta.vaults.credentials.list(UNKNOWN_VAULT)
    with pytest.raises(anthropic.NotFoundError):
        client.beta.vaults.credentials.create(UNKNOWN_VAULT, auth=bearer())


@pytest.mark.parametrize(
    ("auth", "words"),
    [
        ({"type": "mcp_oauth", "mcp_server_url": MCP_URL, "access_token": TOKEN}, "static_bearer"),
        ({"type": "environment_variable", "secret_name": "API_KEY", "secret_value": TOKEN}, "environment_variable"),
        ({"type": "static_bearer", "mcp_server_url": MCP_URL, "token": "sh0rt!"}, "shorter than"),
        ({"type": "static_bearer", "mcp_server_url": "not a url", "token": TOKEN}, "URL"),
        ({"type": "static_bearer", "mcp_server_url": "ftp://x.org/", "token": TOKEN}, "URL"),
        ({"type": "static_bearer", "token": TOKEN}, "mcp_server_url"),
        ({"type": "static_bearer", "mcp_server_url": MCP_URL, "token": TOKEN, "extra": TOKEN}, "extra"),
        ({"type": "basic", "token": TOKEN}, "type"),
    ],
)
def test_a_refused_credential_says_why_and_never_echoes_the_secret(
    served: RestServer, secrets: MemoryStore, auth: dict[str, str], words: str
) -> None:
    client = served.client()
    vault = client.beta.vaults.create(display_name="work")
    with pytest.raises(anthropic.BadRequestError) as refused:
        client.beta.vaults.credentials.create(vault.id, auth=auth)  # type: ignore[arg-type]
    assert words in str(refused.value)
    assert TOKEN not in refused.value.response.text
    assert "sh0rt!" not in refused.value.response.text
    assert list(client.beta.vaults.credentials.list(vault.id, include_archived=True)) == []


@pytest.mark.anyio
async def test_vaults_and_credentials_through_the_async_sdk(served: RestServer, secrets: MemoryStore) -> None:
    async with served.async_client() as client:
        vault = await client.beta.vaults.create(display_name="async")
        credentials = [
            await client.beta.vaults.credentials.create(vault.id, auth=bearer(url=f"https://m{i}.example.com/"))
            for i in range(3)
        ]
        first = await client.beta.vaults.credentials.list(vault.id, limit=2)
        assert first.has_next_page()
        seen = [c.id async for c in await client.beta.vaults.credentials.list(vault.id, limit=2)]
        assert seen == [c.id for c in credentials]

        archived = await client.beta.vaults.archive(vault.id)
        assert archived.archived_at is not None
        assert all(secrets.get(c.id) is None for c in credentials)
        with pytest.raises(anthropic.ConflictError):
            await client.beta.vaults.credentials.create(vault.id, auth=bearer(url="https://late.example.com/"))
        await client.beta.vaults.delete(vault.id)
        with pytest.raises(anthropic.NotFoundError):
            await client.beta.vaults.retrieve(vault.id)
