"""`/v1/vaults` and `/v1/vaults/{vault_id}/credentials`: vaults and their credentials, secrets in but never out.

A `static_bearer` token is held as a `SecretStr` from the moment the body is parsed (so no repr, log line or
validation message can show it), handed to the vault service as a `Secret`, and kept in the OS keyring only;
responses show `auth` without it. Validation messages never echo input values (`describe_problems`).
`mcp_oauth` and `environment_variable` credentials are refused with a 400 that says this server lacks them.
Our `github_token` credentials (added with the CLI) are shown with `auth: {type: "github_token", git_host}`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, ConfigDict, Field, SecretStr, StringConstraints
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from server.core.common import Metadata, MetadataPatch
from server.fronts.rest.common import PageQuery, page, path_id, runtime
from server.fronts.rest.wire import RequestModel, endpoint, json_response, read_body, read_query
from server.services.vaults import VaultService
from vault.models import CredentialInfo, VaultInfo
from vault.secret import Secret

__all__ = ["vault_routes"]

MAX_TOKEN_CHARS = 16_384
DisplayName = Annotated[str, StringConstraints(min_length=1, max_length=255)]
Token = Annotated[SecretStr, Field(min_length=1, max_length=MAX_TOKEN_CHARS)]


class VaultCreate(RequestModel):
    display_name: DisplayName
    metadata: Metadata | None = None


class VaultUpdate(RequestModel):
    display_name: DisplayName | None = None
    metadata: MetadataPatch | None = None


class ListQuery(PageQuery):
    include_archived: bool = False


class StaticBearerCreate(RequestModel):
    type: Literal["static_bearer"]
    mcp_server_url: Annotated[str, StringConstraints(min_length=1, max_length=2_048)]
    token: Token


def _immutable(value: object) -> object:
    if value is not None:
        raise ValueError("a credential's mcp_server_url cannot change; archive it and create a new one")
    return value


class StaticBearerUpdate(RequestModel):
    type: Literal["static_bearer"]
    token: Token | None = None
    mcp_server_url: Annotated[Any, AfterValidator(_immutable)] = None


def _refuse(value: object) -> object:
    raise ValueError(
        "this server supports only 'static_bearer' credentials (a bearer token for one MCP server URL); "
        "'mcp_oauth' and 'environment_variable' are not supported yet"
    )


class OtherAuth(RequestModel):
    """The hosted API's other credential types, accepted by the schema only to be refused by name."""

    model_config = ConfigDict(extra="allow")
    type: Literal["mcp_oauth", "environment_variable"]


Refused = Annotated[OtherAuth, AfterValidator(_refuse)]
CreateAuth = Annotated[StaticBearerCreate | Refused, Field(discriminator="type")]
UpdateAuth = Annotated[StaticBearerUpdate | Refused, Field(discriminator="type")]


class CredentialCreate(RequestModel):
    auth: CreateAuth
    display_name: DisplayName | None = None
    metadata: Metadata | None = None


class CredentialUpdate(RequestModel):
    auth: UpdateAuth | None = None
    display_name: DisplayName | None = None
    metadata: MetadataPatch | None = None


