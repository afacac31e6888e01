"""A missing default image is built by the first session that needs it, once, while the others wait for it.

The server's image is a throwaway tag of the `managed-sessions-sandbox` repository that no engine has, so the
real default image is never touched; the tag is removed afterwards (only the tag: its layers are the default
image's, reused from the builder's cache, so the build takes seconds where `image build` ran before). A build
that fails is provoked cheaply: a base image that exists nowhere.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import anyio
import anyio.abc
import docker
import docker.errors
import pytest
from model_server import ModelServer, RecordedRequest, Reply, reply, tool_use

from server.core.config import ServerConfig
from server.egress.web_fetch import FetchPolicy
from server.hands.docker.pool import SandboxPool
from server.hands.docker.sandbox import SandboxSettings
from server.services.messages import MessageOutcome
from server.services.runtime import Runtime, open_runtime
from server.services.sessions import NewSession
from server.store.sqlite.store import Store

pytestmark = [pytest.mark.anyio, pytest.mark.docker]

HANG_GUARD_S = 900  # a machine without the builder's cache makes the base first (debootstrap: minutes)
WAIT_S = 600.0
NO_SUCH_BASE = "managed-sessions-test-no-such-base:0"
SESSIONS = 3


@pytest.fixture
def throwaway_image(docker_client: docker.DockerClient) -> Iterator[str]:
    tag = f"managed-sessions-sandbox:test-autobuild-{uuid.uuid4().hex[:12]}"
    yield tag
    with contextlib.suppress(docker.errors.ImageNotFound):
        docker_client.images.remove(tag)  # only the tag: its layers are shared with the default image


def config_for(data_dir: Path, image: str) -> ServerConfig:
    return ServerConfig(data_dir=data_dir, image=image, model="claude-test", model_key_present=True)


def errors_of(outcome: MessageOutcome) -> list[tuple[str, str]]:
    """The session.errors of a turn: (retry status, message)."""
    found: list[tuple[str, str]] = []
    for event in outcome.events:
        if event["type"] == "session.error":
            detail = event["error"]
            assert isinstance(detail, dict)
            retry_status = detail["retry_status"]
            assert isinstance(retry_status, dict)
            found.append((str(retry_status["type"]), str(detail["message"])))
    return found


async def send_all(runtime: Runtime, session_ids: list[str]) -> dict[str, MessageOutcome]:
    outcomes: dict[str, MessageOutcome] = {}

    async def send(session_id: str) -> None:
        outcomes[session_id] = await runtime.inbox.send_message(session_id, "run it", WAIT_S, None)

    with anyio.fail_after(HANG_GUARD_S):
        async with anyio.create_task_group() as task_group:
            for session_id in session_ids:
                task_group.start_soon(send, session_id)
    return outcomes


async def test_the_first_session_builds_the_missing_image_once_while_two_others_wait_for_that_build(
    docker_client: docker.DockerClient,
    data_dir: Path,
    model: ModelServer,
    throwaway_image: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="server")
    # The three first turns are held until all three are asked, so the sessions reach the sandbox together.
    together = threading.Barrier(SESSIONS)

    def turn(request: RecordedRequest) -> Reply:
        if request.tool_results():
            (result,) = request.tool_results().values()
            return reply(f"done: {result['content']}")
        together.wait(timeout=60)
        return reply(tool_use("bash", {"command": "id -un"}))

    model.enqueue(*[turn] * (2 * SESSIONS))
    async with open_runtime(config_for(data_dir, throwaway_image)) as runtime:
        session_ids = [(await runtime.sessions.create(NewSession())).id for _ in range(SESSIONS)]
        outcomes = await send_all(runtime, session_ids)

    builds = [
        r for r in caplog.records if r.getMessage().endswith("is missing; building it (this takes a few minutes)")
    ]
    waits = [r for r in caplog.records if r.getMessage().startswith("waiting for the build of ")]
    assert len(builds) == 1, caplog.text
    assert len(waits) == SESSIONS - 1, caplog.text
    for outcome in outcomes.values():
        assert outcome.status == "idle"
        assert outcome.stop_reason is not None
        assert outcome.stop_reason.type == "end_turn"
        ((status, message),) = errors_of(outcome)  # one notice each: the build they waited for
        assert status == "retrying"
        assert f"the sandbox image {throwaway_image!r} is not on the Docker engine" in message
        assert "the server is building it" in message
        assert outcome.reply is not None
        assert "sandbox" in outcome.reply  # the tool ran, as the sandbox user, once the image was there
    labels = docker_client.images.get(throwaway_image).labels
    assert labels["io.managed-sessions.image"] == "sandbox"


async def test_a_build_that_fails_ends_the_turn_with_one_error_saying_what_to_do_and_asks_the_model_nothing_more(
    docker_client: docker.DockerClient, data_dir: Path, model: ModelServer, throwaway_image: str
) -> None:
    config = config_for(data_dir, throwaway_image)
    store = Store.open(config.database_path)  # the sandboxes carry the store's id, as the server's own do
    store_id = store.store_id
    store.close()

    def on_a_base_that_exists_nowhere(task_group: anyio.abc.TaskGroup) -> SandboxPool:
        settings = SandboxSettings(store_id=store_id, default_image_base=NO_SUCH_BASE)
        return SandboxPool(settings, throwaway_image, FetchPolicy(), task_group)

    model.enqueue(reply(tool_use("bash", {"command": "echo hi"})))
    async with open_runtime(config, sandboxes=on_a_base_that_exists_nowhere) as runtime:
        session_id = (await runtime.sessions.create(NewSession())).id
        outcome = (await send_all(runtime, [session_id]))[session_id]

        assert outcome.status == "idle"
        assert outcome.stop_reason is not None
        assert outcome.stop_reason.type == "retries_exhausted"
        (notice, failure) = errors_of(outcome)
        assert notice[0] == "retrying"
        assert failure[0] == "exhausted"  # the one error that ends the turn
        assert f"building {throwaway_image!r} from {NO_SUCH_BASE!r} failed" in failure[1]
        assert "send a message to try again once the cause is fixed" in failure[1]
        assert "'managed-sessions image build'" in failure[1]
        assert not [e for e in outcome.events if e["type"] == "agent.tool_result"]  # it never ran: no result
        assert len(model.requests) == 1  # the model is not asked again with the failure
        with pytest.raises(docker.errors.ImageNotFound):
            docker_client.images.get(throwaway_image)
