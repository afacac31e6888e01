"""What the README promises about a session's run, checked in process: the real agent loop, the real `anthropic`
SDK against the scripted model, real Docker where a sandbox is involved, a real remote MCP server, real git.

- "Overloaded, rate-limited or unreachable models are retried with backoff (1, 2, 4, 8, 16 s, or the server's
  `retry-after`), each retry a `session.error` with `retry_status: retrying`; then the session idles with
  `retries_exhausted`."
- "when the conversation's estimated size passes `MANAGED_SESSIONS_CONTEXT_TOKENS` [...] old tool results (all but
  the newest three, then all if needed) are replaced by a short marker"
- "`interrupt_session`: Stops [...] the running tool (the tool's container is removed; files stay)"
- A repository failure idles the session "(`retries_exhausted`) without asking the model; its next message tries
  again."
- Remote MCP "Connections are reused for the session's life and closed on archive, delete and shutdown."
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import docker
import docker.errors
import keyring
import keyring.backends.SecretService
import pytest
from git_server import git_server, make_repository
from mcp import Client
from model_server import ModelServer, error, reply, tool_use
from remote_mcp_server import RemoteMcpServer
from sandbox_probes import LONG_COMMAND, containers_of, wait_for_running_command
from scenario import call_ok
from serving import connected
from vault_fixtures import RemoteVault, vault_with_bearer

from server.brain.conversation import TRIMMED
from server.brain.loop import RETRY_DELAYS_S
from server.core.config import DEFAULT_IMAGE, ServerConfig
from server.hands.docker.sandbox import LABEL_SESSION

pytestmark = pytest.mark.anyio

HANG_GUARD_S = 120
"""Only stops a test that hangs; what a test checks is events and states, never how long something took."""
"""Far longer than any test runs: it ends only if something stops it."""
MCP_TOKEN = "remote-token-8c41d0e7"


# --- helpers --------------------------------------------------------------------------------------------------


def env_config(data_dir: Path, model: ModelServer, **variables: str) -> ServerConfig:
    """The config `managed-sessions serve` would build from these variables (and the scripted model's)."""
    return ServerConfig.from_env(
        {
            "MANAGED_SESSIONS_DATA_DIR": str(data_dir),
            "MANAGED_SESSIONS_IMAGE": DEFAULT_IMAGE,
            "MANAGED_SESSIONS_MODEL": "claude-test",
            "ANTHROPIC_API_KEY": "test-key",
            "ANTHROPIC_BASE_URL": model.base_url,
            "MANAGED_SESSIONS_WARM_POOL": "0",  # containers are found by session label (test_warm_pool.py)
            **variables,
        }
    )


async def wait_idle_after(client: Client, session_id: str, after: str) -> dict[str, Any]:
    """The first `session.status_idle` after the event `after` (long-polled; bounded)."""
    with anyio.fail_after(HANG_GUARD_S):
        while True:
            page = await call_ok(
                client,
                "get_events",
                {"session_id": session_id, "after": after, "wait_seconds": 10, "types": ["session.status_idle"]},
            )
            if page["events"]:
                return dict(page["events"][0])


async def wait_for_type(client: Client, session_id: str, after: str, event_type: str) -> dict[str, Any]:
    with anyio.fail_after(HANG_GUARD_S):
        while True:
            page = await call_ok(
                client,
                "get_events",
                {"session_id": session_id, "after": after, "wait_seconds": 10, "types": [event_type]},
            )
            if page["events"]:
                return dict(page["events"][0])


async def all_events(client: Client, session_id: str) -> list[dict[str, Any]]:
    page = await call_ok(client, "get_events", {"session_id": session_id, "limit": 200})
    assert not page["has_more"]
    return list(page["events"])


def tool_results(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [b for m in messages if isinstance(m["content"], list) for b in m["content"] if b["type"] == "tool_result"]


def result_texts(messages: list[dict[str, Any]]) -> list[str]:
    return ["".join(part["text"] for part in block["content"]) for block in tool_results(messages)]


# --- retries ----------------------------------------------------------------------------------------------------


def announced_waits(events: list[dict[str, Any]]) -> list[float]:
    """The waits the retrying `session.error`s announce ("...; retrying in 0.05 s (retry 1 of 3)")."""
    found = [
        re.search(r"retrying in ([0-9.e+-]+) s", e["error"]["message"]) for e in events if e["type"] == "session.error"
    ]
    return [float(match.group(1)) for match in found if match is not None]


def retry_statuses(events: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(e["error"]["type"], e["error"]["retry_status"]["type"]) for e in events if e["type"] == "session.error"]


def test_the_default_retry_schedule_is_the_readmes_and_the_variable_replaces_it() -> None:
    """Without MANAGED_SESSIONS_MODEL_RETRY_DELAYS the runner gets the README's 1, 2, 4, 8, 16 s."""
    assert ServerConfig.from_env({}).model_retry_delays_s is None  # the runtime then passes RETRY_DELAYS_S
    assert RETRY_DELAYS_S == (1.0, 2.0, 4.0, 8.0, 16.0)
    given = ServerConfig.from_env({"MANAGED_SESSIONS_MODEL_RETRY_DELAYS": "0.5, 3,7"})
    assert given.model_retry_delays_s == (0.5, 3.0, 7.0)


async def test_a_failing_model_is_retried_on_the_configured_schedule_then_retries_exhausted(
    data_dir: Path, model: ModelServer
) -> None:
    """Each retry is one `session.error` (retrying), waits the next configured delay, and asks the model again;
    after the last delay the error is `exhausted` and the session idles with `retries_exhausted`."""
    config = env_config(data_dir, model, MANAGED_SESSIONS_MODEL_RETRY_DELAYS="0.01,0.02,0.03")
    model.enqueue(*[error(529, "overloaded_error", "busy") for _ in range(4)])
    async with connected(config) as client:
        session = await call_ok(client, "create_session", {})
        outcome = await call_ok(client, "send_message", {"session_id": session["id"], "text": "hi"})
    assert outcome["status"] == "idle"
    assert outcome["stop_reason"]["type"] == "retries_exhausted"
    assert retry_statuses(outcome["events"]) == [
        ("model_overloaded_error", "retrying"),
        ("model_overloaded_error", "retrying"),
        ("model_overloaded_error", "retrying"),
        ("model_overloaded_error", "exhausted"),
    ]
    assert announced_waits(outcome["events"]) == [0.01, 0.02, 0.03]
    assert len(model.requests) == 4  # the first request and one per delay
    assert model.remaining == 0


async def test_a_retry_that_then_succeeds_ends_the_turn_normally(data_dir: Path, model: ModelServer) -> None:
    config = env_config(data_dir, model, MANAGED_SESSIONS_MODEL_RETRY_DELAYS="0.01,0.02,0.03")
    model.enqueue(error(503, "api_error", "down"), error(529, "overloaded_error"), reply("Here now."))
    async with connected(config) as client:
        session = await call_ok(client, "create_session", {})
        outcome = await call_ok(client, "send_message", {"session_id": session["id"], "text": "hi"})
    assert outcome["stop_reason"]["type"] == "end_turn"
    assert outcome["reply"] == "Here now."
    assert retry_statuses(outcome["events"]) == [
        ("model_request_failed_error", "retrying"),
        ("model_overloaded_error", "retrying"),
    ]
    assert announced_waits(outcome["events"]) == [0.01, 0.02]


@pytest.mark.parametrize(
    ("status", "kind"), [(429, "rate_limit_error"), (529, "overloaded_error")], ids=["rate-limited", "overloaded"]
)
async def test_the_servers_retry_after_replaces_the_scheduled_delay(
    data_dir: Path, model: ModelServer, status: int, kind: str
) -> None:
    """The README: "retried with backoff (1, 2, 4, 8, 16 s, or the server's `retry-after`)" for overloaded and
    rate-limited models alike. The schedule here says 0.01 s; the server says 0.05 s; the server wins."""
    config = env_config(data_dir, model, MANAGED_SESSIONS_MODEL_RETRY_DELAYS="0.01,0.01")
    model.enqueue(error(status, kind, retry_after=0.05), reply("Thanks for waiting."))
    async with connected(config) as client:
        session = await call_ok(client, "create_session", {})
        outcome = await call_ok(client, "send_message", {"session_id": session["id"], "text": "hi"})
    assert outcome["reply"] == "Thanks for waiting."
    assert [s for _, s in retry_statuses(outcome["events"])] == ["retrying"]
    assert announced_waits(outcome["events"]) == [0.05]


# --- context trimming -------------------------------------------------------------------------------------------

LOOKUP = {
    "type": "custom",
    "name": "lookup",
    "description": "Look a page up.",
    "input_schema": {"type": "object", "properties": {"page": {"type": "integer"}}},
}
PAGE_CHARS = 2_000


def page_text(page: int) -> str:
    return f"page {page}: " + "x" * PAGE_CHARS


async def answer_lookups(client: Client, pages: int) -> tuple[str, dict[str, Any]]:
    """A session whose model looks up `pages` pages in one turn; each answer is ~2,000 characters (~500 tokens).

    Custom tools keep this free of Docker and make every result exactly the size the test chose. Returns the
    session id and the idle that ends the turn."""
    agent = await call_ok(client, "create_agent", {"name": "reader", "tools": [LOOKUP]})
    session = await call_ok(client, "create_session", {"agent_id": agent["id"]})
    sid = session["id"]
    asked = await call_ok(client, "send_message", {"session_id": sid, "text": f"read pages 0 to {pages - 1}"})
    assert asked["stop_reason"]["type"] == "requires_action"
    uses = [e for e in asked["events"] if e["type"] == "agent.custom_tool_use"]
    assert [u["input"]["page"] for u in uses] == list(range(pages))
    mark = asked["next_cursor"]
    for use in uses:
        await call_ok(
            client,
            "submit_tool_result",
            {"session_id": sid, "tool_use_id": use["id"], "content": page_text(use["input"]["page"])},
        )
    return sid, await wait_idle_after_turn(client, sid, mark)


async def wait_idle_after_turn(client: Client, session_id: str, after: str) -> dict[str, Any]:
    """The idle that ends the turn (answers re-idle the session with `requires_action` until the last one)."""
    with anyio.fail_after(HANG_GUARD_S):
        while True:
            idle = await wait_idle_after(client, session_id, after)
            if idle["stop_reason"]["type"] != "requires_action":
                return idle
            after = idle["id"]


def test_managed_sessions_context_tokens_sets_the_budget() -> None:
    assert ServerConfig.from_env({}).context_budget_tokens == 150_000
    assert ServerConfig.from_env({"MANAGED_SESSIONS_CONTEXT_TOKENS": "2000"}).context_budget_tokens == 2_000


async def test_past_the_budget_all_but_the_newest_three_tool_results_are_trimmed(
    data_dir: Path, model: ModelServer
) -> None:
    """Five results of ~500 tokens against MANAGED_SESSIONS_CONTEXT_TOKENS=2000: the whole conversation (~2,800)
    is over, the newest three (~1,800 with the rest) fit, so exactly the two oldest become the marker."""
    config = env_config(data_dir, model, MANAGED_SESSIONS_CONTEXT_TOKENS="2000")
    model.enqueue(reply(*[tool_use("lookup", {"page": page}) for page in range(5)]), reply("Read them all."))
    async with connected(config) as client:
        sid, idle = await answer_lookups(client, 5)
        assert idle["stop_reason"]["type"] == "end_turn"
        events = await all_events(client, sid)
    answered = model.requests[-1]
    assert result_texts(answered.messages) == [TRIMMED, TRIMMED, page_text(2), page_text(3), page_text(4)]
    compactions = [e for e in events if e["type"] == "agent.thread_context_compacted"]
    results = [e for e in events if e["type"] == "user.custom_tool_result"]
    assert [c["trimmed_before_seq"] for c in compactions] == [results[2]["seq"]]  # everything before the third newest
    assert all(c["estimated_tokens_before"] > 2_000 for c in compactions)
    stored = [r["content"][0]["text"] for r in results]
    assert stored == [page_text(page) for page in range(5)]  # the log keeps the full results


async def test_when_the_newest_three_are_still_too_big_every_tool_result_is_trimmed(
    data_dir: Path, model: ModelServer
) -> None:
    """Four results of ~500 tokens against a budget of 1,000: trimming the oldest is not enough (the newest three
    are ~1,500), so a second compaction trims them all."""
    config = env_config(data_dir, model, MANAGED_SESSIONS_CONTEXT_TOKENS="1000")
    model.enqueue(reply(*[tool_use("lookup", {"page": page}) for page in range(4)]), reply("Done."))
    async with connected(config) as client:
        sid, idle = await answer_lookups(client, 4)
        assert idle["stop_reason"]["type"] == "end_turn"
        events = await all_events(client, sid)
    assert result_texts(model.requests[-1].messages) == [TRIMMED] * 4
    compactions = [e for e in events if e["type"] == "agent.thread_context_compacted"]
    results = [e for e in events if e["type"] == "user.custom_tool_result"]
    assert [c["trimmed_before_seq"] for c in compactions] == [results[1]["seq"], results[-1]["seq"] + 1]


async def test_under_the_budget_nothing_is_trimmed(data_dir: Path, model: ModelServer) -> None:
    """The same four results with the default budget (150,000) reach the model whole."""
    config = env_config(data_dir, model)
    model.enqueue(reply(*[tool_use("lookup", {"page": page}) for page in range(4)]), reply("Done."))
    async with connected(config) as client:
        sid, _ = await answer_lookups(client, 4)
        events = await all_events(client, sid)
    assert result_texts(model.requests[-1].messages) == [page_text(page) for page in range(4)]
    assert not [e for e in events if e["type"] == "agent.thread_context_compacted"]


# --- interrupts -------------------------------------------------------------------------------------------------


@pytest.mark.docker
async def test_an_interrupt_removes_the_tools_container_and_keeps_the_files(
    data_dir: Path, model: ModelServer, docker_client: docker.DockerClient
) -> None:
    """Interrupting a running bash command removes the container from the engine (not just the command), and the
    next call gets a new container over the same /workspace and outputs."""
    config = env_config(data_dir, model, MANAGED_SESSIONS_MODEL_RETRY_DELAYS="0.01")
    model.enqueue(
        reply(tool_use("bash", {"command": "echo kept > /workspace/notes.txt && echo out > /mnt/session/outputs/o"})),
        reply(tool_use("bash", {"command": LONG_COMMAND})),
        reply(tool_use("bash", {"command": "cat /workspace/notes.txt /mnt/session/outputs/o"})),
        lambda request: reply(f"read: {result_texts(request.messages)[-1]}"),
    )
    async with connected(config) as client:
        session = await call_ok(client, "create_session", {})
        sid = session["id"]
        started = await call_ok(client, "send_message", {"session_id": sid, "text": "work", "wait_seconds": 0})
        await wait_for_type(client, sid, started["next_cursor"], "agent.tool_result")  # the file is written
        running = await anyio.to_thread.run_sync(wait_for_running_command, docker_client, sid)

        stopped = await call_ok(client, "interrupt_session", {"session_id": sid})
        assert stopped["status"] == "idle"
        assert containers_of(docker_client, sid) == []  # removed from the engine, not only stopped
        with pytest.raises(docker.errors.NotFound):
            docker_client.containers.get(running)
        volumes = docker_client.volumes.list(filters={"label": f"{LABEL_SESSION}={sid}"})
        assert len(volumes) == 2  # /workspace and the outputs stay
        [interrupted] = [e for e in await all_events(client, sid) if e["type"] == "agent.tool_result"][1:]
        assert interrupted["is_error"]
        assert "interrupted" in interrupted["content"][0]["text"]

        again = await call_ok(client, "send_message", {"session_id": sid, "text": "what is in the notes?"})
        assert again["reply"] == "read: kept\nout"
        [fresh] = containers_of(docker_client, sid)
        assert fresh.id != running
        await call_ok(client, "delete_session", {"session_id": sid})


# --- repositories -----------------------------------------------------------------------------------------------


@pytest.fixture
def real_keyring(keyring_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """This process talks to the test's own SecretService (a repository's delivery looks up its own token there)."""
    previous = keyring.get_keyring()
    for name, value in keyring_env.items():
        monkeypatch.setenv(name, value)
    keyring.set_keyring(keyring.backends.SecretService.Keyring())  # detected once per process: name it
    yield keyring_env
    keyring.set_keyring(previous)


@pytest.mark.docker
@pytest.mark.keyring
async def test_a_repository_that_failed_is_cloned_on_the_next_message_and_the_turn_runs(
    data_dir: Path,
    model: ModelServer,
    docker_client: docker.DockerClient,
    real_keyring: dict[str, str],
    tmp_path: Path,
) -> None:
    """The repository does not exist yet: `repository_not_found_error`, idle `retries_exhausted`, and the model is
    never asked. Once it exists (the cause is fixed), the next message clones it and the turn runs."""
    served = tmp_path / "served"
    served.mkdir()
    config = env_config(data_dir, model)
    model.enqueue(
        reply(tool_use("bash", {"command": "cat /workspace/proj/README.md"})),
        lambda request: reply(f"it says {result_texts(request.messages)[-1]}"),
    )
    with git_server(served, token="unused-token-0000", public=frozenset({"proj"})) as git:
        async with connected(config) as client:
            resource = {"type": "github_repository", "url": git.url("proj")}
            session = await call_ok(client, "create_session", {"resources": [resource]})
            sid = session["id"]
            failed = await call_ok(client, "send_message", {"session_id": sid, "text": "read the readme"})
            assert failed["stop_reason"]["type"] == "retries_exhausted"
            [failure] = [e["error"] for e in failed["events"] if e["type"] == "session.error"]
            assert failure["type"] == "repository_not_found_error"
            assert git.url("proj") in failure["message"]
            assert model.requests == []

            make_repository(served, "proj")  # the cause goes away
            fixed = await call_ok(client, "send_message", {"session_id": sid, "text": "try again"})
            assert fixed["stop_reason"]["type"] == "end_turn"
            assert not [e for e in fixed["events"] if e["type"] == "session.error"]
            assert fixed["reply"] == "it says # proj"
            # The model's first request is the turn that ran: both messages, in one user message.
            assert [m["role"] for m in model.requests[0].messages] == ["user"]
            await call_ok(client, "delete_session", {"session_id": sid})
    assert any(r.path.endswith("/git-upload-pack") for r in git.requests)


# --- remote MCP connections ----------------------------------------------------------------------------------------


@pytest.fixture
def remote() -> Iterator[RemoteMcpServer]:
    with RemoteMcpServer(token=MCP_TOKEN) as running:
        yield running


@pytest.fixture
def remote_vault(data_dir: Path, remote: RemoteMcpServer) -> RemoteVault:
    """A vault holding the remote server's token; sessions that name it reach the server with it."""
    return vault_with_bearer(ServerConfig(data_dir=data_dir).vault_index_path, remote.url, MCP_TOKEN)


def established_from(server_port: int, client_ports: set[int]) -> set[int]:
    """Which of `client_ports` still hold an ESTABLISHED TCP connection to 127.0.0.1:`server_port`, as the
    kernel's socket table (/proc/net/tcp) says. The remote MCP transport is stateless Streamable HTTP (no
    `Mcp-Session-Id`, so no DELETE on close): an open connection is a kept-alive TCP connection, and closing it
    is the client closing that socket."""
    table = Path("/proc/net/tcp").read_text(encoding="ascii").splitlines()[1:]
    peer = f"0100007F:{server_port:04X}"
    found = set()
    for line in table:
        local, remote_address, state = line.split()[1:4]
        port = int(local.rsplit(":", 1)[1], 16)
        if state == "01" and remote_address == peer and port in client_ports:
            found.add(port)
    return found


def mcp_ports(remote: RemoteMcpServer) -> tuple[int, set[int]]:
    server_port = int(remote.url.rsplit(":", 1)[1].split("/")[0])
    return server_port, {r.client_port for r in remote.seen if r.client_port is not None}


@pytest.mark.parametrize(
    "ending",
    [pytest.param("archive", marks=pytest.mark.docker), pytest.param("delete", marks=pytest.mark.docker), "shutdown"],
)
async def test_remote_mcp_connections_are_closed_on_archive_delete_and_shutdown(
    data_dir: Path,
    model: ModelServer,
    remote: RemoteMcpServer,
    remote_vault: RemoteVault,
    request: pytest.FixtureRequest,
    ending: str,
) -> None:
    """After a run, the session's connection to its MCP server stays open (reused by the next run); archiving,
    deleting the session or stopping the server closes it. (Archive and delete also touch the sandbox, hence
    Docker.) The remote server keeps idle connections for 5 s, far longer than this takes; the check that the
    connection is open just before the ending is what makes the check after it mean something."""
    if ending != "shutdown":
        request.getfixturevalue("docker_client")  # archive and delete remove the sandbox too
    config = env_config(data_dir, model)
    agent = {
        "name": "researcher",
        "tools": [
            {
                "type": "mcp_toolset",
                "mcp_server_name": "docs",
                "default_config": {"permission_policy": {"type": "always_allow"}},
            }
        ],
        "mcp_servers": [{"type": "url", "name": "docs", "url": remote.url}],
    }
    model.enqueue(reply(tool_use("mcp__docs__add", {"a": 1, "b": 2})), reply("It is 3."))
    async with connected(config, secrets=remote_vault.secrets) as client:
        created = await call_ok(client, "create_agent", agent)
        new = {"agent_id": created["id"], "vault_ids": [remote_vault.vault_id]}
        session = await call_ok(client, "create_session", new)
        outcome = await call_ok(client, "send_message", {"session_id": session["id"], "text": "add"})
        assert outcome["reply"] == "It is 3."
        assert remote.count("tools/call") == 1
        server_port, client_ports = mcp_ports(remote)
        assert established_from(server_port, client_ports)  # kept for the session's next run

        if ending == "archive":
            await call_ok(client, "archive_session", {"session_id": session["id"]})
            assert established_from(server_port, client_ports) == set()
        elif ending == "delete":
            await call_ok(client, "delete_session", {"session_id": session["id"]})
            assert established_from(server_port, client_ports) == set()
    assert established_from(server_port, client_ports) == set()
