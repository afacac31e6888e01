"""Warming the model clients at start-up: which clients are made ahead, that warming sends nothing, and that the
clients it made serve the turns afterwards."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading

import anyio
import pytest
from chat_model_server import ChatModelServer
from chat_model_server import reply as chat_reply
from model_server import ModelServer, reply

from server.brain.model import ModelError
from server.brain.providers.anthropic import AnthropicModel
from server.brain.providers.openai_compat import OpenAICompatModel
from server.brain.providers.router import ClosableModel, ModelRouter
from server.core.models import Endpoint, Providers, parse_providers
from server.services.runtime import warm_loop_executor

pytestmark = pytest.mark.anyio

USER = [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]
LOCAL = {"endpoints": {"local": {"base_url": "http://127.0.0.1:9/v1"}}}


class RecordingFactory:
    """Makes real OpenAI-compatible clients and records which endpoints it made them for."""

    def __init__(self) -> None:
        self.made: list[str] = []

    def __call__(self, endpoint: Endpoint) -> ClosableModel:
        self.made.append(endpoint.name)
        return OpenAICompatModel(endpoint)


def warmed(providers: Providers, default_model: str) -> list[str]:
    factory = RecordingFactory()
    ModelRouter(providers, AnthropicModel(api_key_present=False), factory).warm(default_model)
    return factory.made


def test_only_the_anthropic_client_is_warmed_when_nothing_else_is_configured() -> None:
    assert warmed(parse_providers({}, {}), "claude-test") == []


def test_configured_endpoints_and_the_default_models_endpoint_are_warmed() -> None:
    assert warmed(parse_providers(LOCAL, {"OPENAI_API_KEY": "k"}), "claude-test") == ["openai", "local"]
    assert warmed(parse_providers({}, {}), "openai/gpt-test") == ["openai"]  # made though it has no key yet
    assert warmed(parse_providers({}, {}), "nowhere/model") == []  # no such provider: the turn says so


async def test_warming_sends_nothing_and_its_client_serves_the_first_turn(
    model: ModelServer, chat_model: ChatModelServer
) -> None:
    factory = RecordingFactory()
    router = ModelRouter(parse_providers({}, {"OPENAI_API_KEY": "k"}), AnthropicModel(api_key_present=True), factory)
    worker = threading.Thread(target=router.warm, args=("claude-test",))
    worker.start()
    worker.join()
    assert model.requests == []
    assert chat_model.requests == []
    model.enqueue(reply("warm"))
    result = await router.turn(model="claude-test", system=None, messages=USER, tools=[], max_tokens=10)
    await router.aclose()
    assert result.content == [{"type": "text", "text": "warm"}]
    assert factory.made == ["openai"]  # made once, by the warming


async def test_the_first_turn_finds_the_event_loops_executor_thread_already_started(model: ModelServer) -> None:
    """On a client's first request the SDK resolves its platform headers in the event loop's default executor
    (and anyio the endpoint's address, for a host name). The server's warm-up starts that pool's thread on its
    loop, so the first turn does not: without `warm_loop_executor` this turn starts an `asyncio_` thread."""
    router = ModelRouter(parse_providers({}, {}), AnthropicModel(api_key_present=True), RecordingFactory())
    worker = threading.Thread(target=router.warm, args=("claude-test",))
    worker.start()
    worker.join()
    await warm_loop_executor()
    await anyio.sleep(
        0.1
    )  # the pool's thread marks itself idle just after it answers: a call before that starts another
    before = set(threading.enumerate())
    assert [t for t in before if t.name.startswith("asyncio_")]
    model.enqueue(reply("first"))
    result = await router.turn(model="claude-test", system=None, messages=USER, tools=[], max_tokens=10)
    await router.aclose()
    assert result.content == [{"type": "text", "text": "first"}]
    assert [t.name for t in set(threading.enumerate()) - before if t.name.startswith("asyncio_")] == []


async def test_a_resolver_that_fails_does_not_fail_the_warm_up(monkeypatch: pytest.MonkeyPatch) -> None:
    """`warm_loop_executor` runs in the runtime's task group, where an exception would end the server."""
    resolved: list[object] = []

    def broken(*args: object, **kwargs: object) -> object:
        resolved.append(args[0])
        raise socket.gaierror(socket.EAI_FAIL, "the resolver is gone")

    monkeypatch.setattr(socket, "getaddrinfo", broken)
    await warm_loop_executor()
    assert resolved == [b"127.0.0.1"]  # the call was made, and failed


async def test_a_client_that_cannot_be_set_up_is_left_to_the_turn_to_explain() -> None:
    client = OpenAICompatModel(Endpoint("openai", key_present=False))
    client.warm()  # does not raise: the turn reports what to set
    with pytest.raises(ModelError, match="OPENAI_API_KEY"):
        await client.turn(model="m", system=None, messages=USER, tools=[], max_tokens=10)


def test_the_dry_run_goes_through_the_sdks_real_http_stack_on_this_process_own_loopback() -> None:
    """In a fresh interpreter, so nothing else loaded them first: the connection pool's socket backend and the
    HTTP/1.1 parser are loaded by the dry run, which a transport answering in memory never reaches."""
    probe = (
        "import sys\n"
        "from server.brain.providers.dry_run import dry_run_anthropic\n"
        "before = {m for m in ('httpcore2._backends.anyio', 'h11') if m in sys.modules}\n"
        "dry_run_anthropic()\n"
        "print(sorted(before), sorted(m for m in ('httpcore2._backends.anyio', 'h11') if m in sys.modules))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "HTTP_PROXY", "http_proxy"))}
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[] ['h11', 'httpcore2._backends.anyio']", done.stdout


COLD_TURN = """
import importlib.abc, json, sys, threading
import anyio
from server.brain.providers.anthropic import AnthropicModel
from server.brain.providers.openai_compat import OpenAICompatModel
from server.core.models import parse_providers

imported_on = {}

class Watch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name in ("anthropic", "openai"):
            imported_on[name] = threading.current_thread().name
        return None

sys.meta_path.insert(0, Watch())
assert "anthropic" not in sys.modules and "openai" not in sys.modules

async def main():
    user = [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]
    loop_thread = threading.current_thread().name
    first = await AnthropicModel(api_key_present=True).turn(
        model="claude-test", system=None, messages=user, tools=[], max_tokens=10
    )
    second = await OpenAICompatModel(parse_providers({}, dict(__import__("os").environ)).openai).turn(
        model="gpt-test", system=None, messages=user, tools=[], max_tokens=10
    )
    print(json.dumps([loop_thread, imported_on["anthropic"], imported_on["openai"], first.content, second.content]))

anyio.run(main)
"""


def test_a_cold_first_turn_imports_its_sdk_off_the_event_loop(model: ModelServer, chat_model: ChatModelServer) -> None:
    """A turn that comes before the warm-up made its client (a message sent right after start-up) imports the SDK
    in a worker thread: a second or more during which the event loop, and every other session and request on it,
    goes on. In a fresh interpreter, so the SDKs are not imported yet."""
    model.enqueue(reply("cold"))
    chat_model.enqueue(chat_reply("cold too"))
    done = subprocess.run([sys.executable, "-c", COLD_TURN], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    loop_thread, anthropic_on, openai_on, first, second = json.loads(done.stdout)
    assert loop_thread == "MainThread"
    assert anthropic_on != loop_thread
    assert openai_on != loop_thread
    assert first == [{"type": "text", "text": "cold"}]
    assert second == [{"type": "text", "text": "cold too"}]
