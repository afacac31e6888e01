"""`Vaults`: named sets of credentials, their secrets in the OS keyring, their metadata in the index.

Where things live:
- each secret in the keyring, service `managed-sessions`, user name = the credential's id;
- everything else (names, what each credential matches, commands of dynamic secrets) in the
  index file (`vault.index`);
- a revealed secret in this process's memory only: cached per credential, so a session's turn
  costs no keyring read after the first use, and registered with the redactor.

Adding writes the keyring first, then the index: a crash in between leaves an orphaned keyring
entry (harmless) rather than an index entry without a secret. The reverse, an index entry
whose secret vanished (someone deleted it behind our back), is "drift": `drift()` finds it.

Every method is synchronous and may block (keyring over D-Bus, the index lock, a command):
async callers run them in a worker thread.
"""

from __future__ import annotations

import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from vault.command import run_secret_command
from vault.errors import (
    ArchivedError,
    CredentialConflictError,
    CredentialNotFoundError,
    InsecureKeyringError,
    VaultError,
    VaultNotFoundError,
)
from vault.index import IndexData, VaultIndex, VaultRecord
from vault.keyring_store import KEYRING_SERVICE, KeyringStore
from vault.matching import normalize_git_host, normalize_mcp_url
from vault.models import CredentialInfo, CredentialType, VaultInfo
from vault.redactor import Redactor
from vault.rules import check_display_name, check_length, check_metadata, patch_metadata
from vault.secret import Secret
from vault.store import SecretStore

__all__ = ["ALLOW_INSECURE_KEYRING_VARIABLE", "MAX_CREDENTIALS_PER_VAULT", "Vaults"]

MAX_CREDENTIALS_PER_VAULT = 20  # as in the hosted API
ALLOW_INSECURE_KEYRING_VARIABLE = "MANAGED_SESSIONS_VAULT_ALLOW_INSECURE_KEYRING"
"""Named in error messages; the server reads it and passes `allow_insecure_keyring`."""

_CREDENTIAL_TYPES: tuple[CredentialType, ...] = ("static_bearer", "github_token")
_VAULT_ID = re.compile(r"^vlt_[0-9a-f]{24}$")


@dataclass
class _Cached:
    secret: Secret
    record: CredentialInfo
    fetched_at: float


