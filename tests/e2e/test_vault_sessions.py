"""The vault end to end: secrets stored with the real CLI in a real SecretService keyring, a stdio server
using them for a private git repository and a remote MCP server, and then the audit: no secret in the
database, the data dir, the server's log, any event, any tool return, any model request, the container's
configuration or its whole filesystem."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import docker
import pytest
from git_server import GitServer, git_server, make_repository
from mcp import Client, StdioServerParameters, stdio_client
from model_server import ModelServer, reply, tool_use
from processes import SERVER, python_path_env
from remote_mcp_server import RemoteMcpServer
from secrets_audit import container_holds, forms_of, stream_holds, tree_holds

from server.core.config import DEFAULT_IMAGE
from server.hands.docker.sandbox import LABEL_SESSION

pytestmark = [pytest.mark.docker, pytest.mark.keyring, pytest.mark.anyio]

GIT_TOKEN = "ghs_e2eGitToken7f3a9c1d5e8b2f40"
WRONG_GIT_TOKEN = "ghs_wrongGitToken000000000000000"
MCP_TOKEN = "mcp_e2eBearer_b61f0e2d9c7a48355"
WRONG_MCP_TOKEN = "mcp_wrongBearer_1111111111111111"
SECRETS = (GIT_TOKEN, WRONG_GIT_TOKEN, MCP_TOKEN, WRONG_MCP_TOKEN)
NEEDLES = [form for secret in SECRETS for form in forms_of(secret)]


class Recording:
    """Every tool call's result as the client got it (for the audit)."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.returns: list[str] = []

    async def call(self, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
        result = await self.client.call_tool(tool, arguments)
        self.returns.append(result.model_dump_json())
        assert not result.is_error, f"{tool} failed: {result.content}"
        assert result.structured_content is not None
        return result.structured_content


@pytest.fixture
def model() -> AsyncIterator[ModelServer]:
    with ModelServer() as server:
        yield server  # type: ignore[misc]


@pytest.fixture
def env(
    subprocess_env: dict[str, str], keyring_env: dict[str, str], model: ModelServer, docker_client: docker.DockerClient
) -> dict[str, str]:
    return python_path_env(
        {
            **subprocess_env,
            **keyring_env,
            "ANTHROPIC_BASE_URL": model.base_url,
            "ANTHROPIC_API_KEY": "test-key",
            "MANAGED_SESSIONS_IMAGE": DEFAULT_IMAGE,
        }
    )


def vault_cli(env: dict[str, str], *args: str, stdin: str = "", extra_env: dict[str, str] | None = None) -> str:
    """`managed-sessions vault ...` as a user runs it; the secret comes on stdin or from the environment."""
    done = subprocess.run(
        [*SERVER, "vault", *args],
        env={**env, **(extra_env or {})},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert not stream_holds([done.stdout.encode(), done.stderr.encode()], NEEDLES)
    return done.stdout


def make_vault(env: dict[str, str], name: str, git_host: str, git_token: str, mcp_url: str, mcp_token: str) -> str:
    vault_id = str(json.loads(vault_cli(env, "create", name, "--json"))["id"])
    vault_cli(env, "add", vault_id, "--type", "github_token", "--match", git_host, "--stdin", stdin=git_token)
    vault_cli(
        env,
        "add",
        vault_id,
        "--type",
        "static_bearer",
        "--match",
        mcp_url,
        "--from-env",
        "MCP_SECRET",
        extra_env={"MCP_SECRET": mcp_token},
    )
    return vault_id


def keyring_holds(env: dict[str, str], name: str) -> bool:
    """Whether the server's keyring service holds an entry by that name (asked from another process)."""
    probe = (
        "import sys, keyring, keyring.backends.SecretService as s; keyring.set_keyring(s.Keyring()); "
        "sys.exit(0 if keyring.get_password('managed-sessions', sys.argv[1]) is not None else 3)"
    )
    done = subprocess.run([sys.executable, "-c", probe, name], env=env, capture_output=True, timeout=60, check=False)
    assert done.returncode in (0, 3), done.stderr
    return done.returncode == 0


@pytest.fixture
def git(tmp_path: Path) -> AsyncIterator[GitServer]:
    make_repository(tmp_path / "served", "proj", files=20)
    with git_server(tmp_path / "served", GIT_TOKEN) as server:
        yield server  # type: ignore[misc]


@pytest.fixture
def remote_mcp() -> AsyncIterator[RemoteMcpServer]:
    with RemoteMcpServer(MCP_TOKEN) as server:
        yield server  # type: ignore[misc]


@pytest.fixture
def stdio(env: dict[str, str], tmp_path: Path) -> Callable[[], Any]:
    @asynccontextmanager
    async def connect() -> AsyncIterator[Recording]:
        params = StdioServerParameters(command=sys.executable, args=["-m", "server", "serve"], env=env)
        with (tmp_path / "server.log").open("a") as errlog:
            async with Client(stdio_client(params, errlog=errlog)) as client:
                yield Recording(client)

    return connect


async def settle(mcp: Recording, session_id: str) -> dict[str, Any]:
    """Waits until the session is idle; returns it."""
    for _ in range(120):
        state = await mcp.call("get_session", {"session_id": session_id})
        if state["status"] == "idle":
            return state
        await mcp.call("get_events", {"session_id": session_id, "wait_seconds": 0.5, "types": ["user.interrupt"]})
    raise AssertionError(f"session {session_id} never went idle")


async def all_events(mcp: Recording, session_id: str) -> list[dict[str, Any]]:
    page = await mcp.call("get_events", {"session_id": session_id, "limit": 200})
    assert not page["has_more"]
    return list(page["events"])


async def test_private_repository_and_remote_mcp_through_the_vault_leave_no_secret_anywhere(
    env: dict[str, str],
    stdio: Callable[[], Any],
    model: ModelServer,
    git: GitServer,
    remote_mcp: RemoteMcpServer,
    docker_client: docker.DockerClient,
    data_dir: Path,
    tmp_path: Path,
) -> None:
    team = make_vault(env, "team", git.origin, GIT_TOKEN, remote_mcp.url, MCP_TOKEN)
    wrong = make_vault(env, "stale", git.origin, WRONG_GIT_TOKEN, remote_mcp.url, WRONG_MCP_TOKEN)
    repo = {"type": "github_repository", "url": git.url("proj")}
    servers = [{"type": "url", "name": "tools", "url": remote_mcp.url}]
    toolsets = [{"type": "agent_toolset_20260401"}, {"type": "mcp_toolset", "mcp_server_name": "tools"}]
    model.enqueue(
        reply(tool_use("read", {"file_path": "/workspace/proj/README.md"})),
        lambda request: reply(f"The readme: {request.tool_results()}"),
        reply(tool_use("mcp__tools__echo_token", {})),
        lambda request: reply(f"The server said: {request.tool_results()}"),
        reply("I have no tools from that server."),
        reply(tool_use("read", {"file_path": "/workspace/own/README.md"})),
        lambda request: reply(f"Mine: {request.tool_results()}"),
    )
    async with stdio() as mcp:
        # A private repository, cloned with the vault's github_token before the first turn.
        cloned = await mcp.call("create_session", {"resources": [repo], "vault_ids": [team], "message": "read it"})
        assert cloned["resources"][0]["mount_path"] == "/workspace/proj"
        state = await settle(mcp, cloned["id"])
        assert state["stop_reason"]["type"] == "end_turn"
        final = [e for e in await all_events(mcp, cloned["id"]) if e["type"] == "agent.message"][-1]
        assert "# proj" in final["content"][0]["text"]  # the agent read the file from the clone

        # The wrong token: repository_authentication_error, and the model is never asked.
        requests_before = len(model.requests)
        refused = await mcp.call("create_session", {"resources": [repo], "vault_ids": [wrong], "message": "read"})
        state = await settle(mcp, refused["id"])
        assert state["stop_reason"]["type"] == "retries_exhausted"
        errors = [e["error"] for e in await all_events(mcp, refused["id"]) if e["type"] == "session.error"]
        assert [e["type"] for e in errors] == ["repository_authentication_error"]
        assert len(model.requests) == requests_before

        # A remote MCP server's tool, with the vault's bearer token; always_ask by default.
        agent = await mcp.call("create_agent", {"name": "mcp", "tools": toolsets, "mcp_servers": servers})
        asked = await mcp.call("create_session", {"agent_id": agent["id"], "vault_ids": [team], "message": "echo"})
        state = await settle(mcp, asked["id"])
        assert state["stop_reason"]["type"] == "requires_action"
        [use_id] = state["stop_reason"]["event_ids"]
        await mcp.call("confirm_tool_use", {"session_id": asked["id"], "tool_use_id": use_id, "allow": True})
        state = await settle(mcp, asked["id"])
        assert state["stop_reason"]["type"] == "end_turn"
        events = await all_events(mcp, asked["id"])
        [result] = [e for e in events if e["type"] == "agent.mcp_tool_result"]
        assert result["mcp_tool_use_id"] == use_id
        assert "[REDACTED]" in json.dumps(result["content"])  # the tool echoed its token; it was scrubbed
        assert remote_mcp.count("tools/call") == 1

        # The wrong bearer token: mcp_authentication_failed_error, and the session still answers.
        stale = await mcp.call("create_session", {"agent_id": agent["id"], "vault_ids": [wrong], "message": "hi"})
        state = await settle(mcp, stale["id"])
        assert state["stop_reason"]["type"] == "end_turn"
        errors = [e["error"] for e in await all_events(mcp, stale["id"]) if e["type"] == "session.error"]
        assert [e["type"] for e in errors] == ["mcp_authentication_failed_error"]
        assert "mcp__tools__echo_token" not in model.requests[-1].tool_names

        # A repository with its own write-only token, no vault: kept in the keyring, never shown.
        resource = {**repo, "mount_path": "/workspace/own", "authorization_token": GIT_TOKEN}
        own = await mcp.call("create_session", {"resources": [resource], "message": "read yours"})
        assert set(own["resources"][0]) == {"id", "type", "url", "mount_path", "checkout", "created_at", "updated_at"}
        assert (await settle(mcp, own["id"]))["stop_reason"]["type"] == "end_turn"
        final = [e for e in await all_events(mcp, own["id"]) if e["type"] == "agent.message"][-1]
        assert "# proj" in final["content"][0]["text"]
        resource_id = own["resources"][0]["id"]
        assert keyring_holds(env, resource_id)

        # The audit. Every event and every tool return so far, as the client saw them:
        sessions = [cloned["id"], refused["id"], asked["id"], stale["id"], own["id"]]
        for session_id in sessions:
            await all_events(mcp, session_id)
        assert not stream_holds([r.encode() for r in mcp.returns], NEEDLES)
        # the model's context, request by request:
        assert not stream_holds([json.dumps(r.body).encode() for r in model.requests], NEEDLES)
        # the containers' configuration and whole filesystems (the audit finds what is there: a canary):
        containers = docker_client.containers.list(all=True, filters={"label": f"{LABEL_SESSION}={cloned['id']}"})
        assert containers
        for container in containers:
            assert not stream_holds([json.dumps(container.attrs).encode()], NEEDLES)
            container.exec_run(["sh", "-c", "echo audit-canary-4c1e > /workspace/canary"])
            assert container_holds(docker_client, container.id, [*NEEDLES, b"audit-canary-4c1e"]) == {
                b"audit-canary-4c1e"
            }
        for session_id in sessions:
            await mcp.call("delete_session", {"session_id": session_id})
        assert not keyring_holds(env, resource_id)  # the resource's token went with its session
    # the database (with its WAL), the vault's index, the repository cache, everything under the data dir:
    assert tree_holds(data_dir, [*NEEDLES, team.encode()]).keys() >= {str(data_dir / "vault" / "index.json")}
    assert tree_holds(data_dir, NEEDLES) == {}
    # and the server's log:
    log = (tmp_path / "server.log").read_bytes()
    assert b"proj" in log or b"sesn_" in log  # the log is there and says things
    assert not stream_holds([log], NEEDLES)
