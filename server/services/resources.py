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
from typing import Literal

import anyio
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from server.core.blocking import in_thread, in_vault_thread
from server.core.common import now_rfc3339
from server.core.errors import InvalidRequestError
from server.core.events import EventBody, SessionError
from server.core.ids import new_id
from server.core.sessions import Checkout, Session, SessionResource
from server.egress.repositories import (
    TOKEN_USER,
    WORKSPACE,
    RepositoryCache,
    RepositoryError,
    check_mount_path,
    normalize_url,
    repository_name,
)
from server.hands.sandbox import SandboxBackend
from vault.errors import KeyringUnavailableError, VaultError
from vault.redactor import MIN_SECRET_LENGTH, Redactor
from vault.secret import Secret
from vault.vaults import Vaults

__all__ = ["GitHubRepositoryResource", "SessionRepositories"]

logger = logging.getLogger(__name__)

MAX_REPOSITORIES = 16


class GitHubRepositoryResource(BaseModel):
    """A git repository to clone into the session's /workspace before the first turn.

    `authorization_token` is write-only: it is excluded from dumps and reprs; read it with `token()`.
    """

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    type: Literal["github_repository"]
    url: str = Field(description="An https (or http) URL of any smart-HTTP git host, without credentials.")
    mount_path: str | None = Field(default=None, description="Absolute, under /workspace; default /workspace/<repo>.")
    checkout: Checkout | None = Field(default=None, description="A branch or commit; default: the default branch.")
    authorization_token: SecretStr | None = Field(default=None, exclude=True, repr=False)

    @field_validator("url")
    @classmethod
    def _plain_url(cls, url: str) -> str:
        normalize_url(url)
        return url

    @field_validator("mount_path")
    @classmethod
    def _under_workspace(cls, mount_path: str | None) -> str | None:
        if mount_path is not None:
            check_mount_path(mount_path)
        return mount_path

    @model_validator(mode="after")
    def _named(self) -> GitHubRepositoryResource:
        repository_name(self.url)  # a URL with no repository name has no default mount path
        return self

    @property
    def target(self) -> str:
        """Where the working tree goes in the container."""
        return self.mount_path or f"{WORKSPACE}/{repository_name(self.url)}"

    def token(self) -> Secret | None:
        if self.authorization_token is None:
            return None
        return Secret("authorization_token", self.authorization_token.get_secret_value())


class SessionRepositories:
    """Records a new session's repositories and delivers them into its sandbox."""

    def __init__(
        self,
        data_dir: Path,
        vaults: Vaults,
        sandboxes: SandboxBackend,
        redactor: Redactor,
    ) -> None:
        self._data_dir = data_dir
        self._cache: RepositoryCache | None = None  # made on first use: a server start does no repository work
        self._vaults = vaults
        self._sandboxes = sandboxes
        self._redactor = redactor

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
            await in_vault_thread(self._vaults.keep_token, Secret(resource_id, token.reveal()))
        except VaultError as exc:
            raise InvalidRequestError(
                f"authorization_token needs the OS keyring, which is not usable here: {exc}; "
                "or put the token in a vault (`managed-sessions vault add`) and pass vault_ids"
            ) from exc

    async def forget(self, session: Session) -> None:
        """Removes the resources' tokens from the keyring (the session is being deleted)."""
        for resource in _repositories(session):
            try:
                await in_vault_thread(self._vaults.drop_token, resource.id)
            except VaultError as exc:
                logger.warning("session %s: could not remove the token of %s: %s", session.id, resource.id, exc)

    async def deliver(self, session: Session) -> list[EventBody]:
        """Clones each repository not yet in the sandbox into it; the failures, as `session.error` events."""
        errors: list[EventBody] = []
        for resource in _repositories(session):
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
            token = await in_vault_thread(self._vaults.token, resource.id)
        except KeyringUnavailableError as exc:
            token, unreadable = None, exc
        if token is None and session.vault_ids:
            token = await in_vault_thread(self._vaults.git_token_for, session.vault_ids, resource.url)
        if token is not None:
            self._redactor.add(token)
            self._redactor.add(Secret("basic credential", f"{TOKEN_USER}:{token.reveal()}"))
        return token, unreadable


def _repositories(session: Session) -> list[SessionResource]:
    return [r for r in session.resources if isinstance(r, SessionResource)]


def _repository_error(kind: str, message: str) -> EventBody:
    return SessionError.of(kind, message, "exhausted")


def _touch(marker: Path) -> None:
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.touch()


def _scratch_dir(parent: Path) -> Path:
    parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(dir=parent, prefix="checkout-"))
