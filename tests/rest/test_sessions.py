"""`client.beta.sessions` against the server: every call through the official SDK, sync and async."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import anthropic
import pytest
from anthropic.types.beta import BetaManagedAgentsDeletedSession, BetaManagedAgentsSession
from anthropic.types.beta.beta_managed_agents_session_agent import BetaManagedAgentsSessionAgent
from anthropic.types.beta.beta_managed_agents_session_stats import BetaManagedAgentsSessionStats
from anthropic.types.beta.beta_managed_agents_session_usage import BetaManagedAgentsSessionUsage
from model_server import hang, reply
from rest_driving import Driven, driven_server, event_types, make_environment, newest_idle_seq, wait_idle
from rest_serving import RestServer

from server.core.config import ServerConfig

MODEL = "claude-sonnet-4-6"
CUSTOM = {"type": "custom", "name": "lookup", "description": "Look a word up.", "input_schema": {"type": "object"}}


@pytest.fixture
def driven(config: ServerConfig, monkeypatch: pytest.MonkeyPatch) -> Iterator[Driven]:
    with driven_server(config, monkeypatch) as served:
        yield served


def message(text: str) -> anthropic.types.beta.sessions.BetaManagedAgentsUserMessageEventParams:
    return {"type": "user.message", "content": [{"type": "text", "text": text}]}


def test_a_session_shows_every_field_the_sdk_declares(rest: RestServer, config: ServerConfig) -> None:
    client = rest.client()
    agent = client.beta.agents.create(name="coder", model=MODEL)
    raw = client.beta.sessions.with_raw_response.create(agent=agent.id, environment_id=make_environment(config))
    body = raw.http_response.json()
    assert set(BetaManagedAgentsSession.model_fields) <= set(body)
    assert set(BetaManagedAgentsSessionAgent.model_fields) <= set(body["agent"])
    assert set(BetaManagedAgentsSessionStats.model_fields) <= set(body["stats"])
    assert set(BetaManagedAgentsSessionUsage.model_fields) <= set(body["usage"])
    session = raw.parse()
    assert session.type == "session"
    assert session.status == "idle"
    assert session.outcome_evaluations == []
    assert session.agent.id == agent.id
    assert session.agent.version == 1
    assert session.agent.skills == []
    assert session.stats.duration_seconds is not None
    assert session.stats.duration_seconds >= 0
    deleted = client.beta.sessions.with_raw_response.delete(session.id).http_response.json()
    assert set(BetaManagedAgentsDeletedSession.model_fields) <= set(deleted)
    assert deleted == {"id": session.id, "type": "session_deleted"}


def test_each_agent_form_pins_the_right_version(rest: RestServer, config: ServerConfig) -> None:
    client = rest.client()
    env = make_environment(config)
    agent = client.beta.agents.create(name="coder", model=MODEL, system="v1")
    client.beta.agents.update(agent.id, version=1, system="v2")

    latest = client.beta.sessions.create(agent=agent.id, environment_id=env)
    pinned = client.beta.sessions.create(agent={"type": "agent", "id": agent.id, "version": 1}, environment_id=env)
    assert (latest.agent.version, latest.agent.system) == (2, "v2")
    assert (pinned.agent.version, pinned.agent.system) == (1, "v1")
    default_env = client.beta.sessions.create(agent=agent.id, environment_id=anthropic.omit)
    assert default_env.environment_id is None  # this server's default environment


def test_overrides_replace_whole_fields_and_null_clears(rest: RestServer, config: ServerConfig) -> None:
    client = rest.client()
    env = make_environment(config)
    agent = client.beta.agents.create(
        name="coder", model=MODEL, system="Be brief.", tools=[{"type": "agent_toolset_20260401"}]
    )
    session = client.beta.sessions.create(
        agent={
            "type": "agent_with_overrides",
            "id": agent.id,
            "model": "claude-opus-4-1",
            "system": None,
            "tools": [CUSTOM],  # type: ignore[list-item]
        },
        environment_id=env,
    )
    assert session.agent.model.id == "claude-opus-4-1"
    assert session.agent.system is None
    assert [t.type for t in session.agent.tools] == ["custom"]
    assert session.agent.id == agent.id
    assert session.agent.version == 1
    assert client.beta.agents.retrieve(agent.id).system == "Be brief."  # the agent is unchanged

    kept = client.beta.sessions.create(agent={"type": "agent_with_overrides", "id": agent.id}, environment_id=env)
    assert kept.agent.system == "Be brief."
    assert kept.agent.model.id == MODEL
    with pytest.raises(anthropic.BadRequestError, match="needs a model"):
        client.beta.sessions.create(
            agent={"type": "agent_with_overrides", "id": agent.id, "model": None},  # type: ignore[typeddict-item]
            environment_id=env,
        )


def test_bad_creates_are_refused_and_nothing_is_made(rest: RestServer, config: ServerConfig) -> None:
    client = rest.client()
    env = make_environment(config)
    agent = client.beta.agents.create(name="coder", model=MODEL)
    with pytest.raises(anthropic.NotFoundError):
        client.beta.sessions.create(agent="agent_01JD7Y3Q4K2W8T6X0V5N9R1M3P", environment_id=env)
    with pytest.raises(anthropic.NotFoundError):
        client.beta.sessions.create(agent=agent.id, environment_id="env_01JD7Y3Q4K2W8T6X0V5N9R1M3P")
    with pytest.raises(anthropic.BadRequestError, match="define_outcome"):
        client.beta.sessions.create(
            agent=agent.id,
            environment_id=env,
            initial_events=[
                message("hi"),
                {"type": "user.define_outcome", "description": "x", "rubric": {"type": "text", "content": "y"}},
            ],
        )
    with pytest.raises(anthropic.BadRequestError, match="initial_events"):
        client.beta.sessions.create(agent=agent.id, environment_id=env, initial_events=[message("hi")] * 51)
    with pytest.raises(anthropic.BadRequestError, match="content is empty"):
        client.beta.sessions.create(
            agent=agent.id, environment_id=env, initial_events=[{"type": "user.message", "content": []}]
        )
    with pytest.raises(anthropic.BadRequestError, match="budget"):
        client.beta.sessions.create(
            agent=agent.id,
            environment_id=env,
            budget={"type": "limit", "max_list_cost": {"amount": "100", "currency": "USD"}},
        )
    with pytest.raises(anthropic.BadRequestError, match=r"resources\.0"):
        client.beta.sessions.create(
            agent=agent.id,
            environment_id=env,
            resources=[{"type": "github_repository", "url": "not a url"}],  # type: ignore[list-item]
        )
    with pytest.raises(anthropic.BadRequestError, match="metadata"):
        client.beta.sessions.create(agent=agent.id, environment_id=env, metadata={f"k{i}": "v" for i in range(17)})
    assert list(client.beta.sessions.list(include_archived=True)) == []


def test_initial_events_start_the_session_and_run_in_order(driven: Driven, config: ServerConfig) -> None:
    client = driven.server.client()
    driven.model.enqueue(reply("Hello!"))
    agent = client.beta.agents.create(name="coder", model=MODEL)
    session = client.beta.sessions.create(
        agent=agent.id,
        environment_id=make_environment(config),
        initial_events=[message("first"), message("second")],
    )
    assert session.status == "running"
    wait_idle(client, session.id, 0)
    assert event_types(client, session.id)[:3] == ["user.message", "user.message", "session.status_running"]
    [request] = driven.model.requests
    texts = [block["text"] for block in request.body["messages"][0]["content"]]  # type: ignore[index]
    assert texts == ["first", "second"]


def test_sessions_list_pages_both_ways(rest: RestServer, config: ServerConfig) -> None:
    client = rest.client()
    env = make_environment(config)
    agent = client.beta.agents.create(name="coder", model=MODEL)
    made = [client.beta.sessions.create(agent=agent.id, environment_id=env, title=f"s{i}").id for i in range(5)]
    newest_first = list(reversed(made))

    first = client.beta.sessions.list(limit=2)
    assert [s.id for s in first.data] == newest_first[:2]
    assert first.prev_page is None
    second = client.beta.sessions.list(limit=2, page=first.next_page)
    assert [s.id for s in second.data] == newest_first[2:4]
    third = client.beta.sessions.list(limit=2, page=second.next_page)
    assert [s.id for s in third.data] == newest_first[4:]
    assert third.next_page is None
    back = client.beta.sessions.list(limit=2, page=third.prev_page)
    assert [s.id for s in back.data] == newest_first[2:4]
    back_again = client.beta.sessions.list(limit=2, page=back.prev_page)
    assert [s.id for s in back_again.data] == newest_first[:2]
    assert back_again.prev_page is None
    assert [s.id for s in client.beta.sessions.list(limit=2)] == newest_first  # the SDK's auto-paging

    oldest = client.beta.sessions.list(limit=3, order="asc")
    assert [s.id for s in oldest.data] == made[:3]
    assert [s.id for s in client.beta.sessions.list(limit=3, order="asc", page=oldest.next_page).data] == made[3:]
    with pytest.raises(anthropic.BadRequestError, match="order"):
        client.beta.sessions.list(limit=2, order="asc", page=first.next_page)
    with pytest.raises(anthropic.BadRequestError, match="not a cursor"):
        client.beta.sessions.list(page="garbage")


def test_sessions_list_filters(rest: RestServer, config: ServerConfig) -> None:
    client = rest.client()
    env = make_environment(config)
    one = client.beta.agents.create(name="one", model=MODEL)
    two = client.beta.agents.create(name="two", model=MODEL)
    v1 = client.beta.sessions.create(agent=one.id, environment_id=env)
    client.beta.agents.update(one.id, version=1, system="v2")
    v2 = client.beta.sessions.create(agent=one.id, environment_id=env)
    other = client.beta.sessions.create(agent=two.id, environment_id=env)
    archived = client.beta.sessions.create(agent=two.id, environment_id=env)
    client.beta.sessions.archive(archived.id)

    def ids(**filters: object) -> list[str]:
        return [s.id for s in client.beta.sessions.list(**filters)]  # type: ignore[arg-type]

    assert ids(agent_id=one.id) == [v2.id, v1.id]
    assert ids(agent_id=one.id, agent_version=1) == [v1.id]
    assert ids() == [other.id, v2.id, v1.id]
    assert ids(include_archived=True) == [archived.id, other.id, v2.id, v1.id]
    assert ids(statuses=["terminated"], include_archived=True) == [archived.id]
    assert ids(statuses=["idle", "terminated"], include_archived=True, order="asc") == [
        v1.id,
        v2.id,
        other.id,
        archived.id,
    ]
    at = dt.datetime.fromisoformat(client.beta.sessions.retrieve(v2.id).created_at.isoformat())
    assert ids(created_at_gte=at) == [other.id, v2.id]
    assert ids(created_at_gt=at) == [other.id]
    assert ids(created_at_lt=at) == [v1.id]
    assert ids(created_at_lte=at.isoformat()) == [v2.id, v1.id]
    with pytest.raises(anthropic.BadRequestError, match="agent_id"):
        ids(agent_version=1)
    with pytest.raises(anthropic.BadRequestError, match="statuses"):
        ids(statuses=["sleeping"])


def test_update_sets_title_and_patches_metadata_and_logs_only_the_changes(
    rest: RestServer, config: ServerConfig
) -> None:
    client = rest.client()
    agent = client.beta.agents.create(name="coder", model=MODEL)
    session = client.beta.sessions.create(
        agent=agent.id, environment_id=make_environment(config), title="old", metadata={"a": "1", "b": "2"}
    )
    updated = client.beta.sessions.update(session.id, title="new", metadata={"a": "1", "b": None, "c": "3"})
    assert updated.title == "new"
    assert updated.metadata == {"a": "1", "c": "3"}
    assert client.beta.sessions.update(session.id, title="new").title == "new"  # no change, no event
    cleared = client.beta.sessions.update(session.id, title=None)
    assert cleared.title is None
    assert cleared.metadata == {"a": "1", "c": "3"}

    logged = [e.to_dict() for e in client.beta.sessions.events.list(session.id)]
    assert [e["type"] for e in logged] == ["session.updated", "session.updated"]
    assert {k: v for k, v in logged[0].items() if k in ("title", "metadata")} == {
        "title": "new",
        "metadata": {"a": "1", "c": "3"},
    }
    assert "metadata" not in logged[1]
    assert logged[1]["title"] is None

    for unsupported in ({"budget": None}, {"vault_ids": []}, {"agent": {"type": "agent", "tools": []}}):
        with pytest.raises(anthropic.BadRequestError, match="does not support"):
            client.beta.sessions.update(session.id, **unsupported)  # type: ignore[arg-type]
    with pytest.raises(anthropic.NotFoundError):
        client.beta.sessions.update("sesn_01JD7Y3Q4K2W8T6X0V5N9R1M3P", title="x")
    client.beta.sessions.archive(session.id)
    with pytest.raises(anthropic.ConflictError):
        client.beta.sessions.update(session.id, title="late")


def test_archive_and_delete_are_refused_while_running(driven: Driven, config: ServerConfig) -> None:
    client = driven.server.client()
    turn = hang(then=reply("done"))
    driven.model.enqueue(turn)
    agent = client.beta.agents.create(name="coder", model=MODEL)
    session = client.beta.sessions.create(
        agent=agent.id, environment_id=make_environment(config), initial_events=[message("go")]
    )
    assert turn.started.wait(10)
    with pytest.raises(anthropic.ConflictError, match="running"):
        client.beta.sessions.archive(session.id)
    with pytest.raises(anthropic.ConflictError, match="running"):
        client.beta.sessions.delete(session.id)
    turn.released.set()
    wait_idle(client, session.id, 0)
    archived = client.beta.sessions.archive(session.id)
    assert archived.status == "terminated"
    assert archived.archived_at is not None
    assert client.beta.sessions.delete(session.id).type == "session_deleted"
    with pytest.raises(anthropic.NotFoundError):
        client.beta.sessions.retrieve(session.id)
    with pytest.raises(anthropic.NotFoundError):
        client.beta.sessions.delete(session.id)


@pytest.mark.anyio
async def test_sessions_through_the_async_sdk(driven: Driven, config: ServerConfig) -> None:
    async with driven.server.async_client() as client:  # closed on this test's event loop
        await sessions_flow(client, driven, config)


async def sessions_flow(client: anthropic.AsyncAnthropic, driven: Driven, config: ServerConfig) -> None:
    driven.model.enqueue(reply("Hi."))
    env = make_environment(config)
    agent = await client.beta.agents.create(name="coder", model=MODEL)
    made = [(await client.beta.sessions.create(agent=agent.id, environment_id=env)).id for _ in range(3)]
    seen = [s.id async for s in await client.beta.sessions.list(limit=2, order="asc")]
    assert seen == made
    updated = await client.beta.sessions.update(made[0], title="async")
    assert (await client.beta.sessions.retrieve(made[0])).title == updated.title == "async"
    sent = await client.beta.sessions.events.send(made[0], events=[message("hello")])
    assert [e.type for e in sent.data] == ["user.message"]
    sync = driven.server.client()
    wait_idle(sync, made[0], 0)
    assert newest_idle_seq(sync, made[0]) > 0
    assert (await client.beta.sessions.archive(made[0])).status == "terminated"
    assert (await client.beta.sessions.delete(made[1])).id == made[1]
    with pytest.raises(anthropic.NotFoundError):
        await client.beta.sessions.retrieve(made[1])
