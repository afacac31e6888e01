"""`/v1/environments`: create, retrieve, list, update, archive, delete.

Our environment is flat (`image`, `packages`, `networking`, `resources`, `env`); the hosted one nests its sandbox
under `config: {type: "cloud", networking, packages}`. This front maps one onto the other, and the choices are:

- `config.type` is `cloud` both ways: this server runs every sandbox itself (Docker), so `self_hosted` (the
  hosted API's bring-your-own-worker mode) is refused with a 400 that says so.
- Packages: apt, npm and pip are installed; cargo, gem and go are refused by name when non-empty, and shown as
  empty lists so the SDK's `BetaPackages` is complete.
- Networking: this server's default is no network at all, shown honestly as `{type: "none"}` (the SDK reads an
  unknown tag as a plain object); `unrestricted` and `limited` (`allowed_hosts`, `allow_package_managers`,
  `allow_mcp_servers`) are as hosted. As in the hosted request shape, `limited`'s fields may be null or omitted:
  on update they keep the values of a current `limited` setting, otherwise they take the defaults.
- Our extensions `image`, `resources` and `env` are accepted inside `config` and shown there.
- On update, omitted fields keep their values, inside `config` too; `packages` replaces whole, and so does
  `networking` but for `limited`'s omitted fields (above).
- Names are unique (the store says so with a 409), as in the hosted API.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from server.core.common import Metadata, MetadataPatch
from server.core.environments import (
    AllowedHosts,
    EnvDescription,
    Environment,
    EnvName,
    EnvVars,
    LimitedNetwork,
    NoNetwork,
    Resources,
    UnrestrictedNetwork,
)
from server.fronts.rest.common import PageQuery, page, path_id, runtime
from server.fronts.rest.wire import ApiError, RequestModel, endpoint, json_response, read_body, read_query
from server.services.definitions import EnvironmentChanges

__all__ = ["environment_routes"]

PackageList = Annotated[list[str], Field(max_length=1_000)]


def _unsupported_manager(value: list[str] | None) -> list[str] | None:
    if value:
        raise ValueError("this server installs apt, npm and pip packages only; leave this manager out")
    return value


Unsupported = Annotated[list[str] | None, AfterValidator(_unsupported_manager)]


class PackagesBody(RequestModel):
    type: Literal["packages"] | None = None
    apt: PackageList | None = None
    pip: PackageList | None = None
    npm: PackageList | None = None
    cargo: Unsupported = None
    gem: Unsupported = None
    go: Unsupported = None


class LimitedNetworkBody(RequestModel):
    """The hosted request shape of `limited`: every field but `type` may be null or omitted (see the module)."""

    type: Literal["limited"]
    allowed_hosts: AllowedHosts | None = None
    allow_package_managers: bool | None = None
    allow_mcp_servers: bool | None = None


NetworkingBody = Annotated[NoNetwork | UnrestrictedNetwork | LimitedNetworkBody, Field(discriminator="type")]
Network = NoNetwork | UnrestrictedNetwork | LimitedNetwork


class CloudConfig(RequestModel):
    type: Literal["cloud"]
    networking: NetworkingBody | None = None
    packages: PackagesBody | None = None
    image: Annotated[str, Field(max_length=255)] | None = Field(
        default=None, description="A Docker image reference; '' on update goes back to the server's default."
    )
    resources: Resources | None = None
    env: EnvVars | None = None


class SelfHostedConfig(RequestModel):
    type: Literal["self_hosted"]


Config = Annotated[CloudConfig | SelfHostedConfig, Field(discriminator="type")]


class EnvironmentCreate(RequestModel):
    name: EnvName
    description: EnvDescription | None = None
    config: Config | None = None
    metadata: Metadata | None = None
    scope: Literal["organization"] | None = None


class EnvironmentUpdate(RequestModel):
    name: EnvName | None = None
    description: EnvDescription | None = None
    config: Config | None = None
    metadata: MetadataPatch | None = None
    scope: Literal["organization"] | None = None


class EnvironmentListQuery(PageQuery):
    include_archived: bool = False


def _config_changes(config: CloudConfig | SelfHostedConfig | None, current: Network | None = None) -> dict[str, Any]:
    """The flat fields `config` sets (those it omits are left out, so an update keeps them); `current` is the
    networking being updated, if any."""
    if config is None:
        return {}
    if isinstance(config, SelfHostedConfig):
        raise ApiError(
            400,
            "invalid_request_error",
            "config.type 'self_hosted' is not supported: this server runs each session's sandbox itself "
            "(Docker); use {'type': 'cloud'}",
        )
    given = config.model_dump(exclude_unset=True, exclude={"type", "packages", "networking"})
    if isinstance(config.networking, LimitedNetworkBody):
        kept = current.model_dump() if isinstance(current, LimitedNetwork) else {}
        given["networking"] = kept | config.networking.model_dump(exclude_none=True)
    elif config.networking is not None:  # null keeps the current setting, like an omitted field
        given["networking"] = config.networking.model_dump()
    if config.packages is not None:
        given["packages"] = config.packages.model_dump(include={"apt", "pip", "npm"}, exclude_none=True)
    return {key: value for key, value in given.items() if value is not None}


def _metadata_patch(patch: dict[str, str | None] | None) -> dict[str, str | None] | None:
    """The API deletes a key set to null or to an empty string."""
    if patch is None:
        return None
    return {key: value or None for key, value in patch.items()}


def shown(env: Environment) -> dict[str, object]:
    """An environment as the API shows it: our sandbox fields nested under `config` (see the module docstring)."""
    fields = env.model_dump(mode="json")
    packages = {"type": "packages", "cargo": [], "gem": [], "go": [], **fields["packages"]}
    config = {"type": "cloud", "networking": fields["networking"], "packages": packages}
    config |= {key: fields[key] for key in ("image", "resources", "env")}
    shared = ("type", "id", "name", "description", "metadata", "created_at", "updated_at", "archived_at")
    return {**{key: fields[key] for key in shared}, "config": config, "scope": None}


@endpoint
async def create(request: Request) -> Response:
    body = await read_body(request, EnvironmentCreate)
    changes = EnvironmentChanges.model_validate(
        {
            "name": body.name,
            "description": body.description,
            "metadata": body.metadata,
            **_config_changes(body.config),
        }
    )
    return json_response(shown(await runtime(request).definitions.create_environment(changes)))


@endpoint
async def retrieve(request: Request) -> Response:
    return json_response(shown(await runtime(request).definitions.get_environment(path_id(request, "environment_id"))))


@endpoint
async def update(request: Request) -> Response:
    body = await read_body(request, EnvironmentUpdate)
    given: dict[str, Any] = {"name": body.name, "metadata": _metadata_patch(body.metadata)}
    if "description" in body.model_fields_set:
        given["description"] = body.description or ""  # null clears it ('' to the service)
    environment_id = path_id(request, "environment_id")
    current = None
    if isinstance(body.config, CloudConfig) and isinstance(body.config.networking, LimitedNetworkBody):
        current = (await runtime(request).definitions.get_environment(environment_id)).networking
    changes = EnvironmentChanges.model_validate({**given, **_config_changes(body.config, current)})
    env = await runtime(request).definitions.update_environment(environment_id, changes)
    return json_response(shown(env))


@endpoint
async def list_environments(request: Request) -> Response:
    query = read_query(request, EnvironmentListQuery)
    listed = await runtime(request).definitions.list_environments(query.limit, query.page, query.include_archived)
    return json_response(page([shown(e) for e in listed.environments], listed.next_cursor))


@endpoint
async def archive(request: Request) -> Response:
    env = await runtime(request).definitions.archive_environment(path_id(request, "environment_id"))
    return json_response(shown(env))


@endpoint
async def delete(request: Request) -> Response:
    environment_id = path_id(request, "environment_id")
    await runtime(request).definitions.delete_environment(environment_id)
    return json_response({"id": environment_id, "type": "environment_deleted"})


def environment_routes() -> list[BaseRoute]:
    return [
        Route("/environments", create, methods=["POST"]),
        Route("/environments", list_environments, methods=["GET"]),
        Route("/environments/{environment_id}", retrieve, methods=["GET"]),
        Route("/environments/{environment_id}", update, methods=["POST"]),
        Route("/environments/{environment_id}", delete, methods=["DELETE"]),
        Route("/environments/{environment_id}/archive", archive, methods=["POST"]),
    ]
