"""`client.beta.agents` against the server: every call through the official SDK, sync and async."""

from __future__ import annotations

import anthropic
import pytest
from rest_serving import RestServer


def test_agent_lifecycle_through_the_sync_sdk(rest: RestServer) -> None:
    client = rest.client()
    agent = client.beta.agents.create(name="coder", model="claude-sonnet-4-6", system="Be brief.")
    assert agent.id.startswith("agent_") and agent.version == 1 and agent.model.id == "claude-sonnet-4-6"

    updated = client.beta.agents.update(agent.id, version=1, system="Be very brief.")
    assert updated.version == 2 and updated.system == "Be very brief."
    assert client.beta.agents.retrieve(agent.id, version=1).system == "Be brief."

    with pytest.raises(anthropic.ConflictError):
        client.beta.agents.update(agent.id, version=1, system="stale")
    with pytest.raises(anthropic.NotFoundError):
        client.beta.agents.retrieve("agent_01JD7Y3Q4K2W8T6X0V5N9R1M3P")
    with pytest.raises(anthropic.BadRequestError) as bad:
        client.beta.agents.create(name="", model="claude-sonnet-4-6")
    assert "name" in str(bad.value)

    archived = client.beta.agents.archive(agent.id)
    assert archived.archived_at is not None
    assert [a.id for a in client.beta.agents.list()] == []
    assert [a.id for a in client.beta.agents.list(include_archived=True)] == [agent.id]


@pytest.mark.anyio
async def test_agents_paginate_through_the_async_sdk(rest: RestServer) -> None:
    client = rest.async_client()
    made = [await client.beta.agents.create(name=f"a{i}", model="claude-sonnet-4-6") for i in range(5)]
    first = await client.beta.agents.list(limit=2)
    assert len(first.data) == 2 and first.has_next_page()
    seen = [a.id async for a in await client.beta.agents.list(limit=2)]
    assert sorted(seen) == sorted(a.id for a in made) and len(seen) == 5


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
