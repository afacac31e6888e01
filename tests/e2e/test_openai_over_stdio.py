"""Sessions on the OpenAI-compatible provider end to end: a real stdio MCP connection, real Docker, the real
`openai` SDK in the server child, and the scripted Chat Completions server in place of the model.

The child gets `OPENAI_BASE_URL`, `OPENAI_API_KEY` and `MANAGED_SESSIONS_MODEL=openai/gpt-test` and no Anthropic
key, so a turn that went to Anthropic would fail. Each scenario checks what the session did (events, files,
replies) and what the scripted server was asked (the conversation, the tool messages' call ids); the `chat_model`
fixture checks at teardown that every request was one the real API accepts.
"""

from __future__ import annotations

import json
import secrets
import sys
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import docker
import docker.errors
import pytest
from chat_model_server import ChatModelServer, RecordedRequest, error, hang, reply, tool_call
from log_checks import assert_log_is_valid, read_log
from mcp import Client, StdioServerParameters, stdio_client
from model_server import ModelServer
from model_server import reply as anthropic_reply
from model_server import tool_use as anthropic_tool_use
from processes import python_path_env
from sandbox_probes import LONG_COMMAND, wait_for_running_command
from scenario import call_error, call_ok, wait_end_turn, wait_requires_action
from stdio_child import StdioServer

from server.core.config import DEFAULT_IMAGE
from server.hands.docker.sandbox import LABEL_SESSION

pytestmark = [pytest.mark.docker, pytest.mark.anyio]

HANG_GUARD_S = 120
"""Only stops a test that hangs; what a test checks is events, files and requests, never how long they took."""

SEND_WAIT_S = 55
"""`send_message` waits at most this long for the turn (the tool's maximum): a bound on a slow engine, not a check."""
OPENAI_MODEL = "openai/gpt-test"
Connect = Callable[..., Any]


def openai_env(subprocess_env: dict[str, str], base_url: str, **extra_env: str) -> dict[str, str]:
    """The server child's environment: the OpenAI endpoint is the scripted server; Anthropic has no key (and a
    base URL where nothing listens)."""
    assert not {"ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN"} & set(subprocess_env)
    assert subprocess_env["ANTHROPIC_BASE_URL"] == "http://127.0.0.1:9"
    env = python_path_env(
        {
            **subprocess_env,
            "OPENAI_BASE_URL": base_url,
            "OPENAI_API_KEY": "test-key",
            "MANAGED_SESSIONS_MODEL": OPENAI_MODEL,
            "MANAGED_SESSIONS_IMAGE": DEFAULT_IMAGE,
            "MANAGED_SESSIONS_MODEL_RETRY_DELAYS": "0.01,0.01",
            **extra_env,
        }
    )
    return {k: v for k, v in env.items() if v}


@pytest.fixture
def stdio(
    subprocess_env: dict[str, str], chat_model: ChatModelServer, tmp_path: Path, docker_client: docker.DockerClient
) -> Connect:
    """Connects an MCP client to `python -m server serve` over stdio; its stderr goes to `tmp_path/server.log`."""

    @asynccontextmanager
    async def connect(*, log_level: str = "INFO", **extra_env: str) -> AsyncIterator[Client]:
        env = openai_env(subprocess_env, chat_model.base_url, **extra_env)
        args = ["-m", "server", "--log-level", log_level, "serve"]
        params = StdioServerParameters(command=sys.executable, args=args, env=env)
        with (tmp_path / "server.log").open("a") as errlog:
            async with Client(stdio_client(params, errlog=errlog)) as client:
                yield client

    return connect


async def send(client: Client, session_id: str, text: str) -> dict[str, Any]:
    """Sends a message and waits for the session to stop (idle, or waiting for the client)."""
    outcome = await call_ok(
        client, "send_message", {"session_id": session_id, "text": text, "wait_seconds": SEND_WAIT_S}
    )
    assert outcome["status"] == "idle", outcome
    return outcome