def _rfc3339(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def shown_vault(info: VaultInfo) -> dict[str, Any]:
    return {
        "type": "vault",
        "id": info.id,
        "display_name": info.display_name,
        "metadata": dict(info.metadata),
        "created_at": _rfc3339(info.created_at),
        "updated_at": _rfc3339(info.updated_at or info.created_at),
        "archived_at": _rfc3339(info.archived_at),
    }


def shown_credential(info: CredentialInfo) -> dict[str, Any]:
    """A credential without its secret: `auth` names only what it is for."""
    auth = (
        {"type": "static_bearer", "mcp_server_url": info.match}
        if info.type == "static_bearer"
        else {"type": info.type, "git_host": info.match}
    )
    return {
        "type": "vault_credential",
        "id": info.id,
        "vault_id": info.vault_id,
        "display_name": info.display_name,
        "metadata": dict(info.metadata),
        "auth": auth,
        "created_at": _rfc3339(info.created_at),
        "updated_at": _rfc3339(info.updated_at or info.created_at),
        "archived_at": _rfc3339(info.archived_at),
    }


def _service(request: Request) -> VaultService:
    return runtime(request).vault_service


# Vaults ----------------------------------------------------------------------------------------------------


@endpoint
async def create_vault(request: Request) -> Response:
    body = await read_body(request, VaultCreate)
    return json_response(shown_vault(await _service(request).create_vault(body.display_name, body.metadata or {})))


@endpoint
async def retrieve_vault(request: Request) -> Response:
    return json_response(shown_vault(await _service(request).vault(path_id(request, "vault_id"))))


@endpoint
async def list_vaults(request: Request) -> Response:
    query = read_query(request, ListQuery)
    listed = await _service(request).page_vaults(query.limit, query.page, query.include_archived)
    return json_response(page([shown_vault(v) for v in listed.items], listed.next_cursor))


@endpoint
async def update_vault(request: Request) -> Response:
    body = await read_body(request, VaultUpdate)
    info = await _service(request).update_vault(path_id(request, "vault_id"), body.display_name, body.metadata)
    return json_response(shown_vault(info))


@endpoint
async def archive_vault(request: Request) -> Response:
    return json_response(shown_vault(await _service(request).archive_vault(path_id(request, "vault_id"))))


@endpoint
async def delete_vault(request: Request) -> Response:
    deleted = await _service(request).delete(path_id(request, "vault_id"))
    return json_response({"id": deleted.id, "type": "vault_deleted"})


# Credentials -----------------------------------------------------------------------------------------------


@endpoint
async def create_credential(request: Request) -> Response:
    body = await read_body(request, CredentialCreate)
    auth = body.auth
    assert isinstance(auth, StaticBearerCreate)  # the other types are refused while parsing
    secret = Secret("token", auth.token.get_secret_value())
    info = await _service(request).add_credential(
        path_id(request, "vault_id"),
        "static_bearer",
        auth.mcp_server_url,
        secret,
        body.display_name,
        body.metadata or {},
    )
    return json_response(shown_credential(info))


@endpoint
async def retrieve_credential(request: Request) -> Response:
    info = await _service(request).credential(path_id(request, "vault_id"), path_id(request, "credential_id"))
    return json_response(shown_credential(info))


@endpoint
async def list_credentials(request: Request) -> Response:
    query = read_query(request, ListQuery)
    listed = await _service(request).page_credentials(
        path_id(request, "vault_id"), query.limit, query.page, query.include_archived
    )
    return json_response(page([shown_credential(c) for c in listed.items], listed.next_cursor))


@endpoint
async def update_credential(request: Request) -> Response:
    body = await read_body(request, CredentialUpdate)
    token = body.auth.token if isinstance(body.auth, StaticBearerUpdate) else None
    secret = None if token is None else Secret("token", token.get_secret_value())
    display_name = body.display_name
    if "display_name" in body.model_fields_set and display_name is None:
        display_name = ""  # an explicit null clears the name
    info = await _service(request).update_credential(
        path_id(request, "vault_id"), path_id(request, "credential_id"), display_name, body.metadata, secret
    )
    return json_response(shown_credential(info))


@endpoint
async def archive_credential(request: Request) -> Response:
    info = await _service(request).archive_credential(path_id(request, "vault_id"), path_id(request, "credential_id"))
    return json_response(shown_credential(info))


@endpoint
async def delete_credential(request: Request) -> Response:
    deleted = await _service(request).delete_credential(path_id(request, "vault_id"), path_id(request, "credential_id"))
    return json_response({"id": deleted.id, "type": "vault_credential_deleted"})


def vault_routes() -> list[BaseRoute]:
    credential = "/vaults/{vault_id}/credentials/{credential_id}"
    return [
        Route("/vaults", create_vault, methods=["POST"]),
        Route("/vaults", list_vaults, methods=["GET"]),
        Route("/vaults/{vault_id}", retrieve_vault, methods=["GET"]),
        Route("/vaults/{vault_id}", update_vault, methods=["POST"]),
        Route("/vaults/{vault_id}", delete_vault, methods=["DELETE"]),
        Route("/vaults/{vault_id}/archive", archive_vault, methods=["POST"]),
        Route("/vaults/{vault_id}/credentials", create_credential, methods=["POST"]),
        Route("/vaults/{vault_id}/credentials", list_credentials, methods=["GET"]),
        Route(credential, retrieve_credential, methods=["GET"]),
        Route(credential, update_credential, methods=["POST"]),
        Route(credential, delete_credential, methods=["DELETE"]),
        Route(f"{credential}/archive", archive_credential, methods=["POST"]),
    ]
