"""The keyring daemon dies while a session needs a credential from it: the session records a clear error and runs
on without that credential's server, the server answers throughout, and once the keyring is back the next run
uses it.

Real parts: a private D-Bus with gnome-keyring (tests/keyring_daemon.py), a real remote MCP server that wants a
bearer token (tests/remote_mcp_server.py), and the vault in process, so the server's keyring calls reach that
D-Bus. The credential is added before the server starts and the daemon dies before the server ever reads it (the
vault keeps a secret in memory once read, so a later death would go unnoticed, as it should).
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import anyio
import pytest
from keyring_daemon import KeyringDaemons
from log_checks import assert_log_is_valid, read_log
from mcp import Client
from model_server import ModelServer, RecordedRequest, Reply, reply, tool_use
from remote_mcp_server import RemoteMcpServer
from scenario import call_error, call_ok
from serving import connected

import server.core.blocking
from server.core.config import ServerConfig
from vault import Secret
from vault.vaults import Vaults

pytestmark = [pytest.mark.keyring, pytest.mark.anyio]

HANG_GUARD_S = 60
TOKEN = "remote-bearer-5e1d03c9a7"


@pytest.fixture
def config(data_dir: Path) -> ServerConfig:
    return ServerConfig(data_dir=data_dir, model="claude-test", model_key_present=True, model_retry_delays_s=(0.01,))


@pytest.fixture
def remote() -> Any:
    with RemoteMcpServer(token=TOKEN) as server:
        yield server


def add_bearer(config: ServerConfig, remote: RemoteMcpServer) -> tuple[str, str]:
    """A vault with the remote server's token, as `managed-sessions vault add` would leave it; (vault, credential)."""
    vaults = Vaults(config.vault_index_path)
    vault = vaults.create_vault("team")
    credential = vaults.add_credential(vault.id, "static_bearer", remote.url, secret=Secret("bearer", TOKEN))
    return vault.id, credential.id


async def mcp_session(client: Client, remote: RemoteMcpServer, vault_id: str) -> str:
    allow = {"permission_policy": {"type": "always_allow"}}
    agent = await call_ok(
        client,
        "create_agent",
        {
            "name": "researcher",
            "tools": [{"type": "mcp_toolset", "mcp_server_name": "docs", "default_config": allow}],
            "mcp_servers": [{"type": "url", "name": "docs", "url": remote.url}],
        },
    )
    session = await call_ok(client, "create_session", {"agent_id": agent["id"], "vault_ids": [vault_id]})
    return str(session["id"])


def offered(request: RecordedRequest) -> Reply:
    return reply(f"offered {request.tool_names}")


def errors_of(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e["error"] for e in events if e["type"] == "session.error"]


async def test_a_keyring_daemon_killed_before_a_credential_is_read_is_a_session_error_and_the_session_recovers(
    config: ServerConfig, model: ModelServer, remote: RemoteMcpServer, daemons: KeyringDaemons
) -> None:
    vault_id, credential_id = add_bearer(config, remote)
    daemons.kill_secrets_daemon()  # D-Bus starts a new one on the next call: locked, its prompt dismissed
    model.enqueue(
        offered,
        reply(tool_use("mcp__docs__add", {"a": 2, "b": 3})),
        lambda request: reply(f"got {[r['content'] for r in request.tool_results().values()]}"),
    )
    with anyio.fail_after(HANG_GUARD_S):
        async with connected(config) as client:
            sid = await mcp_session(client, remote, vault_id)
            first = await call_ok(client, "send_message", {"session_id": sid, "text": "add 2 and 3"})
            assert first["stop_reason"]["type"] == "end_turn"
            assert first["reply"] == "offered []"  # it ran on, without the server it could not authenticate to
            (failure,) = errors_of(first["events"])
            assert failure["type"] == "mcp_authentication_failed_error"
            assert failure["mcp_server_name"] == "docs"
            assert "could not be read" in failure["message"]
            assert "no usable OS keyring" in failure["message"]

            # The server answers throughout, vault tools included (they read the index, not the keyring).
            listed = await call_ok(client, "list_credentials", {"vault_id": vault_id})
            assert [c["id"] for c in listed["credentials"]] == [credential_id]
            assert (await call_ok(client, "get_session", {"session_id": sid}))["status"] == "idle"

            daemons.unlock_again()
            second = await call_ok(client, "send_message", {"session_id": sid, "text": "again"})
            assert second["stop_reason"]["type"] == "end_turn"
            assert "5" in str(second["reply"])
            assert errors_of(second["events"]) == []
    log = read_log(config.data_dir, sid)
    assert_log_is_valid(log)
    assert TOKEN not in (config.data_dir / "store.db").read_bytes().decode(errors="ignore")


async def test_a_dead_d_bus_is_a_clear_error_for_sessions_and_for_vault_tools(
    config: ServerConfig, model: ModelServer, remote: RemoteMcpServer, daemons: KeyringDaemons
) -> None:
    """SecretService reports a bus that went away as its own exception, not keyring's: it must still read well."""
    vault_id, credential_id = add_bearer(config, remote)
    daemons.kill_bus()
    model.enqueue(offered)
    with anyio.fail_after(HANG_GUARD_S):
        async with connected(config) as client:
            sid = await mcp_session(client, remote, vault_id)
            outcome = await call_ok(client, "send_message", {"session_id": sid, "text": "hi"})
            assert outcome["reply"] == "offered []"
            (failure,) = errors_of(outcome["events"])
            assert "no usable OS keyring" in failure["message"]
            assert "SecretServiceNotAvailableException" in failure["message"]

            refused = await call_error(
                client, "delete_credential", {"vault_id": vault_id, "credential_id": credential_id}
            )
            assert "no usable OS keyring" in refused
            assert not refused.rstrip().endswith("delete_credential")  # never the bare crash message
            assert len((await call_ok(client, "list_sessions", {}))["sessions"]) == 1
    assert_log_is_valid(read_log(config.data_dir, sid))


async def test_a_frozen_keyring_daemon_is_given_up_on_and_the_session_runs_on(
    config: ServerConfig,
    model: ModelServer,
    remote: RemoteMcpServer,
    daemons: KeyringDaemons,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """SecretService has no timeout of its own: a stopped daemon would hold a keyring read forever."""
    monkeypatch.setattr(server.core.blocking, "VAULT_CALL_TIMEOUT_S", 1.0)
    vault_id, _ = add_bearer(config, remote)
    frozen = daemons.secrets_daemon_pid()
    assert frozen is not None
    model.enqueue(offered, reply("still here"))
    os.kill(frozen, signal.SIGSTOP)
    try:
        with anyio.fail_after(HANG_GUARD_S):
            async with connected(config) as client:
                sid = await mcp_session(client, remote, vault_id)
                outcome = await call_ok(client, "send_message", {"session_id": sid, "text": "hi"})
                assert outcome["reply"] == "offered []"
                (failure,) = errors_of(outcome["events"])
                assert "the OS keyring did not answer within 1 s" in failure["message"]
                other = await call_ok(client, "create_session", {})  # the server answers throughout
                assert (await call_ok(client, "send_message", {"session_id": other["id"], "text": "hi"}))["reply"]
    finally:
        os.kill(frozen, signal.SIGCONT)
    assert_log_is_valid(read_log(config.data_dir, sid))
