"""`/v1/agents`: create, retrieve (at a version), update (a new version), list, archive, versions.

The hosted API's agent features this server does not have yet (Anthropic's prebuilt skills, multiagent, a
model's `effort`, `speed` and `inference_geo`) are refused with a 400 that says so, rather than stored and
silently ignored; a null or empty value is accepted, so an SDK object sent back unchanged still validates.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Discriminator, Field, StringConstraints, Tag
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
    ModelId,
    SkillRef,
)
from server.core.common import PLAIN_TEXT, MetadataPatch
from server.fronts.rest.common import PageQuery, page, path_id, runtime
from server.fronts.rest.wire import QueryModel, RequestModel, endpoint, json_response, read_body, read_query
from server.services.definitions import AgentChanges

__all__ = ["agent_routes"]

NameText = Annotated[str, StringConstraints(min_length=1, max_length=256), PLAIN_TEXT]
Version = Annotated[int, Field(ge=1, le=MAX_VERSION)]


def _not_yet(feature: str, allowed: object = None) -> AfterValidator:
    """Refuses a hosted-API feature this server lacks, unless the value is empty (null, [], {}) or `allowed`."""

    def check(value: Any) -> Any:
        if value and value != allowed:
            raise ValueError(f"this server does not support {feature} yet; leave it out")
        return value

    return AfterValidator(check)


class ModelBody(RequestModel):
    """`model` as an object: only `id` takes effect here."""

    id: ModelId
    effort: Annotated[Any, _not_yet("a model's effort setting")] = None
    inference_geo: Annotated[Any, _not_yet("inference_geo")] = None
    speed: Annotated[Any, _not_yet("a speed other than 'standard'", allowed="standard")] = None


ModelField = Annotated[
    Annotated[ModelId, Tag("id")] | Annotated[ModelBody, Tag("object")],
    Discriminator(lambda value: "id" if isinstance(value, str) else "object"),
]
"""A model id, or `{id, ...}`: one or the other, so an error names the form that was sent."""


class SkillBody(RequestModel):
    """An agent's skill as the hosted API takes it: `version` is a string there ('3' or 'latest')."""

    type: Annotated[Literal["custom", "anthropic"], _not_yet("Anthropic's prebuilt skills", allowed="custom")]
    skill_id: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    version: Annotated[str, StringConstraints(pattern=r"^(latest|[1-9][0-9]{0,9})$")] | Version | None = None

    def ref(self) -> SkillRef:
        version = None if self.version in (None, "latest") else int(self.version)
        return SkillRef(type="custom", skill_id=self.skill_id, version=version)


def shown_skills(skills: list[SkillRef]) -> list[dict[str, object]]:
    """An agent's or a session's skills as the hosted API shows them (a version is a string; null: latest)."""
    return [
        {"type": "custom", "skill_id": s.skill_id, "version": None if s.version is None else str(s.version)}
        for s in skills
    ]


class AgentBody(RequestModel):
    name: NameText | None = None
    model: ModelField | None = None
    system: Annotated[str, StringConstraints(max_length=MAX_SYSTEM_CHARS)] | None = None
    description: Annotated[str, StringConstraints(max_length=MAX_DESCRIPTION_CHARS), PLAIN_TEXT] | None = None
    tools: list[AgentTool] | None = None
    mcp_servers: list[McpServer] | None = None
    metadata: MetadataPatch | None = None
    skills: list[SkillBody] | None = None
    multiagent: Annotated[Any, _not_yet("multiagent orchestration")] = None
    execution_identity: dict[Literal["type"], Literal["service_account"]] | None = None

    def changes(self) -> AgentChanges:
        """The service's changes: an explicit null clears a field, as the API says ('' or [] to the service)."""
        given = self.model_dump(exclude_unset=True, exclude={"version", "skills", "multiagent", "execution_identity"})
        if "skills" in self.model_fields_set:
            given["skills"] = [s.ref() for s in self.skills or []]  # null clears, as [] does
        if isinstance(self.model, ModelBody):
            given["model"] = {"id": self.model.id}
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
    created_at_gte: datetime | None = None
    created_at_lte: datetime | None = None


def shown(agent: Agent) -> dict[str, object]:
    """An agent as the API shows it: the fields this server has, and the hosted API's fields it lacks as empty."""
    fields = agent.model_dump(mode="json")
    model = {**fields["model"], "effort": None, "inference_geo": None, "speed": "standard"}
    return {
        **fields,
        "model": model,
        "skills": shown_skills(agent.skills),
        "multiagent": None,
        "execution_identity": {"type": "service_account"},
    }


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
    listed = await runtime(request).definitions.list_agents(
        query.limit, query.page, query.include_archived, query.created_at_gte, query.created_at_lte
    )
    return json_response(page([shown(a) for a in listed.agents], listed.next_cursor))


@endpoint
async def list_versions(request: Request) -> Response:
    query = read_query(request, PageQuery)
    listed = await runtime(request).definitions.list_agent_versions(
        path_id(request, "agent_id"), query.limit, query.page
    )
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
        Route("/agents/{agent_id}/versions", list_versions, methods=["GET"]),
    ]
