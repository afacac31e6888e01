"""Vaults and credentials over an in-memory keyring: the model, the limits, resolving and caching."""

from __future__ import annotations

import errno
import re
from pathlib import Path
from typing import Any

import pytest

from vault import (
    KEYRING_SERVICE,
    CredentialConflictError,
    CredentialNotFoundError,
    Secret,
    VaultError,
    VaultNotFoundError,
    Vaults,
)

MCP_URL = "https://mcp.example.com/mcp"
TOKEN = "mcp-token-0123456789abcdef"
GH_TOKEN = "ghp_0123456789abcdefghij"


def test_a_vault_is_created_listed_found_by_id_or_name_and_deleted(vaults: Vaults) -> None:
    info = vaults.create_vault("work", {"team": "infra"})
    assert re.fullmatch(r"vlt_[0-9a-f]{24}", info.id)
    assert (info.display_name, info.metadata, info.credential_count) == ("work", {"team": "infra"}, 0)
    assert info.created_at.tzinfo is not None
    assert vaults.get_vault(info.id) == info
    assert vaults.get_vault("work") == info
    assert vaults.list_vaults() == [info]
    vaults.delete_vault("work")
    assert vaults.list_vaults() == []
    with pytest.raises(VaultNotFoundError, match="vault list"):
        vaults.get_vault(info.id)


@pytest.mark.parametrize("name", ["", " ", "x" * 256, "tab\there", "vlt_0123456789abcdef01234567"])
def test_bad_display_names_are_refused(vaults: Vaults, name: str) -> None:
    with pytest.raises(VaultError):
        vaults.create_vault(name)


def test_display_names_are_unique(vaults: Vaults) -> None:
    vaults.create_vault("work")
    with pytest.raises(VaultError, match="already exists"):
        vaults.create_vault("work")


def test_metadata_is_limited_like_the_hosted_api(vaults: Vaults) -> None:
    with pytest.raises(VaultError, match="at most 16 keys"):
        vaults.create_vault("a", {f"k{i}": "v" for i in range(17)})
    with pytest.raises(VaultError, match="values at most 512"):
        vaults.create_vault("b", {"k": "v" * 513})


def test_a_secret_goes_to_the_keyring_under_the_credential_id_and_never_into_the_index(
    vaults: Vaults, memory_keyring: Any, index_path: Path
) -> None:
    vault = vaults.create_vault("work")
    credential = vaults.add_credential(
        "work", "static_bearer", "HTTPS://MCP.example.com:443/mcp/", secret=Secret("t", TOKEN), display_name="mcp"
    )
    assert re.fullmatch(r"cred_[0-9a-f]{24}", credential.id)
    assert (credential.vault_id, credential.match, credential.source) == (vault.id, MCP_URL, "keyring")
    assert memory_keyring.entries == {(KEYRING_SERVICE, credential.id): TOKEN}
    assert TOKEN not in index_path.read_text()
    assert credential.id in index_path.read_text()
    assert vaults.get_vault("work").credential_count == 1
    assert vaults.list_credentials(vault.id) == [credential]


def test_listing_credentials_never_reads_the_keyring(vaults: Vaults, memory_keyring: Any) -> None:
    vaults.create_vault("work")
    vaults.add_credential("work", "static_bearer", MCP_URL, secret=Secret("t", TOKEN))
    reads = memory_keyring.reads
    vaults.list_credentials("work")
    vaults.list_vaults()
    vaults.get_vault("work")
    assert memory_keyring.reads == reads


def test_one_credential_per_type_and_match_and_the_conflict_names_the_fix(vaults: Vaults) -> None:
    vault = vaults.create_vault("work")
    first = vaults.add_credential("work", "static_bearer", MCP_URL, secret=Secret("t", TOKEN))
    with pytest.raises(CredentialConflictError) as raised:
        vaults.add_credential("work", "static_bearer", MCP_URL + "/", secret=Secret("t", TOKEN + "x"))
    assert first.id in str(raised.value)
    assert f"managed-sessions vault remove {vault.id} {first.id}" in str(raised.value)
    # Another type with the same match text, or another vault, is fine.
    vaults.add_credential("work", "github_token", "mcp.example.com", secret=Secret("t", GH_TOKEN))
    vaults.create_vault("other")
    vaults.add_credential("other", "static_bearer", MCP_URL, secret=Secret("t", TOKEN))