async def all_events(client: Client, session_id: str) -> list[dict[str, Any]]:
    page = await call_ok(client, "get_events", {"session_id": session_id, "limit": 200})
    assert not page["has_more"]
    return list(page["events"])


def of_type(events: list[dict[str, Any]], event_type: str) -> list[dict[str, Any]]:
    return [e for e in events if e["type"] == event_type]


def roles(request: RecordedRequest) -> list[str]:
    return [m["role"] for m in request.messages if m["role"] != "system"]


def calls_in(message: dict[str, Any]) -> list[tuple[str, str, Any]]:
    """An assistant message's tool calls as (id, name, parsed arguments)."""
    return [(c["id"], c["function"]["name"], json.loads(c["function"]["arguments"])) for c in message["tool_calls"]]


def first_user_text(request: RecordedRequest) -> str:
    return str(next(m for m in request.messages if m["role"] == "user")["content"])


# --- 1. memory, a tool loop, output files ------------------------------------------------------------------------


async def test_a_second_message_carries_the_first_turn_and_tools_leave_output_files(
    stdio: Connect, chat_model: ChatModelServer
) -> None:
    bash = {"command": "mkdir -p /mnt/session/outputs/report && echo teal | tee /mnt/session/outputs/color.txt"}
    write = {"file_path": "/mnt/session/outputs/report/data.csv", "content": 'a,"b c"\n1,{2}\n'}
    chat_model.enqueue(
        reply("Saving both.", tool_call("bash", bash), tool_call("write", write)),  # arguments stream in fragments
        reply("Saved."),
        lambda request: reply(f"You said: {first_user_text(request)}"),
    )
    async with stdio() as client:
        session = await call_ok(client, "create_session", {})
        sid = session["id"]
        assert session["agent"]["model"]["id"] == OPENAI_MODEL
        first = await send(client, sid, "remember teal and save it")
        assert (first["status"], first["reply"]) == ("idle", "Saved.")
        second = await send(client, sid, "what did I say?")
        assert second["reply"] == "You said: remember teal and save it"
        listing = await call_ok(client, "list_output_files", {"session_id": sid})
        assert sorted(f["path"] for f in listing["files"]) == ["color.txt", "report/data.csv"]
        texts = {}
        for path in ("color.txt", "report/data.csv"):
            [content] = (await client.call_tool("read_output_file", {"session_id": sid, "path": path})).content
            assert content.type == "text"
            texts[path] = content.text
        assert texts == {"color.txt": "teal\n", "report/data.csv": write["content"]}
        events = await all_events(client, sid)

    uses = of_type(events, "agent.tool_use")
    assert [(u["name"], u["input"]) for u in uses] == [("bash", bash), ("write", write)]
    asked, answered, remembered = chat_model.requests
    assert {r.model for r in chat_model.requests} == {"gpt-test"}
    assert {"bash", "write"} <= set(asked.tool_names)
    assert roles(asked) == ["user"]
    assert roles(answered) == ["user", "assistant", "tool", "tool"]
    assistant = answered.messages[-3]
    assert assistant["content"] == "Saving both."
    assert calls_in(assistant) == [(u["id"], u["name"], u["input"]) for u in uses]
    results = answered.tool_results()
    assert list(results) == [u["id"] for u in uses]  # each tool message answers its call, in order
    assert "teal" in results[uses[0]["id"]]["content"]
    assert roles(remembered) == ["user", "assistant", "tool", "tool", "assistant", "user"]
    assert remembered.messages[: len(answered.messages)] == answered.messages  # the first turn, carried whole
    assert remembered.messages[-2:] == [
        {"role": "assistant", "content": "Saved."},
        {"role": "user", "content": "what did I say?"},
    ]


# --- 2. a custom tool and a denied confirmation ------------------------------------------------------------------


