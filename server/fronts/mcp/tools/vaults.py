"""MCP tools for vaults: metadata only. Secrets are added with `managed-sessions vault add` on the host,
so they never pass through a client or a model's context."""

from __future__ import annotations

from typing import Annotated

from mcp.types import CallToolResult
from pydantic import Field, StringConstraints

from server.core.common import PLAIN_TEXT, Metadata
from server.core.vaults import CredentialDeleted, CredentialList, Vault, VaultDeleted, VaultList
from server.fronts.mcp.registry import Registry
from server.fronts.mcp.tools.common import DESTRUCTIVE, READ_ONLY, WRITE, Ctx, reply, runtime

__all__ = ["register_vault_tools"]

VaultRef = Annotated[str, Field(min_length=1, max_length=255, description="A vault id (vlt_...) or its display_name.")]
CredentialId = Annotated[str, Field(min_length=1, max_length=64, description="A credential id (cred_...).")]
DisplayName = Annotated[
    str, StringConstraints(min_length=1, max_length=255), PLAIN_TEXT, Field(description="A unique name for the vault.")
]

_ADD_HINT = (
    "add credentials on the server's host with `managed-sessions vault add VAULT --type static_bearer|github_token "
    "--match URL_OR_HOST` (the secret is read from a prompt, stdin, --from-env or --from-command, never from here)"
)


def register_vault_tools(mcp: Registry) -> None:
    @mcp.tool(annotations=WRITE)
    async def create_vault(
        ctx: Ctx, display_name: DisplayName, metadata: Annotated[Metadata | None, Field(default=None)] = None
    ) -> Annotated[CallToolResult, Vault]:
        """Create a vault: a named set of credentials that sessions use through create_session's vault_ids.

        It starts empty; credentials are added on the host with the CLI, so secrets never pass through here."""
        vault = await runtime(ctx).vault_service.create(display_name, metadata or {})
        return reply(vault, f"Created vault {vault.id} ({vault.display_name}); {_ADD_HINT}.")

    @mcp.tool(annotations=READ_ONLY)
    async def list_vaults(ctx: Ctx) -> Annotated[CallToolResult, VaultList]:
        """List vaults with how many credentials each holds (never the secrets)."""
        listing = await runtime(ctx).vault_service.list()
        return reply(listing, f"{len(listing.vaults)} vault(s).")

    @mcp.tool(annotations=READ_ONLY)
    async def get_vault(ctx: Ctx, vault_id: VaultRef) -> Annotated[CallToolResult, Vault]:
        """Get a vault by id or display name."""
        vault = await runtime(ctx).vault_service.get(vault_id)
        return reply(vault, f"Vault {vault.id} ({vault.display_name}): {vault.credential_count} credential(s).")

    @mcp.tool(annotations=DESTRUCTIVE)
    async def delete_vault(ctx: Ctx, vault_id: VaultRef) -> Annotated[CallToolResult, VaultDeleted]:
        """Delete a vault and every credential in it, secrets included (removed from the OS keyring).

        Sessions that name it in vault_ids lose those credentials from their next use on."""
        deleted = await runtime(ctx).vault_service.delete(vault_id)
        return reply(deleted, f"Deleted vault {deleted.id} and {deleted.credentials_removed} credential(s).")

    @mcp.tool(annotations=READ_ONLY)
    async def list_credentials(ctx: Ctx, vault_id: VaultRef) -> Annotated[CallToolResult, CredentialList]:
        """List a vault's credentials: id, type, what each matches, display name, created_at. Never the secret."""
        page = await runtime(ctx).vault_service.credentials(vault_id)
        hint = "" if page.credentials else f"; {_ADD_HINT}"
        return reply(page, f"{len(page.credentials)} credential(s) in {page.vault_id}{hint}.")

    @mcp.tool(annotations=DESTRUCTIVE)
    async def delete_credential(
        ctx: Ctx, vault_id: VaultRef, credential_id: CredentialId
    ) -> Annotated[CallToolResult, CredentialDeleted]:
        """Delete a credential: its metadata and its secret in the OS keyring."""
        deleted = await runtime(ctx).vault_service.delete_credential(vault_id, credential_id)
        return reply(deleted, f"Deleted credential {deleted.id} from {deleted.vault_id}.")
