"""The seams between the rest of the server and where tools run.

`Sandbox` is what the agent loop calls: `execute(tool_name, tool_input)` gives a
`ToolResult` whose content blocks are already in the Messages API's
`tool_result` shape (text, image, document). It never sees a container.

`SandboxBackend` is everything the services and the loop ask of sandboxes: a
session's tools, stopping (files kept) and destroying them, stopping idle ones,
reaping strays, output files (read without starting anything), copying a
checked-out repository in, placing read-only files, linking skills, and the
posture shown on a session. Every method takes the session's id and its environment snapshot, so a
backend may make the sandbox lazily and anew. The Docker backend
(`hands/docker/pool.py`) satisfies it structurally; a Kubernetes one would sit
beside it. Failures come already translated: `SandboxUnavailableError` (the
sandbox cannot run or did not answer) and `InvalidRequestError` (the sandbox
refused a path), both from `server/core/errors.py`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from pydantic import JsonValue

from server.core.environments import EnvironmentSpec
from server.core.sessions import EgressPosture, SandboxPosture
from server.core.tools import ToolResult

__all__ = [
    "DEFAULT_CPUS",
    "DEFAULT_MEMORY_MB",
    "DEFAULT_PIDS_LIMIT",
    "Confinement",
    "Leftovers",
    "OutputChunkData",
    "OutputFileInfo",
    "RunningSessions",
    "Sandbox",
    "SandboxBackend",
    "SandboxLostError",
]

DEFAULT_MEMORY_MB = 2_048
DEFAULT_CPUS = 1.0
DEFAULT_PIDS_LIMIT = 512
"""Enough for a build with parallel jobs; low enough that a fork bomb stops at the limit, not the host."""


RunningSessions = Callable[[], Awaitable[Collection[str]]]
"""The ids of the sessions with a run in progress, asked from the store (whose sandboxes never idle)."""


class SandboxLostError(Exception):
    """The sandbox went away while a call was running; the call's outcome is unknown."""


class Sandbox(Protocol):
    async def execute(self, tool_name: str, tool_input: Mapping[str, JsonValue]) -> ToolResult: ...


@dataclass(frozen=True)
class Confinement:
    """How a sandbox is confined, in terms any backend can state.

    `network` is the backend's own name for the sandbox's network ('none': loopback only);
    `engine_socket` is whether the engine that runs sandboxes can be reached from inside."""

    image: str
    user: str
    network: str
    capabilities: tuple[str, ...]
    no_new_privileges: bool
    memory_mb: int
    cpus: float
    pids_limit: int
    disk_mb: int | None
    engine_socket: bool
    extra_ca_bundle: bool
    egress: EgressPosture | None = None

    def shown(self) -> SandboxPosture:
        """The posture as `get_session` shows it (the client contract names the engine socket Docker's)."""
        return SandboxPosture(
            image=self.image,
            user=self.user,
            network=self.network,
            capabilities=list(self.capabilities),
            no_new_privileges=self.no_new_privileges,
            memory_mb=self.memory_mb,
            cpus=self.cpus,
            pids_limit=self.pids_limit,
            disk_mb=self.disk_mb,
            docker_socket=self.engine_socket,
            extra_ca_bundle=self.extra_ca_bundle,
            egress=self.egress,
        )


@dataclass
class Leftovers:
    """Sandbox objects labelled with a store that no session of it needs: containers, and volumes of files."""

    containers: list[str] = field(default_factory=list)
    volumes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class OutputFileInfo:
    """A file under /mnt/session/outputs/, `path` relative to it."""

    path: str
    size_bytes: int
    mime_type: str
    sha256: str
    modified_at: str


@dataclass(frozen=True)
class OutputChunkData:
    """Part of an output file, from an offset: raw bytes, and whether the file ends with them."""

    mime_type: str
    size_bytes: int
    data: bytes
    eof: bool


class SandboxBackend(Protocol):
    """Every session's sandbox, made on demand; see the module docstring."""

    def tools(self, session_id: str, environment: EnvironmentSpec, *, mcp_hosts: Sequence[str] = ()) -> Sandbox:
        """The session's agent tools (nothing starts until the first call).

        `mcp_hosts` are the host entries (`host` or `host:port`) of the agent's MCP servers, which a `limited`
        environment with `allow_mcp_servers` lets the sandbox reach."""
        ...

    async def stop(self, session_id: str, environment: EnvironmentSpec) -> None:
        """Stops the session's sandbox, keeping its files; never raises (an engine away: done later)."""
        ...

    async def destroy(self, session_id: str, environment: EnvironmentSpec) -> None:
        """Removes the session's sandbox and its files; never raises, like `stop`."""
        ...

    def keep_warm(self, owner: str, environment: EnvironmentSpec, size: int) -> None:
        """Keeps `size` sandboxes started for new sessions of `environment` (a warm pool; 0: none), as `owner` (the
        default environment, or an environment's id) asks; a definition several owners ask for gets the largest
        size. Filled in the background: returns at once and never raises (an engine away leaves the pool empty)."""
        ...

    async def build_image(self, image: str) -> None:
        """Builds the server's default image `image` when a sandbox found it missing (`ImageMissingError`): one
        build per image at a time, which every caller waits for. Raises `SandboxUnavailableError`."""
        ...

    async def reap(self, sessions: Mapping[str, bool]) -> Leftovers:
        """Removes what no session needs (`sessions`: every session id -> archived); returns what went."""
        ...

    async def leftovers(self, sessions: Mapping[str, bool]) -> Leftovers:
        """What `reap` would remove, removing nothing."""
        ...

    async def stop_idle(self, idle_s: float, running: RunningSessions) -> list[str]:
        """Stops the sandboxes of sessions that are not running (as `running` says when asked) and had no call for
        `idle_s` seconds (0: every one), keeping their files; the next call starts a new one. Returns their
        session ids; never raises."""
        ...

    async def list_outputs(self, session_id: str, environment: EnvironmentSpec) -> list[OutputFileInfo]:
        """The files under /mnt/session/outputs/; never starts a sandbox (one not running is read as it is)."""
        ...

    async def read_output(
        self, session_id: str, environment: EnvironmentSpec, path: str, offset: int, max_bytes: int
    ) -> OutputChunkData:
        """Up to `max_bytes` of an output file from `offset`; a path the sandbox refuses: `InvalidRequestError`."""
        ...

    async def put_directory(self, session_id: str, environment: EnvironmentSpec, source: Path, target: str) -> bool:
        """Copies the host tree `source` to `target` under /workspace; False (nothing copied) if it holds files."""
        ...

    async def place_files(self, session_id: str, environment: EnvironmentSpec, files: Mapping[str, Path]) -> None:
        """Makes `files` (absolute target -> host file) the session's read-only files: owned by root, mode 0444,
        parents created root-owned; in the sandbox now and in every sandbox made for the session later. A file
        placed before and absent from `files` is removed."""
        ...

    async def link_skills(self, session_id: str, environment: EnvironmentSpec, links: Mapping[str, str]) -> None:
        """Makes `/mnt/skills/<name>` the skill version `<skill_id>/<version>` (each of `links`) of the server's skill
        store, which every sandbox has read-only; now and in every sandbox made for the session later, and other
        names there go. Raises `SandboxUnavailableError`."""
        ...

    def posture(self, session_id: str, environment: EnvironmentSpec, *, mcp_hosts: Sequence[str] = ()) -> Confinement:
        """The confinement the session's sandbox gets (from its definition), with what its egress refused."""
        ...

    async def aclose(self) -> None:
        """Ends what the backend runs beside the sandboxes (the egress proxy); sandboxes are left as they are."""
        ...
