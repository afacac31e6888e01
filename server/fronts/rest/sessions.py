"""`/v1/sessions`: create (an agent by id, pinned, or with overrides; initial events), retrieve, list (filters,
order, cursors both ways), update (title, metadata), archive, delete.

`environment_id` may be omitted: the session then runs in this server's default environment (the configured
image, no network), which the hosted API, where it is required, does not have.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import Field, JsonValue, StringConstraints
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from server.core.agents import MAX_SYSTEM_CHARS, MAX_VERSION, AgentTool, McpServer, ModelConfig, ModelId
from server.core.common import PLAIN_TEXT, Metadata, MetadataPatch
from server.core.ids import AgentId, EnvironmentId, VaultId
from server.core.sessions import Session, SessionStatus
from server.fronts.rest.agents import SkillBody, shown_skills
from server.fronts.rest.common import page, path_id, runtime
from server.fronts.rest.events import InitialEvents, user_events
from server.fronts.rest.listing import CursorQuery
from server.fronts.rest.wire import ApiError, RequestModel, endpoint, json_response, read_body, read_query
from server.services.sessions import MAX_TITLE_CHARS, NewSession, SessionChanges, SessionQuery

__all__ = ["session_routes", "shown"]

Version = Annotated[int, Field(ge=1, le=MAX_VERSION)]
Title = Annotated[str, StringConstraints(max_length=MAX_TITLE_CHARS), PLAIN_TEXT]
Order = Literal["asc", "desc"]
MAX_SESSION_VAULTS = 16
MAX_SESSION_RESOURCES = 1_000


class AgentPin(RequestModel):
    type: Literal["agent"]
    id: AgentId
    version: Version | None = None


class AgentWithOverrides(RequestModel):
    """The agent with some fields replaced for this session: a value given replaces the agent's whole, null or
    [] clears it, an omitted one is the agent's."""

    type: Literal["agent_with_overrides"]
    id: AgentId
    version: Version | None = None
    model: ModelId | ModelConfig | None = None
    system: Annotated[str, StringConstraints(max_length=MAX_SYSTEM_CHARS)] | None = None
    tools: list[AgentTool] | None = None
    mcp_servers: list[McpServer] | None = None
    skills: list[SkillBody] | None = None


class SessionCreate(RequestModel):
    agent: AgentId | Annotated[AgentPin | AgentWithOverrides, Field(discriminator="type")]
    environment_id: EnvironmentId | None = None
    title: Title | None = None
    metadata: Metadata | None = None
    resources: Annotated[list[JsonValue], Field(max_length=MAX_SESSION_RESOURCES)] | None = None
    vault_ids: Annotated[list[VaultId], Field(max_length=MAX_SESSION_VAULTS)] | None = None
    initial_events: InitialEvents | None = None
    budget: JsonValue = None

    def new_session(self) -> NewSession:
        """The service's request; `resources` go through as sent, for the service's own types to check."""
        if self.budget is not None:
            raise _unsupported("budget", "sessions here have no spend limit; omit it")
        agent = self.agent
        fields: dict[str, Any] = {"agent_id": agent if isinstance(agent, str) else agent.id}
        if not isinstance(agent, str):
            fields["agent_version"] = agent.version
        if isinstance(agent, AgentWithOverrides):
            fields.update(_overrides(agent))
        given = self.model_dump(include={"environment_id", "title", "metadata", "vault_ids"}, exclude_none=True)
        return NewSession.model_validate({**fields, **given, "resources": self.resources or []})


def _overrides(agent: AgentWithOverrides) -> dict[str, Any]:
    given = agent.model_fields_set
    fields: dict[str, Any] = {}
    if "model" in given:
        if agent.model is None:
            raise ApiError(400, "invalid_request_error", "agent.model: a session needs a model (agent_model_required)")
        fields["model"] = agent.model if isinstance(agent.model, str) else agent.model.id
    if "system" in given:
        fields["system"] = agent.system or ""  # the service reads "" as cleared
    if "tools" in given:
        fields["tools"] = agent.tools or []
    if "mcp_servers" in given:
        fields["mcp_servers"] = agent.mcp_servers or []
    if "skills" in given:
        fields["skills"] = [s.ref() for s in agent.skills or []]
    return fields