async def test_a_custom_tool_result_and_a_denial_reach_the_model_and_the_denied_command_never_runs(
    stdio: Connect, chat_model: ChatModelServer
) -> None:
    custom = {
        "type": "custom",
        "name": "approve",
        "description": "Ask the user to approve a plan.",
        "input_schema": {"type": "object", "properties": {"plan": {"type": "string"}}},
    }
    toolset = {"type": "agent_toolset_20260401", "default_config": {"permission_policy": {"type": "always_ask"}}}
    chat_model.enqueue(
        reply(tool_call("approve", {"plan": "clean up"})),
        reply(tool_call("bash", {"command": "touch /workspace/denied-ran"})),
        reply("I left it alone."),
        reply(tool_call("bash", {"command": "test -e /workspace/denied-ran && echo present || echo absent"})),
        reply("Checked."),
    )
    async with stdio() as client:
        agent = await call_ok(client, "create_agent", {"name": "careful", "tools": [toolset, custom]})
        sid = (await call_ok(client, "create_session", {"agent_id": agent["id"]}))["id"]
        step = await send(client, sid, "clean up")
        [custom_id] = step["stop_reason"]["event_ids"]
        content = "approved by the client"
        await call_ok(client, "submit_tool_result", {"session_id": sid, "tool_use_id": custom_id, "content": content})
        denied_id = await wait_requires_action(client, sid, exclude=custom_id)
        deny = {"session_id": sid, "tool_use_id": denied_id, "allow": False, "deny_message": "not on my machine"}
        await call_ok(client, "confirm_tool_use", deny)
        assert await wait_end_turn(client, sid) == "I left it alone."
        step = await send(client, sid, "is it there?")
        [check_id] = step["stop_reason"]["event_ids"]
        await call_ok(client, "confirm_tool_use", {"session_id": sid, "tool_use_id": check_id, "allow": True})
        assert await wait_end_turn(client, sid) == "Checked."
        events = await all_events(client, sid)

    [custom_use] = of_type(events, "agent.custom_tool_use")
    assert (custom_use["id"], custom_use["name"], custom_use["input"]) == (custom_id, "approve", {"plan": "clean up"})
    requests = chat_model.requests
    assert len(requests) == 5
    assert requests[1].tool_results() == {custom_id: {"role": "tool", "tool_call_id": custom_id, "content": content}}
    [(called_id, _, _)] = calls_in(requests[2].messages[-2])
    assert called_id == denied_id
    assert requests[2].tool_results()[denied_id]["content"] == "Error: not on my machine"
    assert requests[4].tool_results()[check_id]["content"].strip() == "absent"  # the denied touch never ran
    [confirmation, allowed] = of_type(events, "user.tool_confirmation")
    assert (confirmation["result"], confirmation["deny_message"]) == ("deny", "not on my machine")
    assert allowed["result"] == "allow"


# --- 3. an interrupt ---------------------------------------------------------------------------------------------


async def test_an_interrupt_stops_a_long_command_and_the_model_is_told(
    stdio: Connect, chat_model: ChatModelServer, docker_client: docker.DockerClient
) -> None:
    chat_model.enqueue(
        reply(tool_call("bash", {"command": LONG_COMMAND})),
        lambda request: reply(f"told: {request.messages[-2]['content']}"),
    )
    async with stdio() as client:
        sid = (await call_ok(client, "create_session", {"message": "sleep"}))["id"]
        # The interrupt must find the command running: wait until it shows in the sandbox's process list.
        await anyio.to_thread.run_sync(wait_for_running_command, docker_client, sid)
        with anyio.fail_after(HANG_GUARD_S):
            stopped = await call_ok(client, "interrupt_session", {"session_id": sid})
        assert stopped["status"] == "idle"
        assert docker_client.containers.list(all=True, filters={"label": f"{LABEL_SESSION}={sid}"}) == []
        after = await send(client, sid, "what happened?")
        events = await all_events(client, sid)

    [use] = of_type(events, "agent.tool_use")
    [result] = of_type(events, "agent.tool_result")
    assert result["tool_use_id"] == use["id"]
    assert result["is_error"] is True
    assert "interrupted" in result["content"][0]["text"]
    assert "user.interrupt" in [e["type"] for e in events]
    _, resumed = chat_model.requests
    assert roles(resumed) == ["user", "assistant", "tool", "user"]
    tool_message = resumed.messages[-2]
    assert tool_message["tool_call_id"] == use["id"]
    assert tool_message["content"].startswith("Error: ")
    assert "interrupted" in tool_message["content"]
    assert after["reply"] == f"told: {tool_message['content']}"


