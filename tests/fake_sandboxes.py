"""In-memory sandboxes for agent-loop tests that need no container: tool calls are recorded and answered from a
script. Tests that claim to test the tools themselves use the real Docker sandbox instead."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import anyio.abc
from pydantic import JsonValue

from server.brain.ports import SessionSandboxes
from server.core.environments import EnvironmentSpec
from server.core.errors import InvalidRequestError
from server.core.tools import ToolResult
from server.hands.sandbox import (
    Confinement,
    Leftovers,
    OutputChunkData,
    OutputFileInfo,
    RunningSessions,
    SandboxBackend,
)


@dataclass(frozen=True)
class ToolCall:
    session_id: str
    tool_name: str
    tool_input: dict[str, JsonValue]


class FakeSandbox:
    """One session's sandbox: `bash` answers with the scripted output of its command; a command with no script is
    an error result naming it. An exception in the script is raised from `execute`, as a crashing tool would."""

    def __init__(self, owner: FakeSandboxes, session_id: str) -> None:
        self._owner = owner
        self._session_id = session_id

    async def execute(self, tool_name: str, tool_input: Mapping[str, JsonValue]) -> ToolResult:
        self._owner.calls.append(ToolCall(self._session_id, tool_name, dict(tool_input)))
        command = str(tool_input.get("command", "")) if tool_name == "bash" else tool_name
        answer = self._owner.outputs.get(command)
        if isinstance(answer, BaseException):
            raise answer
        if answer is None:
            return ToolResult.text(f"{tool_name}: no scripted output for {command!r}", is_error=True)
        return ToolResult.text(answer)


@dataclass
class FakeSandboxes:
    """Stands in for the Docker sandboxes: pass it as `open_runtime(..., sandboxes=fake)` (it is its own factory).

    `outputs` maps a bash command (or another tool's name) to its output, or to an exception to raise."""

    outputs: dict[str, str | BaseException] = field(default_factory=dict)
    calls: list[ToolCall] = field(default_factory=list)
    stopped: list[str] = field(default_factory=list)
    destroyed: list[str] = field(default_factory=list)
    built: list[str] = field(default_factory=list)
    files: dict[str, dict[str, bytes]] = field(default_factory=dict)
    """Output files by session id, then path under /mnt/session/outputs/."""
    mime_types: dict[str, str] = field(default_factory=dict)
    """An output file's mime type by its path; text/plain for any other."""
    put: list[tuple[str, str]] = field(default_factory=list)
    placed: dict[str, dict[str, Path]] = field(default_factory=dict)
    """The read-only files by session id, then target path."""
    skill_links: dict[str, dict[str, str]] = field(default_factory=dict)
    """The skills by session id: name -> skill_id/version."""

    def __call__(self, task_group: anyio.abc.TaskGroup) -> FakeSandboxes:
        return self

    def tools(self, session_id: str, environment: EnvironmentSpec, *, mcp_hosts: Sequence[str] = ()) -> FakeSandbox:
        return FakeSandbox(self, session_id)

    async def stop(self, session_id: str, environment: EnvironmentSpec) -> None:
        self.stopped.append(session_id)

    async def destroy(self, session_id: str, environment: EnvironmentSpec) -> None:
        self.destroyed.append(session_id)

    def keep_warm(self, owner: str, environment: EnvironmentSpec, size: int) -> None:
        pass

    async def build_image(self, image: str) -> None:
        self.built.append(image)

    async def reap(self, sessions: Mapping[str, bool]) -> Leftovers:
        return Leftovers()

    async def leftovers(self, sessions: Mapping[str, bool]) -> Leftovers:
        return Leftovers()

    async def stop_idle(self, idle_s: float, running: RunningSessions) -> list[str]:
        """Nothing runs in memory, so nothing idles."""
        return []

    async def list_outputs(self, session_id: str, environment: EnvironmentSpec) -> list[OutputFileInfo]:
        files = self.files.get(session_id, {})
        return [
            OutputFileInfo(
                path,
                len(data),
                self.mime_types.get(path, "text/plain"),
                hashlib.sha256(data).hexdigest(),
                "2026-01-01T00:00:00Z",
            )
            for path, data in sorted(files.items())
        ]

    async def read_output(
        self, session_id: str, environment: EnvironmentSpec, path: str, offset: int, max_bytes: int
    ) -> OutputChunkData:
        data = self.files.get(session_id, {}).get(path)
        if data is None:
            raise InvalidRequestError(f"no output file {path!r}")
        chunk = data[offset : offset + max_bytes]
        mime_type = self.mime_types.get(path, "text/plain")
        return OutputChunkData(mime_type, len(data), chunk, offset + len(chunk) >= len(data))

    async def put_directory(self, session_id: str, environment: EnvironmentSpec, source: Path, target: str) -> bool:
        self.put.append((session_id, target))
        return True

    async def place_files(self, session_id: str, environment: EnvironmentSpec, files: Mapping[str, Path]) -> None:
        self.placed[session_id] = dict(files)

    async def link_skills(self, session_id: str, environment: EnvironmentSpec, links: Mapping[str, str]) -> None:
        self.skill_links[session_id] = dict(links)

    async def aclose(self) -> None:
        pass

    def posture(self, session_id: str, environment: EnvironmentSpec, *, mcp_hosts: Sequence[str] = ()) -> Confinement:
        """What a real backend would report; in memory nothing is confined, and nothing runs either."""
        return Confinement(
            image=environment.image or "in-memory",
            user="sandbox",
            network="none",
            capabilities=(),
            no_new_privileges=True,
            memory_mb=0,
            cpus=0.0,
            pids_limit=0,
            disk_mb=None,
            engine_socket=False,
            extra_ca_bundle=False,
        )


def _conforms(fake: FakeSandboxes) -> tuple[SandboxBackend, SessionSandboxes]:
    """Never called: mypy checks (in .ci/run's lint) that the fake still satisfies both Protocols it stands for."""
    return fake, fake