def test_a_vault_holds_at_most_twenty_credentials(vaults: Vaults, memory_keyring: Any) -> None:
    vaults.create_vault("work")
    for i in range(20):
        vaults.add_credential("work", "static_bearer", f"https://mcp{i}.example.com/", secret=Secret("t", TOKEN))
    with pytest.raises(VaultError, match="already holds 20"):
        vaults.add_credential("work", "static_bearer", "https://mcp20.example.com/", secret=Secret("t", TOKEN))
    assert len(memory_keyring.entries) == 20  # the refused one wrote nothing


def test_a_secret_shorter_than_eight_characters_is_refused(vaults: Vaults, memory_keyring: Any) -> None:
    vaults.create_vault("work")
    with pytest.raises(VaultError, match="shorter than 8"):
        vaults.add_credential("work", "static_bearer", MCP_URL, secret=Secret("t", "short"))
    assert memory_keyring.entries == {}
    assert vaults.list_credentials("work") == []


def test_exactly_one_of_secret_or_command(vaults: Vaults) -> None:
    vaults.create_vault("work")
    with pytest.raises(VaultError, match="exactly one"):
        vaults.add_credential("work", "static_bearer", MCP_URL)
    with pytest.raises(VaultError, match="exactly one"):
        vaults.add_credential("work", "static_bearer", MCP_URL, secret=Secret("t", TOKEN), command="echo x")


def test_an_unknown_type_or_bad_match_is_refused(vaults: Vaults) -> None:
    vaults.create_vault("work")
    with pytest.raises(VaultError, match="unknown credential type"):
        vaults.add_credential("work", "mcp_oauth", MCP_URL, secret=Secret("t", TOKEN))  # type: ignore[arg-type]
    with pytest.raises(VaultError, match="user name or password"):
        vaults.add_credential("work", "static_bearer", "https://u:p@x.com/", secret=Secret("t", TOKEN))


def test_removing_a_credential_deletes_its_keyring_entry(vaults: Vaults, memory_keyring: Any) -> None:
    vault = vaults.create_vault("work")
    credential = vaults.add_credential("work", "static_bearer", MCP_URL, secret=Secret("t", TOKEN))
    with pytest.raises(CredentialNotFoundError):
        vaults.remove_credential("work", "cred_000000000000000000000000")
    vaults.remove_credential(vault.id, credential.id)
    assert memory_keyring.entries == {}
    assert vaults.list_credentials("work") == []
    assert vaults.bearer_for([vault.id], MCP_URL) is None


def test_deleting_a_vault_deletes_every_keyring_entry_of_it(vaults: Vaults, memory_keyring: Any) -> None:
    vaults.create_vault("work")
    keep = vaults.create_vault("keep")
    vaults.add_credential("work", "static_bearer", MCP_URL, secret=Secret("t", TOKEN))
    vaults.add_credential("work", "github_token", "github.com", secret=Secret("t", GH_TOKEN))
    kept = vaults.add_credential("keep", "github_token", "github.com", secret=Secret("t", GH_TOKEN))
    vaults.delete_vault("work")
    assert list(memory_keyring.entries) == [(KEYRING_SERVICE, kept.id)]
    assert vaults.list_vaults()[0].id == keep.id


def test_the_first_vault_in_the_given_order_wins(vaults: Vaults) -> None:
    a, b = vaults.create_vault("a"), vaults.create_vault("b")
    vaults.add_credential("a", "github_token", "github.com", secret=Secret("t", "token-of-vault-a"))
    vaults.add_credential("b", "github_token", "https://github.com", secret=Secret("t", "token-of-vault-b"))
    found_ab = vaults.git_token_for([a.id, b.id], "https://github.com/owner/repo.git")
    found_ba = vaults.git_token_for([b.id, a.id], "GITHUB.COM")
    assert found_ab is not None
    assert found_ab.reveal() == "token-of-vault-a"
    assert found_ba is not None
    assert found_ba.reveal() == "token-of-vault-b"
    assert vaults.git_token_for([a.id], "ghe.example.com") is None
    assert vaults.bearer_for([a.id, b.id], MCP_URL) is None