# --- 4. failures: retries, a bad key, a model without tools -----------------------------------------------------


async def test_server_errors_and_rate_limits_are_retried_until_exhausted_and_a_bad_key_is_not(
    stdio: Connect, chat_model: ChatModelServer
) -> None:
    chat_model.enqueue(error(503), error(429, retry_after=0.02), error(500), error(401))
    async with stdio() as client:
        sid = (await call_ok(client, "create_session", {}))["id"]
        outcome = await send(client, sid, "hi")
        assert outcome["stop_reason"]["type"] == "retries_exhausted"
        failures = [e["error"] for e in of_type(await all_events(client, sid), "session.error")]
        other = (await call_ok(client, "create_session", {}))["id"]
        refused = await send(client, other, "hi")
        assert refused["stop_reason"]["type"] == "retries_exhausted"
        [bad_key] = [e["error"] for e in of_type(await all_events(client, other), "session.error")]

    assert [(f["type"], f["retry_status"]["type"]) for f in failures] == [
        ("model_request_failed_error", "retrying"),
        ("model_rate_limited_error", "retrying"),
        ("model_request_failed_error", "exhausted"),
    ]
    assert "(503)" in failures[0]["message"]
    assert "retrying in 0.02 s" in failures[1]["message"]  # the endpoint's retry-after, not the schedule's 0.01
    assert (bad_key["type"], bad_key["retry_status"]["type"]) == ("authentication_error", "exhausted")
    assert "OPENAI_API_KEY" in bad_key["message"]
    assert "test-key" not in bad_key["message"]
    requests = chat_model.requests
    assert len(requests) == 4  # three tries, and the 401 once
    assert requests[0].messages == requests[1].messages == requests[2].messages


async def test_a_model_without_tool_calling_is_reported_on_the_first_turn(
    stdio: Connect, chat_model: ChatModelServer
) -> None:
    with ChatModelServer(tools_supported=False) as toolless:
        async with stdio(OPENAI_BASE_URL=toolless.base_url) as client:
            sid = (await call_ok(client, "create_session", {}))["id"]
            outcome = await send(client, sid, "hi")
            events = await all_events(client, sid)
        assert toolless.violations == []
        [request] = toolless.requests  # not retried: it cannot pass
    assert chat_model.requests == []
    assert request.tools
    assert outcome["stop_reason"]["type"] == "retries_exhausted"
    [failure] = [e["error"] for e in of_type(events, "session.error")]
    assert failure["type"] == "invalid_request_error"
    assert "'gpt-test'" in failure["message"]
    assert "does not support tool calls" in failure["message"]
    assert of_type(events, "agent.message") == []


# --- 5. kill -9 and resume ---------------------------------------------------------------------------------------


@pytest.fixture
def children() -> Iterator[list[StdioServer]]:
    """Servers started by a test; any still running at teardown are killed."""
    started: list[StdioServer] = []
    yield started
    for child in started:
        child.stop()


