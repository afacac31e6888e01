"""Editing vaults and credentials (the REST API's update and archive), over an in-memory keyring."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from vault import KEYRING_SERVICE, ArchivedError, Secret, VaultError, Vaults

MCP_URL = "https://mcp.example.com/mcp"
TOKEN = "mcp-token-0123456789abcdef"
NEW_TOKEN = "mcp-token-rotated-9876543210"


def test_a_vault_is_renamed_and_its_metadata_patched(vaults: Vaults) -> None:
    vault = vaults.create_vault("work", {"team": "infra", "tier": "1"})
    assert vault.updated_at is None
    assert vaults.update_vault(vault.id) == vault  # nothing asked, nothing changes
    updated = vaults.update_vault(vault.id, display_name="play", metadata={"team": None, "tier": "2", "new": "x"})
    assert (updated.display_name, updated.metadata) == ("play", {"tier": "2", "new": "x"})
    assert updated.updated_at is not None
    assert vaults.get_vault("play") == updated
    vaults.create_vault("other")
    with pytest.raises(VaultError, match="already exists"):
        vaults.update_vault(vault.id, display_name="other")
    with pytest.raises(VaultError, match="at most 16 keys"):
        vaults.update_vault(vault.id, metadata={f"k{i}": "v" for i in range(17)})


def test_archiving_a_vault_purges_every_secret_and_makes_it_read_only(vaults: Vaults, memory_keyring: Any) -> None:
    vault = vaults.create_vault("work")
    credential = vaults.add_credential("work", "static_bearer", MCP_URL, secret=Secret("t", TOKEN))
    archived = vaults.archive_vault(vault.id)
    assert archived.archived_at is not None
    assert archived.credential_count == 0
    assert memory_keyring.entries == {}
    assert vaults.get_credential(vault.id, credential.id).archived_at == archived.archived_at
    assert vaults.bearer_for([vault.id], MCP_URL) is None
    assert vaults.archive_vault(vault.id) == archived  # twice is a no-op
    with pytest.raises(ArchivedError):
        vaults.update_vault(vault.id, display_name="late")
    with pytest.raises(ArchivedError):
        vaults.add_credential(vault.id, "static_bearer", "https://other.example.com/", secret=Secret("t", TOKEN))
    assert vaults.drift() == []
    with pytest.raises(ArchivedError, match="new session"):
        vaults.check_vault_ids([vault.id])


def test_a_credential_is_renamed_and_its_secret_replaced_in_the_keyring(
    vaults: Vaults, memory_keyring: Any, index_path: Path
) -> None:
    vault = vaults.create_vault("work")
    credential = vaults.add_credential("work", "static_bearer", MCP_URL, secret=Secret("t", TOKEN), metadata={"a": "1"})
    assert credential.metadata == {"a": "1"}
    renamed = vaults.update_credential(vault.id, credential.id, display_name="docs", metadata={"a": None, "b": "2"})
    assert (renamed.display_name, renamed.metadata, renamed.match) == ("docs", {"b": "2"}, MCP_URL)
    assert vaults.update_credential(vault.id, credential.id, display_name="").display_name is None

    found = vaults.bearer_for([vault.id], MCP_URL)
    assert found is not None
    assert found.reveal() == TOKEN
    vaults.update_credential(vault.id, credential.id, secret=Secret("t", NEW_TOKEN))
    assert memory_keyring.entries == {(KEYRING_SERVICE, credential.id): NEW_TOKEN}
    rotated = vaults.bearer_for([vault.id], MCP_URL)
    assert rotated is not None
    assert rotated.reveal() == NEW_TOKEN  # the cached old value is gone
    assert vaults.redactor.redact(f"x {NEW_TOKEN} y") != f"x {NEW_TOKEN} y"
    assert NEW_TOKEN not in index_path.read_text()
    with pytest.raises(VaultError, match="shorter than 8"):
        vaults.update_credential(vault.id, credential.id, secret=Secret("t", "short"))


def test_an_archived_credential_loses_its_secret_and_frees_its_url(vaults: Vaults, memory_keyring: Any) -> None:
    vault = vaults.create_vault("work")
    credential = vaults.add_credential("work", "static_bearer", MCP_URL, secret=Secret("t", TOKEN))
    assert vaults.bearer_for([vault.id], MCP_URL) is not None
    archived = vaults.archive_credential(vault.id, credential.id)
    assert archived.archived_at is not None
    assert memory_keyring.entries == {}
    assert vaults.bearer_for([vault.id], MCP_URL) is None
    assert vaults.get_vault(vault.id).credential_count == 0
    with pytest.raises(ArchivedError):
        vaults.update_credential(vault.id, credential.id, secret=Secret("t", NEW_TOKEN))
    assert memory_keyring.entries == {}
    again = vaults.add_credential("work", "static_bearer", MCP_URL, secret=Secret("t", NEW_TOKEN))
    found = vaults.bearer_for([vault.id], MCP_URL)
    assert found is not None
    assert (found.name, found.reveal()) == (again.id, NEW_TOKEN)


def test_a_command_sourced_secret_is_not_replaced_through_the_vault(vaults: Vaults) -> None:
    vault = vaults.create_vault("work")
    credential = vaults.add_credential("work", "static_bearer", MCP_URL, command="echo mcp-token-from-command")
    with pytest.raises(VaultError, match="command"):
        vaults.update_credential(vault.id, credential.id, secret=Secret("t", NEW_TOKEN))
