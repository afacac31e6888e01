"""A keyring backend that would keep secrets in plain text, or not at all, is refused unless the user opts in."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import keyring
import keyring.backend
import keyring.backends.fail
import keyring.backends.null
import pytest

from vault import InsecureKeyringError, Secret, Vaults, describe_backend

TOKEN = "bearer-token-0123456789"
MCP_URL = "https://mcp.example.com/mcp"


@pytest.fixture(params=[keyring.backends.null.Keyring, keyring.backends.fail.Keyring], ids=["null", "fail"])
def insecure_backend(request: pytest.FixtureRequest) -> Iterator[keyring.backend.KeyringBackend]:
    previous = keyring.get_keyring()
    backend = request.param()
    keyring.set_keyring(backend)
    yield backend
    keyring.set_keyring(previous)


def test_the_backends_are_described_as_not_secure(insecure_backend: keyring.backend.KeyringBackend) -> None:
    info = describe_backend()
    assert not info.secure
    assert info.name == f"{type(insecure_backend).__module__}.{type(insecure_backend).__name__}"


def test_adding_a_secret_is_refused_with_the_backend_named_and_both_fixes(
    insecure_backend: keyring.backend.KeyringBackend, index_path: Path
) -> None:
    vaults = Vaults(index_path)
    vaults.create_vault("work")
    with pytest.raises(InsecureKeyringError) as raised:
        vaults.add_credential("work", "static_bearer", MCP_URL, secret=Secret("t", TOKEN))
    message = str(raised.value)
    assert type(insecure_backend).__module__ in message
    assert "SecretService" in message
    assert "MANAGED_SESSIONS_VAULT_ALLOW_INSECURE_KEYRING=1" in message
    assert vaults.list_credentials("work") == []


def test_metadata_operations_and_command_secrets_still_work(
    insecure_backend: keyring.backend.KeyringBackend, index_path: Path, tmp_path: Path
) -> None:
    vaults = Vaults(index_path)
    vault = vaults.create_vault("work")
    (tmp_path / "t").write_text(TOKEN)
    vaults.add_credential("work", "github_token", "github.com", command=f"cat {tmp_path / 't'}")
    assert vaults.get_vault("work").credential_count == 1
    assert [v.id for v in vaults.list_vaults()] == [vault.id]
    assert vaults.drift() == []  # no keyring-sourced credential, so nothing to read
    found = vaults.git_token_for([vault.id], "github.com")
    assert found is not None
    assert found.reveal() == TOKEN


def test_reading_a_keyring_secret_is_refused_too(memory_keyring: object, index_path: Path) -> None:
    """A credential added under a secure backend is not read back through an insecure one."""
    vaults = Vaults(index_path)
    vault = vaults.create_vault("work")
    vaults.add_credential("work", "static_bearer", MCP_URL, secret=Secret("t", TOKEN))
    previous = keyring.get_keyring()
    keyring.set_keyring(keyring.backends.null.Keyring())
    try:
        with pytest.raises(InsecureKeyringError):
            Vaults(index_path).bearer_for([vault.id], MCP_URL)
        with pytest.raises(InsecureKeyringError):
            Vaults(index_path).drift()
        with pytest.raises(InsecureKeyringError):
            Vaults(index_path).delete_vault("work")
    finally:
        keyring.set_keyring(previous)
    assert Vaults(index_path).get_vault("work").credential_count == 1


def test_with_the_explicit_opt_in_the_null_backend_is_used(index_path: Path) -> None:
    previous = keyring.get_keyring()
    keyring.set_keyring(keyring.backends.null.Keyring())
    try:
        vaults = Vaults(index_path, allow_insecure_keyring=True)
        vault = vaults.create_vault("work")
        credential = vaults.add_credential("work", "static_bearer", MCP_URL, secret=Secret("t", TOKEN))
        # The null backend kept nothing: a fresh reader finds the secret gone, which is drift.
        assert Vaults(index_path, allow_insecure_keyring=True).drift() == [credential]
        vaults.remove_credential(vault.id, credential.id)
    finally:
        keyring.set_keyring(previous)


def test_require_secure_keyring_is_the_same_check_for_other_keyring_users(index_path: Path) -> None:
    previous = keyring.get_keyring()
    keyring.set_keyring(keyring.backends.null.Keyring())
    try:
        with pytest.raises(InsecureKeyringError):
            Vaults(index_path).require_secure_keyring()
        Vaults(index_path, allow_insecure_keyring=True).require_secure_keyring()
    finally:
        keyring.set_keyring(previous)