def test_a_model_request_in_flight_at_a_kill_is_asked_again_after_the_restart(
    subprocess_env: dict[str, str],
    chat_model: ChatModelServer,
    data_dir: Path,
    tmp_path: Path,
    docker_client: docker.DockerClient,
    children: list[StdioServer],
) -> None:
    release = threading.Event()
    stalled = hang("thinking...", release=release)
    chat_model.enqueue(stalled, reply("answered after the restart"))
    env = openai_env(subprocess_env, chat_model.base_url)
    first = StdioServer(env, tmp_path / "first.log")
    children.append(first)
    sid = first.call("create_session", {})["id"]
    first.call("send_message", {"session_id": sid, "text": "question", "wait_seconds": 0})
    stalled.wait_started(timeout_s=HANG_GUARD_S)
    first.kill_9()
    release.set()

    second = StdioServer(env, tmp_path / "second.log")
    children.append(second)
    idle = second.wait_for(sid, "session.status_idle")
    assert idle["stop_reason"]["type"] == "end_turn"
    events = read_log(data_dir, sid)
    assert_log_is_valid(events)
    messages = [e.model_dump() for e in events if e.type == "agent.message"]
    assert [m["content"][0]["text"] for m in messages] == ["answered after the restart"]
    second.call("delete_session", {"session_id": sid})
    asked, asked_again = chat_model.requests
    assert asked_again.messages == asked.messages == [{"role": "user", "content": "question"}]


def test_a_tool_running_at_a_kill_is_answered_as_interrupted_and_the_session_goes_on(
    subprocess_env: dict[str, str],
    chat_model: ChatModelServer,
    data_dir: Path,
    tmp_path: Path,
    docker_client: docker.DockerClient,
    children: list[StdioServer],
) -> None:
    chat_model.enqueue(
        reply(tool_call("bash", {"command": "echo before > /workspace/f && sleep 60"})),
        reply("recovered"),
        reply(tool_call("bash", {"command": "cat /workspace/f"})),
        lambda request: reply(f"file says {next(iter(request.tool_results().values()))['content'].strip()}"),
    )
    env = openai_env(subprocess_env, chat_model.base_url)
    first = StdioServer(env, tmp_path / "first.log")
    children.append(first)
    sid = first.call("create_session", {})["id"]
    first.call("send_message", {"session_id": sid, "text": "work", "wait_seconds": 0})
    use = first.wait_for(sid, "agent.tool_use")
    wait_for_running_command(docker_client, sid, "sleep 60")  # the tool is really running at the kill
    first.kill_9()

    second = StdioServer(env, tmp_path / "second.log")
    children.append(second)
    idle = second.wait_for(sid, "session.status_idle")
    assert idle["stop_reason"]["type"] == "end_turn"
    goes_on = second.call("send_message", {"session_id": sid, "text": "what is in f?", "wait_seconds": SEND_WAIT_S})
    assert goes_on["reply"] == "file says before"
    events = read_log(data_dir, sid)
    assert_log_is_valid(events)
    assert [e.type for e in events].count("user.message") == 2
    second.call("delete_session", {"session_id": sid})
    requests = chat_model.requests
    assert len(requests) == 4
    assert requests[1].tool_results() == {
        use["id"]: {"role": "tool", "tool_call_id": use["id"], "content": requests[1].messages[-1]["content"]}
    }
    answer = requests[1].messages[-1]["content"]
    assert answer.startswith("Error: ")
    assert "interrupted" in answer


# --- 6. two providers in one server ------------------------------------------------------------------------------


