"""Looking at a session's sandbox from outside, through the real engine: its containers, and whether a command
runs in one. Each look is a round trip to the engine, so polls need no sleep; their deadlines are hang guards."""

from __future__ import annotations

import contextlib
import time

import docker
import docker.errors
from docker.models.containers import Container

from server.hands.docker.sandbox import LABEL_SESSION

__all__ = ["LONG_COMMAND", "containers_of", "wait_for_running_command", "wait_until_gone"]

LONG_COMMAND = "sleep 600"
"""Far longer than any test runs: it ends only if something stops it."""


def containers_of(client: docker.DockerClient, session_id: str) -> list[Container]:
    """The session's containers, running or not (sparse: one that goes while listing does not fail the list)."""
    return list(client.containers.list(all=True, sparse=True, filters={"label": f"{LABEL_SESSION}={session_id}"}))


def wait_for_running_command(
    client: docker.DockerClient, session_id: str, command: str = LONG_COMMAND, bound_s: float = 60
) -> str:
    """Polls the session's containers until `command` shows in one's process list; returns that container's id."""
    deadline = time.monotonic() + bound_s
    while time.monotonic() < deadline:
        for container in containers_of(client, session_id):
            with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):  # not started, or gone
                if any(command in " ".join(row) for row in container.top()["Processes"] or []):
                    return str(container.id)
    raise AssertionError(f"{command!r} never ran in the sandbox of {session_id}")


def wait_until_gone(client: docker.DockerClient, session_id: str, bound_s: float = 60) -> None:
    """Polls until the session has no container left."""
    deadline = time.monotonic() + bound_s
    while containers_of(client, session_id):
        assert time.monotonic() < deadline, f"the container of {session_id} was never removed"
