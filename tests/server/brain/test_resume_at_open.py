"""Resuming after a crash, in process: the sessions a server left running with a tool in flight get their
interruption recorded when the next server opens, all of them before any sandbox (Docker) call, and then go on.

A runtime whose tools never return is closed while every session is inside one: its task group is cancelled, so
the logs stay as a kill -9 leaves them (`running`, a `tool_use` without a result). The real kill is in
`tests/e2e/test_crash_resume.py`; the figure is `benchmarks/bench_agent_loop.py --only resume`."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import pytest
from fake_sandboxes import FakeSandboxes
from model_server import ModelServer, reply, tool_use
from scenario import call_ok, wait_for_idle
from serving import connected

from server.core.config import DEFAULT_IMAGE, ServerConfig
from server.core.environments import EnvironmentSpec
from server.core.tools import ToolResult
from server.hands.sandbox import Leftovers

pytestmark = pytest.mark.anyio

SESSIONS = 3
HANG_GUARD_S = 60
"""Only stops a test that hangs; what a test checks is events and states, never how long something took."""


@dataclass
class HangingSandboxes(FakeSandboxes):
    """Every tool call starts (and says so) and never returns, like a `sleep 60` at the moment of a kill."""

    started: list[str] = field(default_factory=list)
    all_started: anyio.Event = field(default_factory=anyio.Event)

    def tools(self, session_id: str, environment: EnvironmentSpec, *, mcp_hosts: Sequence[str] = ()) -> HangingTool:  # type: ignore[override]
        return HangingTool(self, session_id)


@dataclass
class HangingTool:
    owner: HangingSandboxes
    session_id: str

    async def execute(self, tool_name: str, tool_input: Mapping[str, object]) -> ToolResult:
        self.owner.started.append(self.session_id)
        if len(self.owner.started) == SESSIONS:
            self.owner.all_started.set()
        await anyio.sleep_forever()
        raise AssertionError("unreachable")


@dataclass
class ReapWitness(FakeSandboxes):
    """Notes, when the start-up reap (the first Docker call of a real backend) is called, how many tool results the
    store holds."""

    database: Path = Path()
    results_at_reap: list[int] = field(default_factory=list)
    reaped: anyio.Event = field(default_factory=anyio.Event)

    async def reap(self, sessions: Mapping[str, bool]) -> Leftovers:
        db = sqlite3.connect(f"file:{self.database}?mode=ro", uri=True)
        try:
            [(count,)] = db.execute("select count(*) from events where type = 'agent.tool_result'").fetchall()
        finally:
            db.close()
        self.results_at_reap.append(count)
        self.reaped.set()
        return Leftovers()


@pytest.fixture
def loop_config(data_dir: Path) -> ServerConfig:
    return ServerConfig(data_dir=data_dir, image=DEFAULT_IMAGE, model="claude-test", model_key_present=True)


async def test_every_interrupted_tool_is_answered_before_the_first_docker_call_and_the_sessions_go_on(
    loop_config: ServerConfig, model: ModelServer
) -> None:
    model.enqueue(*[reply(tool_use("bash", {"command": "sleep 60"}))] * SESSIONS)
    hanging = HangingSandboxes()
    with anyio.fail_after(HANG_GUARD_S):
        async with connected(loop_config, sandboxes=hanging) as client:
            ids = [(await call_ok(client, "create_session", {}))["id"] for _ in range(SESSIONS)]
            for sid in ids:
                await call_ok(client, "send_message", {"session_id": sid, "text": "sleep", "wait_seconds": 0})
            await hanging.all_started.wait()
            assert sorted(hanging.started) == sorted(ids)
            marks = {sid: (await call_ok(client, "get_events", {"session_id": sid}))["next_cursor"] for sid in ids}
        # The server is gone with every session inside its tool; the next one opens on the same data dir.
        model.enqueue(*[lambda request: reply(f"after: {request.tool_results()}")] * SESSIONS)
        witness = ReapWitness(database=loop_config.database_path)
        async with connected(loop_config, sandboxes=witness) as client:
            for sid in ids:
                page = await wait_for_idle(client, sid, marks[sid])
                assert page["events"][-1]["stop_reason"]["type"] == "end_turn"
                events = (await call_ok(client, "get_events", {"session_id": sid, "after": marks[sid]}))["events"]
                [result] = [e for e in events if e["type"] == "agent.tool_result"]
                assert result["is_error"] is True
                assert "interrupted" in str(result["content"])
                [message] = [e for e in events if e["type"] == "agent.message"]
                assert "interrupted" in str(message["content"])  # the model was told, and the turn ended
            await witness.reaped.wait()  # the reap waits for start-up to be over (the first answer)
    assert witness.results_at_reap == [SESSIONS]
    assert witness.calls == []  # nothing was run again
