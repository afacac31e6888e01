"""Session lifecycle as a client drives it: create (with a first message), archive, delete.

Every front door calls these, not `SessionManager` directly, so what goes with each step is done once here:
a first message starts the turn before `create` returns, and archiving or deleting a session ends its remote
MCP connections (whoever holds them implements `RemoteConnections`; a later run would open them again).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from server.core.errors import InvalidRequestError
from server.core.events import UserMessage
from server.core.sessions import Session
from server.services.messages import Inbox
from server.services.sessions import NewSession, SessionDeleted, SessionManager
from server.services.user_events import UserEvent, check_user_events

__all__ = ["RemoteConnections", "SessionLifecycle"]


class RemoteConnections(Protocol):
    """The remote MCP connections sessions hold open."""

    async def close(self, session_id: str) -> None:
        """Ends the session's connections, if it has any."""
        ...


class SessionLifecycle:
    """Creates, archives and deletes sessions, with everything that goes with each."""

    def __init__(self, sessions: SessionManager, inbox: Inbox, remote: RemoteConnections) -> None:
        self._sessions = sessions
        self._inbox = inbox
        self._remote = remote

    async def create(
        self, request: NewSession, first_message: str | None = None, initial_events: Sequence[UserEvent] = ()
    ) -> Session:
        """A new idle session; with `first_message` or `initial_events` (messages, recorded in order), running it
        (returns at once, without waiting for the turn). The events are checked before the session is made."""
        if initial_events:
            check_user_events(initial_events)
            if not all(isinstance(event, UserMessage) for event in initial_events):
                raise InvalidRequestError("initial_events holds user.message events only")
        session = await self._sessions.create(request)
        if first_message is not None:
            await self._inbox.send_message(session.id, first_message, 0, None)
        elif initial_events:
            await self._inbox.send(session.id, initial_events)
        else:
            return session
        return await self._sessions.get(session.id)

    async def archive(self, session_id: str) -> Session:
        """Archives the session (refused while it runs) and ends its remote MCP connections."""
        session = await self._sessions.archive(session_id)
        await self._remote.close(session_id)
        return session

    async def delete(self, session_id: str) -> SessionDeleted:
        """Deletes the session with its log, files and sandbox (refused while it runs), and its connections."""
        deleted = await self._sessions.delete(session_id)
        await self._remote.close(session_id)
        return deleted