class SessionUpdate(RequestModel):
    title: Title | None = None
    metadata: MetadataPatch | None = None
    agent: JsonValue = None
    budget: JsonValue = None
    vault_ids: JsonValue = None

    def changes(self) -> SessionChanges:
        for name in ("agent", "budget", "vault_ids"):
            if name in self.model_fields_set:
                raise _unsupported(name, "a session's agent, budget and vaults are fixed when it is created")
        return SessionChanges.model_validate(self.model_dump(include={"title", "metadata"}, exclude_unset=True))


def _unsupported(name: str, why: str) -> ApiError:
    return ApiError(400, "invalid_request_error", f"{name}: this server does not support setting it ({why})")


class SessionListQuery(CursorQuery):
    order: Order = "desc"
    agent_id: AgentId | None = None
    agent_version: Version | None = None
    include_archived: bool = False
    statuses: list[SessionStatus] | None = None

    def query(self) -> SessionQuery:
        return SessionQuery(
            limit=self.limit,
            page=self.page,
            order=self.order,
            statuses=tuple(self.statuses or ()),
            agent_id=self.agent_id,
            agent_version=self.agent_version,
            created_at=self.created_at(),
            include_archived=self.include_archived,
        )


def shown(session: Session) -> dict[str, Any]:
    """A session as the API shows it: this server's fields, and the hosted API's fields it lacks as empty."""
    body = session.model_dump(mode="json")
    body["agent"].update(
        skills=shown_skills(session.agent.skills), multiagent=None, execution_identity={"type": "service_account"}
    )
    body["stats"].update(active_seconds=None, duration_seconds=_duration_s(session))
    body["usage"].update(cache_creation=None, server_tool_use=None, list_cost=None, active_seconds=None)
    return {**body, "budget": None, "outcome_evaluations": [], "deployment_id": None}


def _duration_s(session: Session) -> float:
    """Seconds since creation; an archived session's stop at its archiving."""
    start = datetime.fromisoformat(session.created_at)
    end = datetime.fromisoformat(session.archived_at) if session.archived_at else datetime.now(UTC)
    return round((end - start).total_seconds(), 3)


@endpoint
async def create(request: Request) -> Response:
    body = await read_body(request, SessionCreate)
    new = body.new_session()
    initial = user_events(body.initial_events or [], "initial_events", only="user.message")
    session = await runtime(request).lifecycle.create(new, initial_events=initial)
    return json_response(shown(session))


@endpoint
async def retrieve(request: Request) -> Response:
    return json_response(shown(await runtime(request).sessions.get(path_id(request, "session_id"))))


@endpoint
async def list_sessions(request: Request) -> Response:
    query = read_query(request, SessionListQuery).query()
    listed = await runtime(request).sessions.list_sessions(query)
    return json_response(page([shown(s) for s in listed.items], listed.next_page, prev_page=listed.prev_page))


@endpoint
async def update(request: Request) -> Response:
    changes = (await read_body(request, SessionUpdate)).changes()
    return json_response(shown(await runtime(request).sessions.update(path_id(request, "session_id"), changes)))


@endpoint
async def archive(request: Request) -> Response:
    return json_response(shown(await runtime(request).lifecycle.archive(path_id(request, "session_id"))))


@endpoint
async def delete(request: Request) -> Response:
    deleted = await runtime(request).lifecycle.delete(path_id(request, "session_id"))
    return json_response({"id": deleted.id, "type": deleted.type})


def session_routes() -> list[BaseRoute]:
    return [
        Route("/sessions", create, methods=["POST"]),
        Route("/sessions", list_sessions, methods=["GET"]),
        Route("/sessions/{session_id}", retrieve, methods=["GET"]),
        Route("/sessions/{session_id}", update, methods=["POST"]),
        Route("/sessions/{session_id}", delete, methods=["DELETE"]),
        Route("/sessions/{session_id}/archive", archive, methods=["POST"]),
    ]
