"""`client.beta.sessions.events` against the server: list and send through the official SDK, sync and async."""

from __future__ import annotations

import base64
import typing
from collections.abc import Iterator
from typing import Any

import anthropic
import pytest
from anthropic.types.beta.sessions import BetaManagedAgentsSessionEvent, BetaManagedAgentsUserMessageEventParams
from model_server import RecordedRequest, Reply, hang, reply, tool_use
from rest_driving import Driven, driven_server, event_types, make_environment, newest_idle_seq, wait_idle
from rest_serving import RestServer

from server.core.config import ServerConfig
from server.fronts.rest.wire import MAX_JSON_BYTES

MODEL = "claude-sonnet-4-6"
UNKNOWN_EVENT = "sevt_01JD7Y3Q4K2W8T6X0V5N9R1M3P"
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 16).decode()
PDF = base64.b64encode(b"%PDF-1.4\n%%EOF\n").decode()


@pytest.fixture
def driven(config: ServerConfig, monkeypatch: pytest.MonkeyPatch) -> Iterator[Driven]:
    with driven_server(config, monkeypatch) as served:
        yield served


def declared_fields() -> dict[str, set[str]]:
    """The fields the SDK declares for each event type."""
    union = typing.get_args(BetaManagedAgentsSessionEvent)[0]  # Annotated[Union[...], discriminator]
    return {typing.get_args(m.model_fields["type"].annotation)[0]: set(m.model_fields) for m in typing.get_args(union)}


def assert_every_declared_field(client: anthropic.Anthropic, session_id: str) -> None:
    declared = declared_fields()
    raw = client.beta.sessions.events.with_raw_response.list(session_id, limit=100).http_response.json()["data"]
    for event in raw:
        if event["type"] != "session.updated":  # carries only what changed, as the API says
            assert declared[event["type"]] <= set(event), event


def message(text: str) -> BetaManagedAgentsUserMessageEventParams:
    return {"type": "user.message", "content": [{"type": "text", "text": text}]}


def new_session(client: anthropic.Anthropic, config: ServerConfig, **agent: Any) -> str:
    made = client.beta.agents.create(name="coder", model=MODEL, **agent)
    return client.beta.sessions.create(agent=made.id, environment_id=make_environment(config)).id


def send(client: anthropic.Anthropic, session_id: str, *events: Any) -> tuple[int, list[dict[str, Any]]]:
    """Sends events; returns the newest idle's seq from before, and the echo."""
    before = newest_idle_seq(client, session_id)
    return before, [e.to_dict() for e in client.beta.sessions.events.send(session_id, events=list(events)).data]


def test_a_message_with_text_image_and_document_blocks_is_stored_as_sent(
    rest: RestServer, config: ServerConfig
) -> None:
    client = rest.client()
    session_id = new_session(client, config)
    upload = client.beta.files.upload(file=("cat.png", base64.b64decode(PNG), "image/png")).id
    content: list[Any] = [
        {"type": "text", "text": "Look at these."},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.png"}},
        {"type": "image", "source": {"type": "file", "file_id": upload}},
        {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "notes"}, "title": "N"},
        {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": PDF}},
        {"type": "document", "source": {"type": "file", "file_id": upload}, "context": "c"},
    ]
    missing = {"type": "image", "source": {"type": "file", "file_id": "file_01JD7Y3Q4K2W8T6X0V5N9R1M3P"}}
    with pytest.raises(anthropic.NotFoundError, match="no uploaded file"):
        client.beta.sessions.events.send(session_id, events=[{"type": "user.message", "content": [*content, missing]}])
    assert event_types(client, session_id) == []  # nothing of the refused send was recorded
    [echo] = client.beta.sessions.events.send(session_id, events=[{"type": "user.message", "content": content}]).data
    assert echo.type == "user.message"
    assert echo.id.startswith("sevt_")
    assert echo.processed_at is not None
    stored = next(iter(client.beta.sessions.events.list(session_id, types=["user.message"]))).to_dict()
    assert stored["content"] == content
    assert stored["id"] == echo.id


