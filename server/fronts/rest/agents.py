"""`/v1/agents`: create, retrieve (at a version), update (a new version), list, archive, versions."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StringConstraints
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from server.core.agents import (
    MAX_DESCRIPTION_CHARS,
    MAX_SYSTEM_CHARS,
    MAX_VERSION,
    Agent,
    AgentTool,
    McpServer,
    ModelConfig,
    ModelId,
)
from server.core.common import PLAIN_TEXT, MetadataPatch
from server.fronts.rest.common import PageQuery, page, path_id, runtime
from server.fronts.rest.wire import QueryModel, RequestModel, endpoint, json_response, read_body, read_query
from server.services.definitions import AgentChanges

__all__ = ["agent_routes"]

NameText = Annotated[str, StringConstraints(min_length=1, max_length=256), PLAIN_TEXT]
Version = Annotated[int, Field(ge=1, le=MAX_VERSION)]


class AgentBody(RequestModel):
    name: NameText | None = None
    model: ModelId | ModelConfig | None = None
    system: Annotated[str, StringConstraints(max_length=MAX_SYSTEM_CHARS)] | None = None
    description: Annotated[str, StringConstraints(max_length=MAX_DESCRIPTION_CHARS), PLAIN_TEXT] | None = None
    tools: list[AgentTool] | None = None
    mcp_servers: list[McpServer] | None = None
    metadata: MetadataPatch | None = None

    def changes(self) -> AgentChanges:
        """The service's changes: an explicit null clears a field, as the API says ('' or [] to the service)."""
        given = self.model_dump(exclude_unset=True, exclude={"version"})
        cleared = {"system": "", "description": "", "tools": [], "mcp_servers": []}
        for key, empty in cleared.items():
            if key in given and given[key] is None:
                given[key] = empty
        return AgentChanges.model_validate(given)


class AgentUpdate(AgentBody):
    version: Version | None = None


class VersionQuery(QueryModel):
    version: Version | None = None


class AgentListQuery(PageQuery):
    include_archived: bool = False


def shown(agent: Agent) -> dict[str, object]:
    """An agent as the API shows it: the fields this server has, and the hosted API's fields it lacks as empty."""
    return {**agent.model_dump(mode="json"), "skills": [], "multiagent": None}


@endpoint
async def create(request: Request) -> Response:
    body = await read_body(request, AgentBody)
    return json_response(shown(await runtime(request).definitions.create_agent(body.changes())))


@endpoint
async def retrieve(request: Request) -> Response:
    query = read_query(request, VersionQuery)
    agent = await runtime(request).definitions.get_agent(path_id(request, "agent_id"), query.version)
    return json_response(shown(agent))


@endpoint
async def update(request: Request) -> Response:
    body = await read_body(request, AgentUpdate)
    agent = await runtime(request).definitions.update_agent(path_id(request, "agent_id"), body.version, body.changes())
    return json_response(shown(agent))


@endpoint
async def list_agents(request: Request) -> Response:
    query = read_query(request, AgentListQuery)
    listed = await runtime(request).definitions.list_agents(query.limit, query.page, query.include_archived)
    return json_response(page([shown(a) for a in listed.agents], listed.next_cursor))


@endpoint
async def archive(request: Request) -> Response:
    return json_response(shown(await runtime(request).definitions.archive_agent(path_id(request, "agent_id"))))


def agent_routes() -> list[BaseRoute]:
    return [
        Route("/agents", create, methods=["POST"]),
        Route("/agents", list_agents, methods=["GET"]),
        Route("/agents/{agent_id}", retrieve, methods=["GET"]),
        Route("/agents/{agent_id}", update, methods=["POST"]),
        Route("/agents/{agent_id}/archive", archive, methods=["POST"]),
    ]
