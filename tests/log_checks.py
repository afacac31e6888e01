"""What every session's log must look like after any fault: whole, and each tool use answered at most once."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from server.core.events import Event
from server.store.sqlite.store import Store

__all__ = ["assert_log_is_valid", "read_log"]

_ANSWERS = {
    "agent.tool_result": "tool_use_id",
    "agent.mcp_tool_result": "mcp_tool_use_id",
    "user.custom_tool_result": "custom_tool_use_id",
}
_USES = ("agent.tool_use", "agent.mcp_tool_use", "agent.custom_tool_use")


def read_log(data_dir: Path, session_id: str) -> list[Event]:
    """The session's whole log, read from the store on disk (a server may still hold it open: WAL allows that)."""
    store = Store.open(data_dir / "store.db")
    try:
        return store.read_events(session_id, 0, 1_000_000)
    finally:
        store.close()


def assert_log_is_valid(events: list[Event], *, settled: bool = True) -> None:
    """Seqs run 1..N, ids are unique, no tool use is answered twice or an unknown one answered; `settled`: every
    tool use has its answer (the session is not waiting for one)."""
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert len({e.id for e in events}) == len(events)
    uses = [e.id for e in events if e.type in _USES]
    answers = Counter(str(e.payload().get(key)) for e in events if (key := _ANSWERS.get(e.type)) is not None)
    assert set(answers) <= set(uses), f"answers to unknown tool uses: {set(answers) - set(uses)}"
    assert all(count == 1 for count in answers.values()), f"tool uses answered twice: {answers}"
    if settled:
        assert set(answers) == set(uses), f"tool uses never answered: {set(uses) - set(answers)}"