class Vaults:
    """The vault service: vaults and credentials (metadata), and the secrets sessions use.

    Attributes:
        keyring_reads: how many times this object read a secret from the keyring.
        redactor: holds every secret this object revealed.
    """

    def __init__(
        self,
        index_path: Path,
        keyring: SecretStore | None = None,
        *,
        allow_insecure_keyring: bool = False,
        command_ttl_s: float = 300.0,
        redactor: Redactor | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._index = VaultIndex(index_path)
        self._store: SecretStore = keyring if keyring is not None else KeyringStore(KEYRING_SERVICE)
        self._allow_insecure = allow_insecure_keyring
        self._command_ttl_s = command_ttl_s
        self._clock = clock  # seconds, monotonic: when a dynamic secret's cached value goes stale
        self.redactor = redactor if redactor is not None else Redactor()
        self.keyring_reads = 0
        self._cache: dict[str, _Cached] = {}
        self._cache_guard = threading.Lock()
        self._credential_locks: dict[str, threading.Lock] = {}

    # -- vaults ----------------------------------------------------------------------------

    def create_vault(self, display_name: str, metadata: Mapping[str, str] | None = None) -> VaultInfo:
        checked = check_metadata(metadata or {})
        with self._index.update() as data:
            name = _check_new_vault_name(data, display_name)
            record = VaultRecord(id=_new_id("vlt_"), display_name=name, metadata=checked, created_at=_now())
            data.vaults.append(record)
        return _vault_info(record, 0)

    def list_vaults(self) -> list[VaultInfo]:
        data = self._index.read()
        return [_vault_info(v, _count(data, v.id)) for v in data.vaults]

    def get_vault(self, ref: str) -> VaultInfo:
        """`ref` is a vault id or a display name."""
        data = self._index.read()
        record = _find_vault(data, ref)
        return _vault_info(record, _count(data, record.id))

    def delete_vault(self, ref: str) -> None:
        """Deletes the vault, its credentials, and their keyring entries."""
        with self._index.update() as data:
            record = _find_vault(data, ref)
            doomed = [c for c in data.credentials if c.vault_id == record.id]
            for credential in doomed:
                self._delete_secret(credential)
            data.vaults.remove(record)
            data.credentials[:] = [c for c in data.credentials if c.vault_id != record.id]
        self._forget(c.id for c in doomed)

    def update_vault(
        self, ref: str, *, display_name: str | None = None, metadata: Mapping[str, str | None] | None = None
    ) -> VaultInfo:
        """Renames the vault and/or patches its metadata (a None value removes a key); an archived vault is
        read-only."""
        with self._index.update() as data:
            record = _find_vault(data, ref)
            _check_active(record.archived_at, f"vault {record.display_name!r}")
            changes: dict[str, object] = {}
            if display_name is not None and display_name != record.display_name:
                changes["display_name"] = _check_new_vault_name(data, display_name)
            if metadata is not None:
                patched = check_metadata(patch_metadata(record.metadata, metadata))
                if patched != record.metadata:
                    changes["metadata"] = patched
            if changes:
                updated = record.model_copy(update={**changes, "updated_at": _now()})
                data.vaults[data.vaults.index(record)] = record = updated
        return _vault_info(record, _count(data, record.id))

    def archive_vault(self, ref: str) -> VaultInfo:
        """Archives the vault and every credential in it, purging their secrets; archiving twice is a no-op."""
        with self._index.update() as data:
            record = _find_vault(data, ref)
            if record.archived_at is None:
                now = _now()
                for credential in [c for c in data.credentials if c.vault_id == record.id]:
                    self._archive_in(data, credential, now)
                archived = record.model_copy(update={"archived_at": now, "updated_at": now})
                data.vaults[data.vaults.index(record)] = record = archived
        self._forget(c.id for c in data.credentials if c.vault_id == record.id)
        return _vault_info(record, _count(data, record.id))

    def check_vault_ids(self, vault_ids: Sequence[str]) -> None:
        """Raises `VaultNotFoundError` naming every id that is not a vault (a session's `vault_ids`), and
        `ArchivedError` for an archived one: a new session cannot use it (running ones just find no secret)."""
        data = self._index.read()
        _check_ids(data, vault_ids)
        archived = [v.id for v in data.vaults if v.id in vault_ids and v.archived_at is not None]
        if archived:
            raise ArchivedError(f"vault(s) {', '.join(map(repr, archived))} archived; a new session cannot use them")

    def require_secure_keyring(self) -> None:
        """Raises `InsecureKeyringError` unless the backend is secure or the user opted in.

        Public for callers that keep other secrets in the same keyring (a resource's write-only token).
        """
        if self._allow_insecure:
            return
        backend = self._store.backend()
        if not backend.secure:
            raise InsecureKeyringError(
                f"the keyring backend {backend.name} would not keep secrets encrypted (or keeps none), so the "
                "vault refuses to use it. Run an OS keyring: SecretService (gnome-keyring or KWallet; on a "
                "server, gnome-keyring inside dbus-run-session), the macOS Keychain or the Windows Credential "
                f"Locker. Or accept the risk explicitly with {ALLOW_INSECURE_KEYRING_VARIABLE}=1"
            )

    # -- loose tokens ----------------------------------------------------------------------

    def keep_token(self, token: Secret) -> None:
        """Keeps a write-only token that belongs to no vault (a session resource's), under `token.name`."""
        self.require_secure_keyring()
        self._store.set(token)

    def token(self, token_name: str) -> Secret | None:
        """A token kept with `keep_token`, or None."""
        return self._read_keyring(token_name)

    def drop_token(self, token_name: str) -> None:
        self._store.delete(token_name)

    # -- credentials -----------------------------------------------------------------------

    def add_credential(
        self,
        vault_ref: str,
        type: CredentialType,
        match: str,
        *,
        secret: Secret | None = None,
        command: str | None = None,
        display_name: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> CredentialInfo:
        """Adds a credential whose secret is `secret` (kept in the keyring) or `command`'s output.

        A command is run once here, to check that it prints a usable value; only the command
        text is stored, and it is re-run when its cached value is older than `command_ttl_s`.
        """
        normalized = _normalize(type, match)
        name = None if display_name is None else check_display_name(display_name, what="a credential's display_name")
        checked_metadata = check_metadata(metadata or {})
        if (secret is None) == (command is None):
            raise VaultError("give exactly one of a secret or a command that prints it")
        self._check_room(self._index.read(), vault_ref, type, normalized)  # fail fast, before running anything
        value = secret.reveal() if secret is not None else self._first_run(command or "")
        check_length(value)
        if secret is not None:
            self.require_secure_keyring()
        with self._rollback_on_error() as stored, self._index.update() as data:
            vault_id = self._check_room(data, vault_ref, type, normalized)
            record = CredentialInfo(
                id=_new_id("cred_"),
                vault_id=vault_id,
                type=type,
                match=normalized,
                source="keyring" if secret is not None else "command",
                created_at=_now(),
                display_name=name,
                command=command.strip() if command is not None else None,
                metadata=checked_metadata,
            )
            if secret is not None:
                self._store.set(Secret(record.id, value))  # keyring first, then the index
                stored.append(record.id)
            data.credentials.append(record)
        self._remember(record, Secret(record.id, value))
        return record

    def remove_credential(self, vault_ref: str, credential_id: str) -> None:
        """Removes the credential's index entry and its keyring entry."""
        with self._index.update() as data:
            credential = _find_credential(data, vault_ref, credential_id)
            self._delete_secret(credential)
            data.credentials.remove(credential)
        self._forget([credential_id])

    def get_credential(self, vault_ref: str, credential_id: str) -> CredentialInfo:
        """Metadata only; never touches the keyring."""
        return _find_credential(self._index.read(), vault_ref, credential_id)

    def update_credential(
        self,
        vault_ref: str,
        credential_id: str,
        *,
        display_name: str | None = None,
        metadata: Mapping[str, str | None] | None = None,
        secret: Secret | None = None,
    ) -> CredentialInfo:
        """Renames (\"\" clears the name), patches metadata and/or replaces the stored secret (keyring-sourced
        credentials only: a command-sourced one changes its command on the host). What it matches is immutable."""
        with self._index.update() as data:
            current = _find_credential(data, vault_ref, credential_id)
            _check_active(current.archived_at, f"credential {credential_id!r}")
            updated = _edited(current, display_name, metadata)
            if secret is not None:
                self._replace_secret(current, secret)
                updated = replace(updated, updated_at=_now())
            data.credentials[data.credentials.index(current)] = updated
        if secret is not None:
            self._remember(updated, Secret(updated.id, secret.reveal()))
        return updated

    def archive_credential(self, vault_ref: str, credential_id: str) -> CredentialInfo:
        """Purges the secret and keeps the metadata, marked archived; archiving twice is a no-op."""
        with self._index.update() as data:
            credential = self._archive_in(data, _find_credential(data, vault_ref, credential_id), _now())
        self._forget([credential_id])
        return credential

    def list_credentials(self, vault_ref: str) -> list[CredentialInfo]:
        """Metadata only; never touches the keyring."""
        data = self._index.read()
        vault = _find_vault(data, vault_ref)
        return [c for c in data.credentials if c.vault_id == vault.id]

    def drift(self) -> list[CredentialInfo]:
        """Keyring-sourced credentials whose secret is no longer in the keyring."""
        held = [c for c in self._index.read().credentials if c.source == "keyring" and c.archived_at is None]
        if held:
            self.require_secure_keyring()
        return [c for c in held if self._read_keyring(c.id) is None]

    # -- resolving, the hot path -------------------------------------------------------------

    def bearer_for(self, vault_ids: Sequence[str], mcp_server_url: str) -> Secret | None:
        """The static_bearer secret for this MCP server URL from the first vault that has one."""
        return self._resolve(vault_ids, "static_bearer", normalize_mcp_url(mcp_server_url))

    def git_token_for(self, vault_ids: Sequence[str], host_or_url: str) -> Secret | None:
        """The github_token secret for this git host (or repository URL) from the first vault that has one."""
        return self._resolve(vault_ids, "github_token", normalize_git_host(host_or_url))

    def _resolve(self, vault_ids: Sequence[str], type: CredentialType, match: str) -> Secret | None:
        data = self._index.read()
        _check_ids(data, vault_ids)
        self._prune(data)
        for vault_id in vault_ids:
            for credential in data.credentials:
                if (
                    credential.vault_id == vault_id
                    and credential.type == type
                    and credential.match == match
                    and credential.archived_at is None
                ):
                    return self._secret_of(credential)
        return None

    def _secret_of(self, credential: CredentialInfo) -> Secret:
        """The cached value while it is valid, else a keyring read or a command run (one at a time per credential)."""
        with self._lock_for(credential.id):
            cached = self._cache.get(credential.id)
            if cached is not None and cached.record == credential and self._fresh(cached):
                return cached.secret
            if credential.source == "command":
                value = run_secret_command(credential.command or "", f"credential {credential.id!r}", self.redactor)
                check_length(value)
                secret = Secret(credential.id, value)
            else:
                self.require_secure_keyring()
                found = self._read_keyring(credential.id)
                if found is None:
                    raise VaultError(_drift_message(credential))
                secret = found
            self._remember(credential, secret)
            return secret

    # -- internals ---------------------------------------------------------------------------

    def _check_room(self, data: IndexData, vault_ref: str, type: CredentialType, match: str) -> str:
        """The vault's id, if it can take one more credential of this type and match."""
        vault = _find_vault(data, vault_ref)
        _check_active(vault.archived_at, f"vault {vault.display_name!r}")
        held = [c for c in data.credentials if c.vault_id == vault.id and c.archived_at is None]
        clash = next((c for c in held if c.type == type and c.match == match), None)
        if clash is not None:
            raise CredentialConflictError(
                f"vault {vault.display_name!r} already has a {type} credential {clash.id!r} for {match!r}; "
                f"remove it first with 'managed-sessions vault remove {vault.id} {clash.id}'"
            )
        if len(held) >= MAX_CREDENTIALS_PER_VAULT:
            raise VaultError(
                f"vault {vault.display_name!r} already holds {MAX_CREDENTIALS_PER_VAULT} credentials, the most "
                "a vault may hold; remove one or use another vault"
            )
        return vault.id

    def _first_run(self, command: str) -> str:
        if not command.strip():
            raise VaultError("the command is empty; give the command line that prints the secret")
        return run_secret_command(command, "the new credential", self.redactor)

    def _replace_secret(self, credential: CredentialInfo, secret: Secret) -> None:
        if credential.source != "keyring":
            raise VaultError(
                f"credential {credential.id!r} takes its secret from a command on the host; change the command "
                "there, or archive this credential and add a new one"
            )
        value = secret.reveal()
        check_length(value)
        self.require_secure_keyring()
        self._store.set(Secret(credential.id, value))

    def _archive_in(self, data: IndexData, credential: CredentialInfo, now: datetime) -> CredentialInfo:
        """Marks `credential` archived in `data` and purges its secret (no-op if it already is)."""
        if credential.archived_at is not None:
            return credential
        self._delete_secret(credential)
        archived = replace(credential, archived_at=now, updated_at=now)
        data.credentials[data.credentials.index(credential)] = archived
        return archived

    def _read_keyring(self, credential_id: str) -> Secret | None:
        with self._cache_guard:
            self.keyring_reads += 1
        return self._store.get(credential_id)

    def _delete_secret(self, credential: CredentialInfo) -> None:
        if credential.source == "keyring":
            self.require_secure_keyring()
            self._store.delete(credential.id)

    @contextmanager
    def _rollback_on_error(self) -> Iterator[list[str]]:
        """Keyring entries written inside the block are deleted again if the block fails."""
        stored: list[str] = []
        try:
            yield stored
        except BaseException:
            for credential_id in stored:
                self._store.delete(credential_id)
            raise

    def _fresh(self, cached: _Cached) -> bool:
        if cached.record.source == "keyring":
            return True
        return self._clock() - cached.fetched_at < self._command_ttl_s

    def _remember(self, credential: CredentialInfo, secret: Secret) -> None:
        self.redactor.add(secret)
        with self._cache_guard:
            self._cache[credential.id] = _Cached(secret, credential, self._clock())

    def _forget(self, credential_ids: Iterable[str]) -> None:
        with self._cache_guard:
            for credential_id in credential_ids:
                self._cache.pop(credential_id, None)

    def _prune(self, data: IndexData) -> None:
        """Cached secrets of credentials no longer in the index (removed by another process) go."""
        live = {c.id for c in data.credentials}
        with self._cache_guard:
            for credential_id in [k for k in self._cache if k not in live]:
                del self._cache[credential_id]

    def _lock_for(self, credential_id: str) -> threading.Lock:
        with self._cache_guard:
            return self._credential_locks.setdefault(credential_id, threading.Lock())


def _find_vault(data: IndexData, ref: str) -> VaultRecord:
    found = next((v for v in data.vaults if v.id == ref), None) or next(
        (v for v in data.vaults if v.display_name == ref), None
    )
    if found is None:
        raise VaultNotFoundError(f"no vault {ref!r} (by id or display_name); 'managed-sessions vault list' shows them")
    return found


def _find_credential(data: IndexData, vault_ref: str, credential_id: str) -> CredentialInfo:
    vault = _find_vault(data, vault_ref)
    credential = next((c for c in data.credentials if c.id == credential_id and c.vault_id == vault.id), None)
    if credential is None:
        raise CredentialNotFoundError(
            f"vault {vault.display_name!r} has no credential {credential_id!r}; "
            f"'managed-sessions vault show {vault.id}' lists its credentials"
        )
    return credential


def _check_active(archived_at: datetime | None, what: str) -> None:
    if archived_at is not None:
        raise ArchivedError(f"{what} is archived and read-only; create a new one instead")


def _check_new_vault_name(data: IndexData, display_name: str) -> str:
    name = check_display_name(display_name, what="a vault's display_name")
    if _VAULT_ID.match(name):
        raise VaultError(f"{name!r} looks like a vault id; choose a display_name that does not")
    if any(v.display_name == name for v in data.vaults):
        raise VaultError(f"a vault named {name!r} already exists; choose another display_name")
    return name


def _edited(
    current: CredentialInfo, display_name: str | None, metadata: Mapping[str, str | None] | None
) -> CredentialInfo:
    """`current` renamed and its metadata patched; `updated_at` moves only if something changed."""
    name = current.display_name
    if display_name is not None:
        name = check_display_name(display_name, what="a credential's display_name") if display_name else None
    patched = current.metadata if metadata is None else check_metadata(patch_metadata(current.metadata, metadata))
    if (name, patched) == (current.display_name, current.metadata):
        return current
    return replace(current, display_name=name, metadata=patched, updated_at=_now())


def _check_ids(data: IndexData, vault_ids: Sequence[str]) -> None:
    known = {v.id for v in data.vaults}
    unknown = [vault_id for vault_id in vault_ids if vault_id not in known]
    if unknown:
        raise VaultNotFoundError(
            f"unknown vault id(s) {', '.join(repr(u) for u in unknown)}; 'managed-sessions vault list' shows them"
        )


def _count(data: IndexData, vault_id: str) -> int:
    return sum(1 for c in data.credentials if c.vault_id == vault_id and c.archived_at is None)


def _normalize(type: str, match: str) -> str:
    if type == "static_bearer":
        return normalize_mcp_url(match)
    if type == "github_token":
        return normalize_git_host(match)
    raise VaultError(f"unknown credential type {type!r}; use one of {', '.join(_CREDENTIAL_TYPES)}")


def _drift_message(credential: CredentialInfo) -> str:
    return (
        f"credential {credential.id!r} ({credential.type} for {credential.match!r}) has no secret in the keyring "
        f"any more; re-add it with 'managed-sessions vault add', or remove it with "
        f"'managed-sessions vault remove {credential.vault_id} {credential.id}'"
    )


def _new_id(prefix: str) -> str:
    return prefix + secrets.token_hex(12)


def _now() -> datetime:
    return datetime.now(UTC)


def _vault_info(record: VaultRecord, credential_count: int) -> VaultInfo:
    return VaultInfo(
        id=record.id,
        display_name=record.display_name,
        metadata=dict(record.metadata),
        created_at=record.created_at,
        credential_count=credential_count,
        updated_at=record.updated_at,
        archived_at=record.archived_at,
    )