def test_matching_is_exact_after_normalization(vaults: Vaults) -> None:
    vault = vaults.create_vault("work")
    vaults.add_credential("work", "static_bearer", MCP_URL, secret=Secret("t", TOKEN))
    found = vaults.bearer_for([vault.id], "https://MCP.EXAMPLE.com:443/mcp/")
    assert found is not None
    assert found.reveal() == TOKEN
    assert vaults.bearer_for([vault.id], "https://mcp.example.com/mcp/other") is None
    assert vaults.bearer_for([vault.id], "http://mcp.example.com/mcp") is None


def test_unknown_vault_ids_are_refused(vaults: Vaults) -> None:
    vault = vaults.create_vault("work")
    vaults.check_vault_ids([vault.id])
    with pytest.raises(VaultNotFoundError, match="vlt_000000000000000000000000"):
        vaults.check_vault_ids([vault.id, "vlt_000000000000000000000000"])
    with pytest.raises(VaultNotFoundError):
        vaults.bearer_for(["vlt_000000000000000000000000"], MCP_URL)
    vaults.delete_vault(vault.id)
    with pytest.raises(VaultNotFoundError):
        vaults.git_token_for([vault.id], "github.com")


def test_a_resolved_secret_is_read_once_then_served_from_memory_and_registered_for_redaction(
    memory_keyring: Any, index_path: Path
) -> None:
    Vaults(index_path).create_vault("work")
    Vaults(index_path).add_credential("work", "static_bearer", MCP_URL, secret=Secret("t", TOKEN))
    server = Vaults(index_path)  # a fresh process's view: nothing cached yet
    vault_id = server.get_vault("work").id
    assert not server.redactor
    for _ in range(5):
        found = server.bearer_for([vault_id], MCP_URL)
        assert found is not None
        assert found.reveal() == TOKEN
    assert server.keyring_reads == 1
    assert memory_keyring.reads == 1
    assert server.redactor.redact(f"echo {TOKEN}") == "echo [REDACTED]"


def test_a_credential_removed_by_another_process_is_dropped_from_the_cache(
    memory_keyring: Any, index_path: Path
) -> None:
    cli = Vaults(index_path)
    vault = cli.create_vault("work")
    credential = cli.add_credential("work", "static_bearer", MCP_URL, secret=Secret("t", TOKEN))
    server = Vaults(index_path)
    assert server.bearer_for([vault.id], MCP_URL) is not None
    cli.remove_credential("work", credential.id)
    assert server.bearer_for([vault.id], MCP_URL) is None
    cli.add_credential("work", "static_bearer", MCP_URL, secret=Secret("t", TOKEN + "-new"))
    found = server.bearer_for([vault.id], MCP_URL)
    assert found is not None
    assert found.reveal() == TOKEN + "-new"
    assert server.keyring_reads == 2


def test_drift_lists_credentials_whose_secret_vanished(vaults: Vaults, memory_keyring: Any) -> None:
    vault = vaults.create_vault("work")
    gone = vaults.add_credential("work", "static_bearer", MCP_URL, secret=Secret("t", TOKEN))
    vaults.add_credential("work", "github_token", "github.com", secret=Secret("t", GH_TOKEN))
    vaults.add_credential("work", "github_token", "ghe.example.com", command="echo dynamic-token-value")
    assert vaults.drift() == []
    del memory_keyring.entries[(KEYRING_SERVICE, gone.id)]
    assert vaults.drift() == [gone]
    fresh = Vaults(vaults._index.path)
    with pytest.raises(VaultError, match=f"has no secret in the keyring.*vault remove {vault.id} {gone.id}"):
        fresh.bearer_for([vault.id], MCP_URL)
    vaults.remove_credential("work", gone.id)  # removing a drifted credential works
    assert vaults.drift() == []


def test_a_failed_index_write_takes_the_keyring_entry_back(
    vaults: Vaults, memory_keyring: Any, index_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    vaults.create_vault("work")

    def disk_full(src: str, dst: str) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("vault.index.os.replace", disk_full)
    with pytest.raises(VaultError, match=r"cannot write the vault index.*No space left"):
        vaults.add_credential("work", "static_bearer", MCP_URL, secret=Secret("t", TOKEN))
    monkeypatch.undo()
    assert memory_keyring.entries == {}
    assert vaults.list_credentials("work") == []
    assert sorted(p.name for p in index_path.parent.iterdir()) == ["index.json", "index.json.lock"]  # no temp left
