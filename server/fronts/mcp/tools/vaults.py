"""MCP tools for vaults: metadata only. Secrets are added with `managed-sessions vault add` on the host,
so they never pass through a client or a model's context."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, TypeVar

from mcp.server import MCPServer
from mcp.types import CallToolResult
from pydantic import Field, StringConstraints

from server.core.blocking import in_vault_thread
from server.core.common import PLAIN_TEXT, Metadata
from server.core.errors import from_vault_error
from server.core.vaults import Credential, CredentialDeleted, CredentialList, Vault, VaultDeleted, VaultList
from server.fronts.mcp.tools.common import DESTRUCTIVE, READ_ONLY, WRITE, Ctx, reply, runtime
from vault.errors import VaultError
from vault.vaults import Vaults

__all__ = ["register_vault_tools"]

VaultRef = Annotated[str, Field(min_length=1, max_length=255, description="A vault id (vlt_...) or its display_name.")]
CredentialId = Annotated[str, Field(min_length=1, max_length=64, description="A credential id (cred_...).")]
DisplayName = Annotated[
    str, StringConstraints(min_length=1, max_length=255), PLAIN_TEXT, Field(description="A unique name for the vault.")
]

T = TypeVar("T")

_ADD_HINT = (
    "add credentials on the server's host with `managed-sessions vault add VAULT --type static_bearer|github_token "
    "--match URL_OR_HOST` (the secret is read from a prompt, stdin, --from-env or --from-command, never from here)"
)


async def vault_call(vaults: Vaults, call: Callable[[Vaults], T]) -> T:
    """Runs a vault operation off the event loop and turns its errors into tool errors."""
    try:
        return await in_vault_thread(call, vaults)
    except VaultError as exc:
        raise from_vault_error(exc) from exc


def _vaults(ctx: Ctx) -> Vaults:
    return runtime(ctx).vaults


def register_vault_tools(mcp: MCPServer) -> None:
    @mcp.tool(annotations=WRITE)
    async def create_vault(
        ctx: Ctx, display_name: DisplayName, metadata: Annotated[Metadata | None, Field(default=None)] = None
    ) -> Annotated[CallToolResult, Vault]:
        """Create a vault: a named set of credentials that sessions use through create_session's vault_ids.

        It starts empty; credentials are added on the host with the CLI, so secrets never pass through here."""
        info = await vault_call(_vaults(ctx), lambda v: v.create_vault(display_name, dict(metadata or {})))
        return reply(Vault.of(info), f"Created vault {info.id} ({info.display_name}); {_ADD_HINT}.")

    @mcp.tool(annotations=READ_ONLY)
    async def list_vaults(ctx: Ctx) -> Annotated[CallToolResult, VaultList]:
        """List vaults with how many credentials each holds (never the secrets)."""
        infos = await vault_call(_vaults(ctx), lambda v: v.list_vaults())
        return reply(VaultList(vaults=[Vault.of(i) for i in infos]), f"{len(infos)} vault(s).")

    @mcp.tool(annotations=READ_ONLY)
    async def get_vault(ctx: Ctx, vault_id: VaultRef) -> Annotated[CallToolResult, Vault]:
        """Get a vault by id or display name."""
        info = await vault_call(_vaults(ctx), lambda v: v.get_vault(vault_id))
        return reply(Vault.of(info), f"Vault {info.id} ({info.display_name}): {info.credential_count} credential(s).")

    @mcp.tool(annotations=DESTRUCTIVE)
    async def delete_vault(ctx: Ctx, vault_id: VaultRef) -> Annotated[CallToolResult, VaultDeleted]:
        """Delete a vault and every credential in it, secrets included (removed from the OS keyring).

        Sessions that name it in vault_ids lose those credentials from their next use on."""

        def delete(v: Vaults) -> VaultDeleted:
            info = v.get_vault(vault_id)
            v.delete_vault(info.id)
            return VaultDeleted(id=info.id, credentials_removed=info.credential_count)

        deleted = await vault_call(_vaults(ctx), delete)
        return reply(deleted, f"Deleted vault {deleted.id} and {deleted.credentials_removed} credential(s).")

    @mcp.tool(annotations=READ_ONLY)
    async def list_credentials(ctx: Ctx, vault_id: VaultRef) -> Annotated[CallToolResult, CredentialList]:
        """List a vault's credentials: id, type, what each matches, display name, created_at. Never the secret."""

        def listing(v: Vaults) -> CredentialList:
            info = v.get_vault(vault_id)
            return CredentialList(vault_id=info.id, credentials=[Credential.of(c) for c in v.list_credentials(info.id)])

        page = await vault_call(_vaults(ctx), listing)
        hint = "" if page.credentials else f"; {_ADD_HINT}"
        return reply(page, f"{len(page.credentials)} credential(s) in {page.vault_id}{hint}.")

    @mcp.tool(annotations=DESTRUCTIVE)
    async def delete_credential(
        ctx: Ctx, vault_id: VaultRef, credential_id: CredentialId
    ) -> Annotated[CallToolResult, CredentialDeleted]:
        """Delete a credential: its metadata and its secret in the OS keyring."""

        def delete(v: Vaults) -> CredentialDeleted:
            info = v.get_vault(vault_id)
            v.remove_credential(info.id, credential_id)
            return CredentialDeleted(id=credential_id, vault_id=info.id)

        deleted = await vault_call(_vaults(ctx), delete)
        return reply(deleted, f"Deleted credential {deleted.id} from {deleted.vault_id}.")
