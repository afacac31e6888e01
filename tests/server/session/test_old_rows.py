"""Rows as older versions stored them still load: through the store, the state fold, the conversation and the tools.

Rows are inserted with plain SQL, exactly as the permissive `Event(extra="allow")` era wrote them: every
event type, fields a model does not expect, fields left out, and a type no model describes. Clients read them
as stored; readers skip what does not fit instead of failing the read.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from scenario import call_ok
from serving import connected

from server.brain.conversation import rebuild
from server.core.config import ServerConfig
from server.core.events import EVENT_TYPES, AgentMessage, UnknownEvent, UserMessage
from server.store.sqlite.store import Store

pytestmark = pytest.mark.anyio

OLD_ROWS: list[tuple[str, dict[str, Any]]] = [
    ("user.message", {"content": [{"type": "text", "text": "hi"}]}),
    ("session.status_running", {}),
    ("span.model_request_start", {}),
    ("agent.thinking", {}),
    ("agent.message", {"content": [{"type": "text", "text": "Looking."}], "stop_sequence": None}),
    ("agent.tool_use", {"name": "bash", "input": {"command": "ls"}, "evaluated_permission": "allow"}),
    (
        "span.model_request_end",
        {
            "model_request_start_id": "sevt_x",
            "is_error": False,
            "model_usage": {
                "input_tokens": 7,
                "output_tokens": 3,
                "cache_read_input_tokens": None,
                "cache_creation_input_tokens": None,
            },
        },
    ),
    ("agent.tool_result", {"tool_use_id": "<use>", "content": [{"type": "text", "text": "a.txt"}], "is_error": False}),
    ("agent.mcp_tool_use", {"name": "add", "mcp_server_name": "docs", "input": {}, "evaluated_permission": "ask"}),
    ("user.tool_confirmation", {"tool_use_id": "<mcp>", "result": "deny", "deny_message": "no"}),
    ("agent.mcp_tool_result", {"mcp_tool_use_id": "<mcp>", "content": [], "is_error": True}),
    ("agent.custom_tool_use", {"name": "lookup", "input": {"q": 1}}),
    ("user.custom_tool_result", {"custom_tool_use_id": "<custom>", "content": [{"type": "text", "text": "x"}]}),
    ("agent.thread_context_compacted", {"trimmed_before_seq": 2, "estimated_tokens_before": 99}),
    (
        "session.error",
        {
            "error": {
                "type": "unknown_error",
                "message": "m",
                "retry_status": {"type": "terminal"},
                "credential_id": "vcrd_1",
                "hint": "an extra field",
            }
        },
    ),
    ("session.usage", {"usage": {"input_tokens": 7, "output_tokens": 3}}),
    ("session.updated", {"title": "renamed"}),
    ("session.status_rescheduled", {}),
    ("user.interrupt", {}),
    ("session.status_idle", {"stop_reason": {"type": "end_turn", "note": "extra"}, "stop_details": {"a": 1}}),
    ("session.status_terminated", {}),
    ("workflow_run.created", {"workflow_run_id": "wr_1"}),
]


def _insert_old_rows(data_dir: Path, session_id: str) -> list[tuple[str, str]]:
    """Appends the rows as raw SQL; returns each (type, stored payload text)."""
    with sqlite3.connect(data_dir / "store.db") as db:
        seq = db.execute("select last_seq from sessions where session_id = ?", (session_id,)).fetchone()[0]
        written = []
        ids: dict[str, str] = {}
        for offset, (kind, payload) in enumerate(OLD_ROWS, start=1):
            text = json.dumps(payload)
            for mark, use_type in (("<use>", "agent.tool_use"), ("<mcp>", "agent.mcp_tool_use")):
                text = text.replace(mark, ids.get(use_type, mark))
            text = text.replace("<custom>", ids.get("agent.custom_tool_use", "<custom>"))
            event_id = f"sevt_old{seq + offset:020d}"
            ids[kind] = event_id
            db.execute(
                "insert into events values (?, ?, ?, ?, ?, ?)",
                (session_id, seq + offset, event_id, kind, "2025-01-01T00:00:00.000Z", text),
            )
            written.append((kind, text))
        db.execute("update sessions set last_seq = ? where session_id = ?", (seq + len(OLD_ROWS), session_id))
    return written


async def test_rows_older_versions_wrote_load_through_the_store_and_the_tools(config: ServerConfig) -> None:
    assert {kind for kind, _ in OLD_ROWS} >= EVENT_TYPES
    async with connected(config) as client:
        session_id = (await call_ok(client, "create_session", {}))["id"]
        written = _insert_old_rows(config.data_dir, session_id)
        page = await call_ok(client, "get_events", {"session_id": session_id, "limit": 200})
    shown = [
        (e["type"], {k: v for k, v in e.items() if k not in ("id", "seq", "type", "processed_at")})
        for e in page["events"]
    ]
    assert shown == [(kind, json.loads(text)) for kind, text in written]

    store = Store.open(config.data_dir / "store.db")
    try:
        events = store.read_events(session_id, 0, 200)
        assert [(e.type, json.dumps(e.payload())) for e in events] == written
        bodies = {e.type: e.body for e in events}
        assert isinstance(bodies["workflow_run.created"], UnknownEvent)
        assert bodies["agent.message"] == AgentMessage.text("Looking.")  # the unexpected field is dropped
        assert isinstance(bodies["user.message"], UserMessage)
        state = store.rebuild_state(session_id)
        assert state.event_count == len(OLD_ROWS)
        assert state.usage.input_tokens == 7
        assert state.status == "terminated"
        conversation = rebuild(events)
        assert conversation.messages[0] == {"role": "user", "content": [{"type": "text", "text": "hi"}]}
        assert conversation.pending == []  # every tool use read, and so did every result that answers it
    finally:
        store.close()
