"""The vault against a real SecretService (gnome-keyring on a private D-Bus): where the secrets really end up."""

from __future__ import annotations

from pathlib import Path

import keyring
import pytest

from vault import KEYRING_SERVICE, KeyringStore, Secret, VaultError, Vaults, describe_backend

pytestmark = pytest.mark.keyring

TOKEN = "ghp_RealKeyringRoundTrip0123456789"
BEARER = "bearer-RealKeyring-abcdefghijklmnop"


def files_under(path: Path) -> list[Path]:
    return [p for p in path.rglob("*") if p.is_file()]


def test_secrets_round_trip_through_secret_service_and_are_stored_nowhere_else(
    real_keyring: dict[str, str], tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    index_path = data_dir / "vault" / "index.json"
    assert describe_backend().secure
    cli = Vaults(index_path)
    vault = cli.create_vault("work")
    github = cli.add_credential("work", "github_token", "github.com", secret=Secret("t", TOKEN))
    cli.add_credential("work", "static_bearer", "https://mcp.example.com/mcp", secret=Secret("t", BEARER))
    assert keyring.get_password(KEYRING_SERVICE, github.id) == TOKEN

    server = Vaults(index_path)
    for _ in range(3):
        found = server.git_token_for([vault.id], "https://github.com/owner/private.git")
        assert found is not None
        assert found.reveal() == TOKEN
    assert server.keyring_reads == 1

    keyrings = list((Path(real_keyring["XDG_DATA_HOME"]) / "keyrings").glob("*.keyring"))
    assert keyrings
    for path in [*files_under(data_dir), *keyrings]:
        content = path.read_bytes()
        assert TOKEN.encode() not in content, path
        assert BEARER.encode() not in content, path


def test_deleting_an_entry_behind_the_vaults_back_is_drift(real_keyring: dict[str, str], tmp_path: Path) -> None:
    index_path = tmp_path / "vault" / "index.json"
    vaults = Vaults(index_path)
    vault = vaults.create_vault("work")
    kept = vaults.add_credential("work", "github_token", "github.com", secret=Secret("t", TOKEN))
    gone = vaults.add_credential("work", "static_bearer", "https://mcp.example.com/mcp", secret=Secret("t", BEARER))
    assert vaults.drift() == []
    keyring.delete_password(KEYRING_SERVICE, gone.id)
    assert vaults.drift() == [gone]
    with pytest.raises(VaultError, match="no secret in the keyring"):
        Vaults(index_path).bearer_for([vault.id], "https://mcp.example.com/mcp")
    vaults.remove_credential("work", gone.id)
    assert vaults.drift() == []
    assert [c.id for c in vaults.list_credentials("work")] == [kept.id]


def test_the_http_token_shares_the_service_and_survives_vault_deletion(
    real_keyring: dict[str, str], tmp_path: Path
) -> None:
    store = KeyringStore(KEYRING_SERVICE)
    store.set(Secret("http-token", "http-token-value-0123456789"))
    vaults = Vaults(tmp_path / "vault" / "index.json")
    vaults.create_vault("work")
    credential = vaults.add_credential("work", "github_token", "github.com", secret=Secret("t", TOKEN))
    vaults.delete_vault("work")
    assert keyring.get_password(KEYRING_SERVICE, credential.id) is None
    kept = store.get("http-token")
    assert kept is not None
    assert kept.reveal() == "http-token-value-0123456789"