async def test_two_sessions_on_two_providers_run_at_once_in_one_server_and_log_the_same_events(
    stdio: Connect, chat_model: ChatModelServer, model: ModelServer
) -> None:
    # Each model's first answer waits for the other's first request: both sessions are in flight at once.
    def after_the_other(other: ModelServer | ChatModelServer, answer: Any) -> Callable[[Any], Any]:
        def turn(_request: Any) -> Any:
            other.wait_for_requests(1, timeout_s=HANG_GUARD_S)
            return answer

        return turn

    model.enqueue(
        after_the_other(chat_model, anthropic_reply(anthropic_tool_use("bash", {"command": "echo from-claude"}))),
        anthropic_reply("claude done"),
    )
    chat_model.enqueue(
        after_the_other(model, reply(tool_call("bash", {"command": "echo from-gpt"}))),
        reply("gpt done"),
    )
    outcomes: dict[str, dict[str, Any]] = {}
    async with stdio(ANTHROPIC_BASE_URL=model.base_url, ANTHROPIC_API_KEY="test-key") as client:
        claude = (await call_ok(client, "create_session", {"model": "claude-test-model"}))["id"]
        gpt = (await call_ok(client, "create_session", {"model": OPENAI_MODEL}))["id"]

        async def send_one(session_id: str, text: str) -> None:
            outcomes[session_id] = await send(client, session_id, text)

        with anyio.fail_after(HANG_GUARD_S):
            async with anyio.create_task_group() as tg:
                tg.start_soon(send_one, claude, "hello claude")
                tg.start_soon(send_one, gpt, "hello gpt")
        claude_events = await all_events(client, claude)
        gpt_events = await all_events(client, gpt)

    assert (outcomes[claude]["reply"], outcomes[gpt]["reply"]) == ("claude done", "gpt done")
    assert [e["type"] for e in claude_events] == [e["type"] for e in gpt_events]
    assert {r.model for r in model.requests} == {"claude-test-model"}
    assert {r.model for r in chat_model.requests} == {"gpt-test"}
    claude_seen = json.dumps([r.body for r in model.requests])
    gpt_seen = json.dumps([r.body for r in chat_model.requests])
    assert "hello claude" in claude_seen
    assert "from-claude" in claude_seen
    assert "hello gpt" in gpt_seen
    assert "from-gpt" in gpt_seen
    assert "hello gpt" not in claude_seen
    assert "from-gpt" not in claude_seen
    assert "hello claude" not in gpt_seen
    assert "from-claude" not in gpt_seen
    assert len(model.requests) == len(chat_model.requests) == 2


# --- 7. a declared endpoint --------------------------------------------------------------------------------------


async def test_a_declared_endpoint_gets_its_own_key_and_no_key_shows_anywhere(
    stdio: Connect, chat_model: ChatModelServer, tmp_path: Path, data_dir: Path
) -> None:
    openai_key = f"sk-openai-{secrets.token_hex(16)}"
    local_key = f"sk-local-{secrets.token_hex(16)}"
    with ChatModelServer(api_key=local_key) as local:  # it answers 401 to any other key, OPENAI_API_KEY's too
        providers = tmp_path / "providers.toml"
        providers.write_text(f'[endpoints.local]\nbase_url = "{local.base_url}"\napi_key_env = "LOCAL_KEY"\n')
        local.enqueue(reply(tool_call("bash", {"command": "echo hello-local"})), reply("local done"))
        env = {"MANAGED_SESSIONS_PROVIDERS": str(providers), "LOCAL_KEY": local_key, "OPENAI_API_KEY": openai_key}
        async with stdio(log_level="DEBUG", **env) as client:
            refused = await call_error(client, "create_session", {"model": "nope/x"})
            sid = (await call_ok(client, "create_session", {"model": "local/some-model"}))["id"]
            outcome = await send(client, sid, "hi local")
            events = await all_events(client, sid)
        assert local.violations == []
        requests = local.requests

    assert "no provider is named 'nope'" in refused
    assert "local" in refused
    assert "[endpoints.nope]" in refused
    assert outcome["reply"] == "local done"
    assert of_type(events, "session.error") == []
    assert [r.model for r in requests] == ["some-model", "some-model"]
    assert all(r.has_credentials and "max_tokens" in r.body for r in requests)
    assert "hello-local" in requests[1].tool_results()[of_type(events, "agent.tool_use")[0]["id"]]["content"]
    assert chat_model.requests == []  # the built-in openai endpoint was never asked
    recorded = json.dumps([[r.headers, r.body] for r in requests])
    log = (tmp_path / "server.log").read_text(encoding="utf-8")
    stored = "".join(f.read_bytes().decode(errors="ignore") for f in data_dir.rglob("*") if f.is_file())
    for key in (openai_key, local_key):
        assert key not in recorded
        assert key not in log
        assert key not in json.dumps(events)
        assert key not in stored
