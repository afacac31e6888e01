"""`client.beta.agents` against the server: every call through the official SDK, sync and async."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import anthropic
import pytest
from anthropic.types.beta import BetaManagedAgentsAgent
from rest_serving import RestServer

MODEL = "claude-sonnet-4-6"


def test_agent_lifecycle_through_the_sync_sdk(rest: RestServer) -> None:
    client = rest.client()
    agent = client.beta.agents.create(name="coder", model=MODEL, system="Be brief.")
    assert agent.id.startswith("agent_")
    assert agent.version == 1
    assert agent.model.id == MODEL

    updated = client.beta.agents.update(agent.id, version=1, system="Be very brief.")
    assert updated.version == 2
    assert updated.system == "Be very brief."
    assert client.beta.agents.retrieve(agent.id, version=1).system == "Be brief."

    with pytest.raises(anthropic.ConflictError):
        client.beta.agents.update(agent.id, version=1, system="stale")
    with pytest.raises(anthropic.NotFoundError):
        client.beta.agents.retrieve("agent_01JD7Y3Q4K2W8T6X0V5N9R1M3P")
    with pytest.raises(anthropic.NotFoundError):
        client.beta.agents.retrieve(agent.id, version=9)
    with pytest.raises(anthropic.BadRequestError) as bad:
        client.beta.agents.create(name="", model=MODEL)
    assert "name" in str(bad.value)

    archived = client.beta.agents.archive(agent.id)
    assert archived.archived_at is not None
    with pytest.raises(anthropic.ConflictError):
        client.beta.agents.update(agent.id, system="after archive")
    assert [a.id for a in client.beta.agents.list()] == []
    assert [a.id for a in client.beta.agents.list(include_archived=True)] == [agent.id]


def test_an_agent_carries_every_field_of_the_sdk_type(rest: RestServer) -> None:
    client = rest.client()
    raw = client.beta.agents.with_raw_response.create(name="full", model={"id": MODEL, "speed": "standard"})
    body = raw.http_response.json()
    assert set(BetaManagedAgentsAgent.model_fields) <= set(body)
    agent = raw.parse()
    assert agent.execution_identity.type == "service_account"
    assert (agent.skills, agent.multiagent, agent.model.speed) == ([], None, "standard")
    # An object read back from the server is accepted unchanged (its empty extras included).
    again = client.beta.agents.update(agent.id, model=agent.model.to_dict(), skills=[], metadata={"k": "v"})  # type: ignore[arg-type]
    assert again.version == 2
    assert again.metadata == {"k": "v"}


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"skills": [{"type": "anthropic", "skill_id": "xlsx"}]}, "skills"),
        ({"multiagent": {"type": "coordinator", "agents": []}}, "multiagent"),
        ({"model": {"id": MODEL, "effort": "high"}}, "effort"),
        ({"model": {"id": MODEL, "speed": "fast"}}, "speed"),
        ({"model": {"id": MODEL, "inference_geo": "us"}}, "inference_geo"),
        ({"execution_identity": {"type": "aws_role", "role_arn": "arn:aws:iam::1:role/x"}}, "execution_identity"),
        ({"mcp_servers": [{"type": "url", "name": "docs", "url": "https://mcp.example.com/mcp"}]}, "mcp"),
        ({"tools": [{"type": "custom", "name": "bad name!", "input_schema": {"type": "object"}}]}, "name"),
        ({"description": "x" * 2049}, "description"),
        ({"metadata": {f"k{i}": "v" for i in range(17)}}, "metadata"),
    ],
)
def test_what_this_server_cannot_do_is_refused_with_a_reason(
    rest: RestServer, fields: dict[str, object], words: str
) -> None:
    client = rest.client()
    with pytest.raises(anthropic.BadRequestError) as refused:
        client.beta.agents.create(name="x", **{"model": MODEL, **fields})  # type: ignore[arg-type]
    assert words in str(refused.value)
    assert list(client.beta.agents.list(include_archived=True)) == []  # nothing half-written

    agent = client.beta.agents.create(name="kept", model=MODEL)
    with pytest.raises(anthropic.BadRequestError):
        client.beta.agents.update(agent.id, **fields)  # type: ignore[arg-type]
    assert client.beta.agents.retrieve(agent.id).version == 1


def test_versions_are_listed_newest_first_across_pages(rest: RestServer) -> None:
    client = rest.client()
    agent = client.beta.agents.create(name="v", model=MODEL, system="v1")
    for n in range(2, 6):
        client.beta.agents.update(agent.id, system=f"v{n}")
    first = client.beta.agents.versions.list(agent.id, limit=2)
    assert [a.version for a in first.data] == [5, 4]
    assert first.has_next_page()
    every = list(client.beta.agents.versions.list(agent.id, limit=2))
    assert [(a.version, a.system) for a in every] == [(n, f"v{n}") for n in range(5, 0, -1)]
    assert {a.id for a in every} == {agent.id}
    with pytest.raises(anthropic.NotFoundError):
        client.beta.agents.versions.list("agent_01JD7Y3Q4K2W8T6X0V5N9R1M3P")
    with pytest.raises(anthropic.BadRequestError):
        client.beta.agents.versions.list(agent.id, page="not-a-cursor")


def test_the_list_filters_on_creation_time(rest: RestServer) -> None:
    client = rest.client()
    early = client.beta.agents.create(name="early", model=MODEL)
    time.sleep(0.01)  # a whole millisecond apart, the store's resolution
    middle = datetime.now(UTC)
    time.sleep(0.01)
    late = client.beta.agents.create(name="late", model=MODEL)
    assert [a.id for a in client.beta.agents.list(created_at_gte=middle)] == [late.id]
    assert [a.id for a in client.beta.agents.list(created_at_lte=middle)] == [early.id]
    assert [a.id for a in client.beta.agents.list(created_at_gte=early.created_at, created_at_lte=late.created_at)] == [
        late.id,
        early.id,
    ]
    with pytest.raises(anthropic.BadRequestError):
        client.beta.agents.list(extra_query={"created_at[gte]": "yesterday"})


@pytest.mark.anyio
async def test_agents_paginate_through_the_async_sdk(rest: RestServer) -> None:
    async with rest.async_client() as client:
        made = [await client.beta.agents.create(name=f"a{i}", model=MODEL) for i in range(5)]
        first = await client.beta.agents.list(limit=2)
        assert len(first.data) == 2
        assert first.has_next_page()
        seen = [a.id async for a in await client.beta.agents.list(limit=2)]
        assert sorted(seen) == sorted(a.id for a in made)
        assert len(seen) == 5

        updated = await client.beta.agents.update(made[0].id, version=1, name="renamed")
        versions = [a.version async for a in await client.beta.agents.versions.list(made[0].id)]
        assert updated.version == 2
        assert versions == [2, 1]
        with pytest.raises(anthropic.ConflictError):
            await client.beta.agents.update(made[0].id, version=1, name="stale")
        with pytest.raises(anthropic.BadRequestError):
            await client.beta.agents.create(name="x", model=MODEL, skills=[{"type": "anthropic", "skill_id": "pdf"}])
        with pytest.raises(anthropic.NotFoundError):
            await client.beta.agents.archive("agent_01JD7Y3Q4K2W8T6X0V5N9R1M3P")


def test_a_wrong_token_is_an_authentication_error(rest: RestServer) -> None:
    client = anthropic.Anthropic(base_url=rest.base_url, api_key="wrong", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError):
        client.beta.agents.list()


def test_unknown_routes_and_methods_answer_the_api_error_body(rest: RestServer) -> None:
    client = rest.client()
    with pytest.raises(anthropic.NotFoundError) as missing:
        client.get("/v1/no-such-thing", cast_to=object)
    assert isinstance(missing.value.body, dict)
    assert missing.value.body["error"] == {
        "type": "not_found_error",
        "message": "no such route; the REST API's routes are under /v1",
    }
    assert missing.value.request_id is not None
    with pytest.raises(anthropic.APIStatusError) as wrong_method:
        client.delete("/v1/agents", cast_to=object)
    assert wrong_method.value.status_code == 405


def test_a_model_no_provider_serves_is_a_400_at_create_and_openai_models_are_taken(rest: RestServer) -> None:
    client = rest.client()
    with pytest.raises(anthropic.BadRequestError) as bad:
        client.beta.agents.create(name="x", model="mistral/mistral-large")
    assert "no provider is named 'mistral'" in str(bad.value)
    assert "[endpoints.mistral]" in str(bad.value)
    agent = client.beta.agents.create(name="gpt", model="openai/gpt-4o-mini")
    assert agent.model.id == "openai/gpt-4o-mini"
    with pytest.raises(anthropic.BadRequestError):
        client.beta.agents.update(agent.id, version=1, model="nope/x")
    assert [a.id for a in client.beta.agents.list()] == [agent.id]
