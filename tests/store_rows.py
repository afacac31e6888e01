"""A session row in a bare store, for tests of the store itself (no services)."""

from __future__ import annotations

from server.core.agents import FULL_TOOLSET, AgentSnapshot, ModelConfig
from server.core.common import now_rfc3339
from server.core.environments import EnvironmentSpec
from server.core.ids import new_id
from server.core.sessions import Session, SessionStats
from server.store.sqlite.store import Store


def insert_session(store: Store) -> str:
    """Inserts an idle inline-agent session straight into `store`; returns its id."""
    now = now_rfc3339()
    session = Session(
        id=new_id("sesn"),
        status="idle",
        agent=AgentSnapshot(
            id=None, version=None, name="inline", model=ModelConfig(id="claude-test-model"), tools=FULL_TOOLSET
        ),
        environment_id=None,
        environment=EnvironmentSpec(image="managed-sessions-sandbox:test"),
        stats=SessionStats(event_count=0),
        created_at=now,
        updated_at=now,
    )
    store.insert_session(session)
    return session.id
