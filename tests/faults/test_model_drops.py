"""The model endpoint drops its connection in the middle of a streamed answer: the request is asked again, the
half answer is not kept, and the server answers throughout. (tests/model_server.py's `drop` closes the socket
after `message_start` and part of a text block, with no `message_stop`.)"""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
from log_checks import assert_log_is_valid, read_log
from model_server import ModelServer, drop, error, reply
from scenario import call_ok
from serving import connected

from server.core.config import ServerConfig

pytestmark = pytest.mark.anyio

HANG_GUARD_S = 60


@pytest.fixture
def config(data_dir: Path) -> ServerConfig:
    return ServerConfig(
        data_dir=data_dir, model="claude-test", model_key_present=True, model_retry_delays_s=(0.01,) * 3
    )


async def test_a_stream_cut_mid_answer_is_asked_again_and_the_half_answer_is_dropped(
    config: ServerConfig, model: ModelServer
) -> None:
    model.enqueue(drop("I will start by"), drop(), reply("The whole answer."))
    with anyio.fail_after(HANG_GUARD_S):
        async with connected(config) as client:
            sid = (await call_ok(client, "create_session", {}))["id"]
            outcome = await call_ok(client, "send_message", {"session_id": sid, "text": "hi"})
            assert len((await call_ok(client, "list_sessions", {}))["sessions"]) == 1  # the server answers
    assert outcome["stop_reason"]["type"] == "end_turn"
    assert outcome["reply"] == "The whole answer."
    errors = [e["error"] for e in outcome["events"] if e["type"] == "session.error"]
    assert [(e["type"], e["retry_status"]["type"]) for e in errors] == [("model_request_failed_error", "retrying")] * 2
    log = read_log(config.data_dir, sid)
    assert [e.payload()["content"] for e in log if e.type == "agent.message"] == [
        [{"type": "text", "text": "The whole answer."}]
    ]
    ends = [e.payload()["is_error"] for e in log if e.type == "span.model_request_end"]
    assert ends == [True, True, False]  # every span that was started ends, the dropped ones as errors
    assert len(model.requests) == 3
    assert_log_is_valid(log)


async def test_an_endpoint_that_keeps_dropping_ends_the_turn_with_retries_exhausted_and_a_later_message_works(
    config: ServerConfig, model: ModelServer
) -> None:
    model.enqueue(*[drop("partial") for _ in range(4)])
    with anyio.fail_after(HANG_GUARD_S):
        async with connected(config) as client:
            sid = (await call_ok(client, "create_session", {}))["id"]
            outcome = await call_ok(client, "send_message", {"session_id": sid, "text": "hi"})
            assert outcome["stop_reason"]["type"] == "retries_exhausted"
            statuses = [e["error"]["retry_status"]["type"] for e in outcome["events"] if e["type"] == "session.error"]
            assert statuses == ["retrying", "retrying", "retrying", "exhausted"]

            model.enqueue(error(529, "overloaded_error"), reply("Back."))
            again = await call_ok(client, "send_message", {"session_id": sid, "text": "still there?"})
            assert again["reply"] == "Back."
    assert_log_is_valid(read_log(config.data_dir, sid))
