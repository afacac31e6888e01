"""A session's git repositories: recorded at create time, cloned into its /workspace before its first turn.

The clone runs on the host (`hands/repositories.py`), with a token that comes from the resource's own
write-only `authorization_token` (kept in the OS keyring under the resource's id, never in the store)
or else from the first of the session's vaults holding a `github_token` for the repository's host.
A delivered repository is marked in the session's data dir, so later runs do not fetch it again; a
failed one is tried again on the session's next run (after the user fixed the token, say).
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import anyio

from server.core.blocking import in_thread, in_vault_thread
from server.core.common import now_rfc3339
from server.core.errors import InvalidRequestError
from server.core.events import NewEvent
from server.core.ids import new_id
from server.core.sessions import Session, SessionResource
from server.egress.repositories import (
    TOKEN_USER,
    GitHubRepositoryResource,
    RepositoryCache,
    RepositoryError,
)
from server.hands.sandbox import SandboxBackend
from vault.errors import KeyringUnavailableError, VaultError
from vault.keyring_store import KEYRING_SERVICE, KeyringStore
from vault.redactor import MIN_SECRET_LENGTH, Redactor
from vault.secret import Secret
from vault.vaults import Vaults

__all__ = ["SessionRepositories"]

logger = logging.getLogger(__name__)

MAX_REPOSITORIES = 16


class SessionRepositories:
    """Records a new session's repositories and delivers them into its sandbox."""

    def __init__(
        self,
        data_dir: Path,
        vaults: Vaults,
        sandboxes: SandboxBackend,
        redactor: Redactor,
        keyring: KeyringStore | None = None,
    ) -> None:
        self._data_dir = data_dir
        self._cache: RepositoryCache | None = None  # made on first use: a server start does no repository work
        self._vaults = vaults
        self._sandboxes = sandboxes
        self._redactor = redactor
        self._keyring = keyring or KeyringStore(KEYRING_SERVICE)

    async def record(self, requested: Sequence[GitHubRepositoryResource]) -> list[SessionResource]:
        """The resources as the session keeps them; their tokens go to the keyring, under the resource ids."""
        if len(requested) > MAX_REPOSITORIES:
            raise InvalidRequestError(f"a session takes at most {MAX_REPOSITORIES} resources, got {len(requested)}")
        targets = [r.target for r in requested]
        if len(set(targets)) != len(targets):
            raise InvalidRequestError(f"two resources would land at the same mount_path ({targets}); set mount_path")
        now = now_rfc3339()
        recorded = []
        for resource in requested:
            resource_id = new_id("sesrsc")
            token = resource.token()
            if token is not None and len(token.reveal()) < MIN_SECRET_LENGTH:
                raise InvalidRequestError(
                    f"authorization_token is shorter than {MIN_SECRET_LENGTH} characters; pass the real token"
                )
            if token is not None:
                await self._keep_token(resource_id, token)
            recorded.append(
                SessionResource(
                    id=resource_id,
                    url=resource.url,
                    mount_path=resource.target,
                    checkout=resource.checkout,
                    created_at=now,
                    updated_at=now,
                )
            )
        return recorded

    async def _keep_token(self, resource_id: str, token: Secret) -> None:
        try:
            self._vaults.require_secure_keyring()
            await in_vault_thread(self._keyring.set, Secret(resource_id, token.reveal()))
        except VaultError as exc:
            raise InvalidRequestError(
                f"authorization_token needs the OS keyring, which is not usable here: {exc}; "
                "or put the token in a vault (`managed-sessions vault add`) and pass vault_ids"
            ) from exc

    async def forget(self, session: Session) -> None:
        """Removes the resources' tokens from the keyring (the session is being deleted)."""
        for resource in session.resources:
            try:
                await in_vault_thread(self._keyring.delete, resource.id)
            except VaultError as exc:
                logger.warning("session %s: could not remove the token of %s: %s", session.id, resource.id, exc)

    async def deliver(self, session: Session) -> list[NewEvent]:
        """Clones each repository not yet in the sandbox into it; the failures, as `session.error` events."""
        errors: list[NewEvent] = []
        for resource in session.resources:
            marker = self._data_dir / "sessions" / session.id / "resources" / f"{resource.id}.delivered"
            if await in_thread(marker.exists):
                continue
            try:
                await self._deliver_one(session, resource)
            except RepositoryError as exc:
                errors.append(_repository_error(exc.kind, f"{resource.url}: {exc}"))
                continue
            except VaultError as exc:
                errors.append(_repository_error("repository_authentication_error", f"{resource.url}: {exc}"))
                continue
            await in_thread(_touch, marker)
        return errors

    async def _deliver_one(self, session: Session, resource: SessionResource) -> None:
        token, unreadable = await self._token(session, resource)
        if self._cache is None:
            self._cache = await in_thread(RepositoryCache, self._data_dir / "repositories")
        scratch = await in_thread(_scratch_dir, self._data_dir / "tmp")
        try:  # the tree is made and removed off the event loop: a big one takes a while either way
            tree = scratch / "tree"
            try:
                await self._cache.checkout(resource.url, resource.checkout, token, tree)
            except RepositoryError as exc:
                if unreadable is None or exc.kind != "repository_authentication_error":
                    raise
                raise RepositoryError(
                    exc.kind, f"{exc}; and its own authorization_token, if it had one, could not be read: {unreadable}"
                ) from exc
            await self._sandboxes.put_directory(session.id, session.environment, tree, resource.mount_path)
        finally:
            with anyio.CancelScope(shield=True):
                await in_thread(shutil.rmtree, scratch, True)
        logger.info("session %s: %s is at %s", session.id, resource.url, resource.mount_path)

    async def _token(self, session: Session, resource: SessionResource) -> tuple[Secret | None, VaultError | None]:
        """The resource's own token, else the first vault's github_token for the repository's host; and why the
        keyring could not be read, if it could not (a public repository needs no token, so that is no failure yet).

        Registered with the redactor, and so is the Basic credential git sends it in (its base64 is not
        the token's base64)."""
        unreadable: VaultError | None = None
        try:
            token = await in_vault_thread(self._keyring.get, resource.id)
        except KeyringUnavailableError as exc:
            token, unreadable = None, exc
        if token is None and session.vault_ids:
            token = await in_vault_thread(self._vaults.git_token_for, session.vault_ids, resource.url)
        if token is not None:
            self._redactor.add(token)
            self._redactor.add(Secret("basic credential", f"{TOKEN_USER}:{token.reveal()}"))
        return token, unreadable


def _repository_error(kind: str, message: str) -> NewEvent:
    return NewEvent(
        "session.error", {"error": {"type": kind, "message": message, "retry_status": {"type": "exhausted"}}}
    )


def _touch(marker: Path) -> None:
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.touch()


def _scratch_dir(parent: Path) -> Path:
    parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(dir=parent, prefix="checkout-"))
