"""MCP tools for environments: what a session's sandbox is built from."""

from __future__ import annotations

from typing import Annotated, Literal

from mcp.types import CallToolResult
from pydantic import BaseModel, Field, StrictInt

from server.core.common import MetadataPatch
from server.core.config import MAX_WARM_POOL
from server.core.environments import EnvDescription, Environment, EnvName, EnvVars, Networking, Packages, Resources
from server.core.ids import EnvironmentId
from server.fronts.mcp.registry import Registry
from server.fronts.mcp.tools.common import (
    DESTRUCTIVE,
    READ_ONLY,
    WRITE,
    Ctx,
    Cursor,
    IncludeArchived,
    Limit,
    reply,
    runtime,
)
from server.services.definitions import EnvironmentChanges, EnvironmentList

__all__ = ["register_environment_tools"]

Image = Annotated[
    str | None,
    Field(
        default=None,
        max_length=255,
        description="Docker image, e.g. 'python:3.12-slim'. Default: the server's sandbox image ('' on update resets).",
    ),
]
PackagesArg = Annotated[
    Packages | None,
    Field(default=None, description="{apt:[...], pip:[...], npm:[...]}, installed once into a cached image."),
]
NetworkingArg = Annotated[
    Networking | None,
    Field(
        default=None,
        description="{type:'none'} (default: no network), {type:'unrestricted'}, or {type:'limited', "
        "allowed_hosts:['api.example.com', '*.example.org', 'host:8443'], allow_package_managers?, "
        "allow_mcp_servers?}: only those hosts, through the server's egress proxy. Under limited, packages "
        "need allow_package_managers: true.",
    ),
]
ResourcesArg = Annotated[
    Resources | None, Field(default=None, description="{cpus?, memory_mb?, disk_mb?} limits for the sandbox.")
]
EnvArg = Annotated[EnvVars | None, Field(default=None, description="Non-secret environment variables for the sandbox.")]
WarmPoolArg = Annotated[
    StrictInt | None,
    Field(
        default=None,
        ge=0,
        le=MAX_WARM_POOL,
        description=f"0-{MAX_WARM_POOL}: containers kept started for new sessions of this environment, so their "
        "first tool call does not wait for one (default 0). Not with limited networking.",
    ),
]
Description = Annotated[EnvDescription | None, Field(default=None)]
Metadata = Annotated[MetadataPatch | None, Field(default=None)]


class EnvironmentDeleted(BaseModel):
    id: str
    type: Literal["environment_deleted"] = "environment_deleted"
    deleted: Literal[True] = True


def register_environment_tools(mcp: Registry) -> None:
    @mcp.tool(annotations=WRITE)
    async def create_environment(
        ctx: Ctx,
        name: Annotated[EnvName, Field(description="Unique name.")],
        description: Description = None,
        image: Image = None,
        packages: PackagesArg = None,
        networking: NetworkingArg = None,
        resources: ResourcesArg = None,
        env: EnvArg = None,
        metadata: Metadata = None,
        warm_pool: WarmPoolArg = None,
    ) -> Annotated[CallToolResult, Environment]:
        """Define a sandbox environment: image, packages, networking, resource limits, env variables.

        Pass its id to create_session; sessions snapshot it, so later edits reach only new sessions."""
        changes = EnvironmentChanges(
            name=name,
            description=description,
            image=image,
            packages=packages,
            networking=networking,
            resources=resources,
            env=env,
            metadata=metadata,
            warm_pool=warm_pool,
        )
        environment = await runtime(ctx).definitions.create_environment(changes)
        return reply(environment, f"Created environment {environment.id} ({environment.name!r}).")

    @mcp.tool(annotations=WRITE)
    async def update_environment(
        ctx: Ctx,
        environment_id: EnvironmentId,
        name: Annotated[EnvName | None, Field(default=None)] = None,
        description: Description = None,
        image: Image = None,
        packages: PackagesArg = None,
        networking: NetworkingArg = None,
        resources: ResourcesArg = None,
        env: EnvArg = None,
        metadata: Metadata = None,
        warm_pool: WarmPoolArg = None,
    ) -> Annotated[CallToolResult, Environment]:
        """Change an environment; omitted fields are kept. Only sessions created afterwards see the change."""
        changes = EnvironmentChanges(
            name=name,
            description=description,
            image=image,
            packages=packages,
            networking=networking,
            resources=resources,
            env=env,
            metadata=metadata,
            warm_pool=warm_pool,
        )
        environment = await runtime(ctx).definitions.update_environment(environment_id, changes)
        return reply(environment, f"Updated environment {environment.id}.")

    @mcp.tool(annotations=READ_ONLY)
    async def get_environment(ctx: Ctx, environment_id: EnvironmentId) -> Annotated[CallToolResult, Environment]:
        """Get an environment."""
        environment = await runtime(ctx).definitions.get_environment(environment_id)
        return reply(environment, f"Environment {environment.id} ({environment.name!r}).")

    @mcp.tool(annotations=READ_ONLY)
    async def list_environments(
        ctx: Ctx, limit: Limit = 20, cursor: Cursor = None, include_archived: IncludeArchived = False
    ) -> Annotated[CallToolResult, EnvironmentList]:
        """List environments, newest first."""
        page = await runtime(ctx).definitions.list_environments(limit, cursor, include_archived)
        more = "; more with next_cursor" if page.next_cursor else ""
        return reply(page, f"{len(page.environments)} environment(s){more}.")

    @mcp.tool(annotations=DESTRUCTIVE)
    async def archive_environment(ctx: Ctx, environment_id: EnvironmentId) -> Annotated[CallToolResult, Environment]:
        """Archive an environment: it becomes read-only and new sessions cannot use it."""
        environment = await runtime(ctx).definitions.archive_environment(environment_id)
        return reply(environment, f"Archived environment {environment.id}.")

    @mcp.tool(annotations=DESTRUCTIVE)
    async def delete_environment(
        ctx: Ctx, environment_id: EnvironmentId
    ) -> Annotated[CallToolResult, EnvironmentDeleted]:
        """Delete an environment. Sessions created from it keep their snapshot and go on working."""
        await runtime(ctx).definitions.delete_environment(environment_id)
        return reply(EnvironmentDeleted(id=environment_id), f"Deleted environment {environment_id}.")