@pytest.mark.parametrize(
    ("block", "problem"),
    [
        ({"type": "text", "text": ""}, "text is empty"),
        ({"type": "image", "source": {"type": "base64", "media_type": "image/bmp", "data": PNG}}, "media_type"),
        ({"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "%%%"}}, "base64"),
        ({"type": "image", "source": {"type": "url", "url": "ftp://example.com/x.png"}}, "http"),
        ({"type": "document", "source": {"type": "base64", "media_type": "text/html", "data": PDF}}, "media_type"),
        ({"type": "redacted"}, "content.0"),
    ],
)
def test_bad_blocks_are_refused(rest: RestServer, config: ServerConfig, block: Any, problem: str) -> None:
    client = rest.client()
    session_id = new_session(client, config)
    with pytest.raises(anthropic.BadRequestError, match=problem):
        client.beta.sessions.events.send(session_id, events=[{"type": "user.message", "content": [block]}])
    assert event_types(client, session_id) == []


def test_a_send_is_checked_whole_before_anything_is_recorded(rest: RestServer, config: ServerConfig) -> None:
    client = rest.client()
    session_id = new_session(client, config)
    answer = {"type": "user.tool_confirmation", "tool_use_id": UNKNOWN_EVENT, "result": "allow"}
    with pytest.raises(anthropic.BadRequestError, match="not waiting"):
        client.beta.sessions.events.send(session_id, events=[message("hi"), answer])  # type: ignore[list-item]
    for unsupported in (
        {"type": "user.define_outcome", "description": "d", "rubric": {"type": "text", "content": "r"}},
        {"type": "user.tool_result", "tool_use_id": UNKNOWN_EVENT},
        {"type": "system.message", "content": [{"type": "text", "text": "x"}]},
    ):
        with pytest.raises(anthropic.BadRequestError, match="does not support"):
            client.beta.sessions.events.send(session_id, events=[message("hi"), unsupported])  # type: ignore[list-item]
    deny_with_allow = {**answer, "deny_message": "no"}
    with pytest.raises(anthropic.BadRequestError, match="deny_message"):
        client.beta.sessions.events.send(session_id, events=[deny_with_allow])  # type: ignore[list-item]
    with pytest.raises(anthropic.BadRequestError, match="events"):
        client.beta.sessions.events.send(session_id, events=[])
    with pytest.raises(anthropic.BadRequestError, match="events"):
        client.beta.sessions.events.send(session_id, events=[message("hi")] * 51)
    with pytest.raises(anthropic.BadRequestError, match="session_thread_id"):
        client.beta.sessions.events.send(session_id, events=[{"type": "user.interrupt", "session_thread_id": "t"}])
    assert event_types(client, session_id) == []
    with pytest.raises(anthropic.NotFoundError):
        client.beta.sessions.events.send("sesn_01JD7Y3Q4K2W8T6X0V5N9R1M3P", events=[message("hi")])
    with pytest.raises(anthropic.RequestTooLargeError):
        client.beta.sessions.events.send(session_id, events=[message("x" * MAX_JSON_BYTES)])
    client.beta.sessions.archive(session_id)
    with pytest.raises(anthropic.ConflictError):
        client.beta.sessions.events.send(session_id, events=[message("too late")])


def test_events_list_by_order_type_time_and_pages(rest: RestServer, config: ServerConfig) -> None:
    client = rest.client()
    session_id = new_session(client, config)
    for title in ("a", "b", "c"):
        client.beta.sessions.update(session_id, title=title)
    _, [interrupt] = send(client, session_id, {"type": "user.interrupt"})
    logged = [e.to_dict() for e in client.beta.sessions.events.list(session_id)]
    assert [e["type"] for e in logged] == ["session.updated"] * 3 + ["user.interrupt"]
    assert logged[-1]["id"] == interrupt["id"]
    ids = [e["id"] for e in logged]

    first = client.beta.sessions.events.list(session_id, limit=3)
    assert [e.id for e in first.data] == ids[:3]
    rest_of = client.beta.sessions.events.list(session_id, limit=3, page=first.next_page)
    assert [e.id for e in rest_of.data] == ids[3:]
    assert rest_of.next_page is None
    newest = client.beta.sessions.events.list(session_id, limit=3, order="desc")
    assert [e.id for e in newest.data] == ids[::-1][:3]
    assert [
        e.id for e in client.beta.sessions.events.list(session_id, limit=3, order="desc", page=newest.next_page)
    ] == [ids[0]]
    assert [e.id for e in client.beta.sessions.events.list(session_id, types=["user.interrupt"])] == [ids[3]]

    at = logged[1]["processed_at"]
    assert next(e.id for e in client.beta.sessions.events.list(session_id, created_at_gte=at)) == ids[1]
    assert ids[1] not in [e.id for e in client.beta.sessions.events.list(session_id, created_at_gt=at)]
    assert [e.id for e in client.beta.sessions.events.list(session_id, created_at_lte=at)][-1] == ids[1]
    assert ids[1] not in [e.id for e in client.beta.sessions.events.list(session_id, created_at_lt=at)]

    with pytest.raises(anthropic.BadRequestError, match="order"):
        client.beta.sessions.events.list(session_id, limit=3, order="desc", page=first.next_page)
    with pytest.raises(anthropic.BadRequestError, match="types"):
        client.beta.sessions.events.list(session_id, types=["user.nonsense"])  # type: ignore[list-item]
    with pytest.raises(anthropic.NotFoundError):
        client.beta.sessions.events.list("sesn_01JD7Y3Q4K2W8T6X0V5N9R1M3P")


def test_several_messages_in_one_send_make_one_turn(driven: Driven, config: ServerConfig) -> None:
    client = driven.server.client()
    driven.model.enqueue(reply("Both read."))
    session_id = new_session(client, config)
    before, echo = send(client, session_id, message("one"), message("two"))
    assert [e["type"] for e in echo] == ["user.message", "user.message"]
    assert wait_idle(client, session_id, before)["stop_reason"] == {"type": "end_turn"}
    [request] = driven.model.requests
    assert [b["text"] for b in request.body["messages"][0]["content"]] == ["one", "two"]  # type: ignore[index]


@pytest.mark.anyio
async def test_the_custom_tool_loop_through_the_async_sdk(driven: Driven, config: ServerConfig) -> None:
    def answer(request: RecordedRequest) -> Reply:
        [result] = request.tool_results().values()
        return reply(f"The tool said {result['content'][0]['text']}.")  # type: ignore[index]

    driven.model.enqueue(reply(tool_use("lookup", {"word": "cat"})), answer)
    async with driven.server.async_client() as client:  # closed on this test's event loop
        await custom_tool_flow(client, driven, config)


async def custom_tool_flow(client: anthropic.AsyncAnthropic, driven: Driven, config: ServerConfig) -> None:
    custom = {"type": "custom", "name": "lookup", "description": "Look a word up.", "input_schema": {"type": "object"}}
    sync = driven.server.client()
    session_id = new_session(sync, config, tools=[custom])
    await client.beta.sessions.events.send(session_id, events=[message("Look up cat.")])
    idle = wait_idle(sync, session_id, 0)
    assert idle["stop_reason"]["type"] == "requires_action"  # type: ignore[index]
    [use_id] = idle["stop_reason"]["event_ids"]  # type: ignore[index]
    use = [e async for e in await client.beta.sessions.events.list(session_id, types=["agent.custom_tool_use"])]
    assert [u.id for u in use] == [use_id]

    result = {
        "type": "user.custom_tool_result",
        "custom_tool_use_id": use_id,
        "content": [{"type": "text", "text": "meow"}],
    }
    sent = await client.beta.sessions.events.send(session_id, events=[result])  # type: ignore[list-item]
    assert sent.data[0].type == "user.custom_tool_result"
    done = wait_idle(sync, session_id, int(idle["seq"]))  # type: ignore[call-overload]
    assert done["stop_reason"] == {"type": "end_turn"}
    reply_event = [e async for e in await client.beta.sessions.events.list(session_id, types=["agent.message"])][-1]
    assert reply_event.to_dict()["content"] == [{"type": "text", "text": "The tool said meow."}]
    with pytest.raises(anthropic.BadRequestError, match="not waiting"):
        await client.beta.sessions.events.send(session_id, events=[result])  # type: ignore[list-item]
    assert_every_declared_field(sync, session_id)


def test_a_tool_confirmation_allows_and_denies(driven: Driven, config: ServerConfig) -> None:
    ask = [{"type": "agent_toolset_20260401", "default_config": {"permission_policy": {"type": "always_ask"}}}]
    driven.sandboxes.outputs["echo hi"] = "hi\n"
    driven.model.enqueue(
        reply(tool_use("bash", {"command": "echo hi"})),
        reply("Ran it."),
        reply(tool_use("bash", {"command": "rm -rf /tmp/x"})),
        lambda request: reply(str(next(iter(request.tool_results().values()))["content"])),
    )
    client = driven.server.client()
    session_id = new_session(client, config, tools=ask)

    before, _ = send(client, session_id, message("Say hi."))
    [use_id] = wait_idle(client, session_id, before)["stop_reason"]["event_ids"]  # type: ignore[index]
    assert driven.sandboxes.calls == []
    with pytest.raises(anthropic.BadRequestError, match="custom tool use"):
        send(client, session_id, {"type": "user.custom_tool_result", "custom_tool_use_id": use_id})
    before, [echo] = send(
        client, session_id, {"type": "user.tool_confirmation", "tool_use_id": use_id, "result": "allow"}
    )
    assert echo["result"] == "allow"
    assert wait_idle(client, session_id, before)["stop_reason"] == {"type": "end_turn"}
    assert [c.tool_input for c in driven.sandboxes.calls] == [{"command": "echo hi"}]

    before, _ = send(client, session_id, message("Clean up."))
    [use_id] = wait_idle(client, session_id, before)["stop_reason"]["event_ids"]  # type: ignore[index]
    deny = {"type": "user.tool_confirmation", "tool_use_id": use_id, "result": "deny", "deny_message": "Not that."}
    before, _ = send(client, session_id, deny)
    assert wait_idle(client, session_id, before)["stop_reason"] == {"type": "end_turn"}
    assert len(driven.sandboxes.calls) == 1
    last = [e.to_dict() for e in client.beta.sessions.events.list(session_id, types=["agent.message"])][-1]
    assert "Not that." in last["content"][0]["text"]
    assert_every_declared_field(client, session_id)


def test_an_interrupt_stops_the_turn(driven: Driven, config: ServerConfig) -> None:
    turn = hang("Thinking about")
    driven.model.enqueue(turn)
    client = driven.server.client()
    session_id = new_session(client, config)
    before, _ = send(client, session_id, message("Write a novel."))
    assert turn.started.wait(10)
    assert client.beta.sessions.retrieve(session_id).status == "running"
    _, [echo] = send(client, session_id, {"type": "user.interrupt"})
    assert echo["type"] == "user.interrupt"
    assert wait_idle(client, session_id, before)["stop_reason"] == {"type": "end_turn"}
    assert "user.interrupt" in event_types(client, session_id)
    assert "agent.message" not in event_types(client, session_id)
    assert_every_declared_field(client, session_id)
