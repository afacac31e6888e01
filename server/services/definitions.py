"""Agents and environments: the reusable definitions sessions are created from.

Agents are versioned: every change makes a new immutable version and a
session pins the version it started with. Environments are edited in place;
a session snapshots its environment when it is created, so an edit reaches
only sessions created after it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Protocol

from pydantic import BaseModel, Field, ValidationError

from server.core.agents import (
    FULL_TOOLSET,
    MAX_VERSION,
    Agent,
    AgentTool,
    McpServer,
    ModelConfig,
    ModelId,
    SkillRef,
    check_agent_definition,
    check_skill_refs,
)
from server.core.blocking import in_thread, point_read
from server.core.common import apply_metadata_patch, now_rfc3339
from server.core.environments import Environment, EnvironmentSpec, Networking, Packages, Resources
from server.core.errors import ConflictError, InvalidRequestError
from server.core.ids import new_id
from server.core.models import Providers
from server.core.pagination import NEXT_CURSOR, PUBLISHED_AS_OBJECTS, Listing, check_cursor, page_cursor
from server.core.validation import problem_lines
from server.services.skills import SkillService
from server.store.ports import DefinitionStore


class WarmPools(Protocol):
    """Where an environment's `warm_pool` takes effect (the sandbox backend's `keep_warm`)."""

    def keep_warm(self, owner: str, environment: EnvironmentSpec, size: int) -> None: ...


__all__ = ["AgentChanges", "AgentList", "Definitions", "EnvironmentChanges", "EnvironmentList"]


class AgentList(Listing):
    agents: Annotated[list[Agent], PUBLISHED_AS_OBJECTS] = Field(
        description="Agent objects, as get_agent returns them."
    )
    next_cursor: str | None = Field(description=NEXT_CURSOR)


class EnvironmentList(Listing):
    environments: Annotated[list[Environment], PUBLISHED_AS_OBJECTS] = Field(
        description="Environment objects, as get_environment returns them."
    )
    next_cursor: str | None = Field(description=NEXT_CURSOR)


class AgentChanges(BaseModel):
    """Fields of create_agent/update_agent; None means 'not given'."""

    name: str | None = None
    model: ModelId | ModelConfig | None = None
    system: str | None = None
    description: str | None = None
    tools: list[AgentTool] | None = None
    mcp_servers: list[McpServer] | None = None
    metadata: dict[str, str | None] | None = None
    skills: list[SkillRef] | None = None


class EnvironmentChanges(BaseModel):
    """Fields of create_environment/update_environment; None means 'not given'."""

    name: str | None = None
    description: str | None = None
    image: str | None = None
    packages: Packages | None = None
    networking: Networking | None = None
    resources: Resources | None = None
    env: dict[str, str] | None = None
    metadata: dict[str, str | None] | None = None
    warm_pool: int | None = None


class Definitions:
    """Creates, edits and lists agents and environments."""

    def __init__(
        self,
        store: DefinitionStore,
        default_model: str,
        providers: Providers | None = None,
        *,
        warm: WarmPools | None = None,
        default_image: str | None = None,
        skills: SkillService | None = None,
    ) -> None:
        self._store = store
        self._skills = skills
        self._default_model = default_model
        self._providers = providers or Providers()
        self._warm = warm
        self._default_image = default_image  # what a session of an environment naming no image runs

    def _keep_warm(self, environment: Environment, size: int) -> None:
        """Tells the sandboxes how many to keep started for `environment`'s sessions (0: none)."""
        if self._warm is None:
            return
        spec = environment.spec()  # as a session snapshots it, so the pool's definition is the session's
        self._warm.keep_warm(environment.id, spec.model_copy(update={"image": spec.image or self._default_image}), size)

    async def keep_pools_warm(self) -> None:
        """Starts the warm pools of the environments marked for one (at start-up)."""
        before: str | None = None
        while True:
            page = await in_thread(self._store.list_environments, 100, before, False)
            for environment in page:
                if environment.warm_pool:
                    self._keep_warm(environment, environment.warm_pool)
            if len(page) < 100:
                return
            before = page[-1].id

    # Agents ---------------------------------------------------------------------------------------------

    async def create_agent(self, changes: AgentChanges) -> Agent:
        if not changes.name:
            raise InvalidRequestError("an agent needs a name")
        now = now_rfc3339()
        agent = _validated_agent(
            {
                "id": new_id("agent"),
                "version": 1,
                "name": changes.name,
                "description": changes.description or None,
                "model": self._model(changes.model or self._default_model),
                "system": changes.system or None,
                "tools": FULL_TOOLSET if changes.tools is None else changes.tools,
                "mcp_servers": changes.mcp_servers or [],
                "skills": await self._skill_refs(changes.skills or []),
                "metadata": _metadata({}, changes.metadata or {}),
                "created_at": now,
                "updated_at": now,
            }
        )
        await in_thread(self._store.insert_agent, agent)
        return agent

    async def update_agent(self, agent_id: str, expected_version: int | None, changes: AgentChanges) -> Agent:
        current = await self.get_agent(agent_id)
        if current.archived_at is not None:
            raise ConflictError(f"agent {agent_id!r} is archived; create a new agent instead")
        if expected_version is not None and expected_version != current.version:
            raise ConflictError(
                f"agent {agent_id!r} is at version {current.version}, not {expected_version}; get_agent and retry"
            )
        fields = current.model_dump(exclude={"archived_at"})
        given = changes.model_dump(exclude_none=True, exclude={"metadata", "model", "skills"})
        for key in ("system", "description"):
            if key in given and given[key] == "":
                given[key] = None  # an empty string clears the field
        fields.update(given)
        if changes.model is not None:
            fields["model"] = self._model(changes.model)
        if changes.metadata is not None:
            fields["metadata"] = _metadata(current.metadata, changes.metadata)
        if changes.skills is not None:
            fields["skills"] = await self._skill_refs(changes.skills)
        candidate = _validated_agent(fields)
        if candidate == current:
            return current  # nothing changed: no new version
        now = now_rfc3339()
        updated = candidate.model_copy(update={"version": current.version + 1, "updated_at": now})
        await in_thread(self._store.add_agent_version, updated)
        return updated

    async def _skill_refs(self, refs: list[SkillRef]) -> list[SkillRef]:
        """The skills by id, each one known (and its version, if pinned); the rest is `check_skill_refs`'."""
        if not refs:
            return []
        if self._skills is None:
            raise InvalidRequestError("this server keeps no skills; remove `skills`")
        return await self._skills.resolve(refs, pin=False)

    def _model(self, model: str | ModelConfig) -> ModelConfig:
        """The model, once a provider is known to serve it (an unknown prefix fails here, not at the first turn)."""
        config = ModelConfig(id=model) if isinstance(model, str) else model
        self._providers.check(config.id)
        return config

    async def get_agent(self, agent_id: str, version: int | None = None) -> Agent:
        return await point_read(self._store, self._store.get_agent, agent_id, version)

    async def list_agents(
        self,
        limit: int,
        cursor: str | None,
        include_archived: bool,
        created_gte: datetime | None = None,
        created_lte: datetime | None = None,
    ) -> AgentList:
        """Newest first; `created_gte`/`created_lte` bound the creation time (inclusive, to the millisecond)."""
        before = check_cursor(cursor, "agent")
        bounds = (_rfc3339_ms(created_gte), _rfc3339_ms(created_lte))
        agents = await in_thread(self._store.list_agents, limit + 1, before, include_archived, *bounds)
        return AgentList(agents=agents[:limit], next_cursor=page_cursor([a.id for a in agents], limit))

    async def list_agent_versions(self, agent_id: str, limit: int, cursor: str | None) -> AgentList:
        """Every version of one agent, newest first; the cursor is the last version number shown."""
        if cursor is not None and not (cursor.isdigit() and 1 <= int(cursor) <= MAX_VERSION):
            raise InvalidRequestError(f"cursor {cursor!r} is not one this server made; pass a next_page back unchanged")
        below = int(cursor) if cursor is not None else None
        versions = await in_thread(self._store.list_agent_versions, agent_id, limit + 1, below)
        more = len(versions) > limit
        return AgentList(agents=versions[:limit], next_cursor=str(versions[limit - 1].version) if more else None)

    async def archive_agent(self, agent_id: str) -> Agent:
        await self.get_agent(agent_id)
        await in_thread(self._store.archive_agent, agent_id, now_rfc3339())
        return await self.get_agent(agent_id)

    # Environments ---------------------------------------------------------------------------------------

    async def create_environment(self, changes: EnvironmentChanges) -> Environment:
        if not changes.name:
            raise InvalidRequestError("an environment needs a name")
        now = now_rfc3339()
        fields = changes.model_dump(exclude_none=True, exclude={"metadata"})
        env = _validated_environment(
            {
                **fields,
                "id": new_id("env"),
                "metadata": _metadata({}, changes.metadata or {}),
                "created_at": now,
                "updated_at": now,
            }
        )
        await in_thread(self._store.insert_environment, env)
        if env.warm_pool:
            self._keep_warm(env, env.warm_pool)
        return env

    async def update_environment(self, environment_id: str, changes: EnvironmentChanges) -> Environment:
        current = await self.get_environment(environment_id)
        if current.archived_at is not None:
            raise ConflictError(f"environment {environment_id!r} is archived and read-only; create a new one")
        fields = current.model_dump(exclude={"archived_at"})
        fields.update(changes.model_dump(exclude_none=True, exclude={"metadata"}))
        if changes.description == "":
            fields["description"] = None
        if changes.image == "":
            fields["image"] = None  # back to the server's default image
        if changes.metadata is not None:
            fields["metadata"] = _metadata(current.metadata, changes.metadata)
        candidate = _validated_environment(fields)
        if candidate == current:
            return current
        updated = candidate.model_copy(update={"updated_at": now_rfc3339()})
        await in_thread(self._store.replace_environment, updated)
        if current.warm_pool or updated.warm_pool:
            if current.spec() != updated.spec():  # a changed definition is another pool: the old one retires
                self._keep_warm(current, 0)
            self._keep_warm(updated, updated.warm_pool)
        return updated

    async def get_environment(self, environment_id: str) -> Environment:
        return await point_read(self._store, self._store.get_environment, environment_id)

    async def list_environments(self, limit: int, cursor: str | None, include_archived: bool) -> EnvironmentList:
        before = check_cursor(cursor, "env")
        envs = await in_thread(self._store.list_environments, limit + 1, before, include_archived)
        return EnvironmentList(environments=envs[:limit], next_cursor=page_cursor([e.id for e in envs], limit))

    async def archive_environment(self, environment_id: str) -> Environment:
        current = await self.get_environment(environment_id)
        await in_thread(self._store.archive_environment, environment_id, now_rfc3339())
        self._keep_warm(current, 0)  # no new session can use it
        return await self.get_environment(environment_id)

    async def delete_environment(self, environment_id: str) -> None:
        current = await self.get_environment(environment_id)
        await in_thread(self._store.delete_environment, environment_id)
        self._keep_warm(current, 0)


def _rfc3339_ms(moment: datetime | None) -> str | None:
    """A bound in the store's timestamp form (UTC, milliseconds, `Z`); a naive time is taken as UTC."""
    if moment is None:
        return None
    utc = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return utc.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _metadata(current: dict[str, str], patch: dict[str, str | None]) -> dict[str, str]:
    try:
        return apply_metadata_patch(current, patch)
    except ValueError as exc:
        raise InvalidRequestError(str(exc)) from exc


def _validated_agent(fields: dict[str, object]) -> Agent:
    try:
        agent = Agent.model_validate(fields)
        check_agent_definition(agent.tools, agent.mcp_servers)
        check_skill_refs(agent.tools, agent.skills)
    except (ValidationError, ValueError) as exc:
        raise InvalidRequestError(_plain(exc)) from exc
    return agent


def _validated_environment(fields: dict[str, object]) -> Environment:
    try:
        return Environment.model_validate(fields)
    except ValidationError as exc:
        raise InvalidRequestError(_plain(exc)) from exc


def _plain(exc: Exception) -> str:
    """A validation error as one line per problem, without pydantic's URLs."""
    if isinstance(exc, ValidationError):
        return "; ".join(problem_lines(exc, root="value"))
    return str(exc)
