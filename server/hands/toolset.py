"""The built-in toolset `agent_toolset_20260401`: what the model is told, and how each call runs.

Two words kept apart: these are *agent tools* (called by the model, run in the
sandbox), not the MCP tools clients call. `bash`, `read`, `write`, `edit`,
`glob` and `grep` run in the session's container through the helper;
`web_fetch` runs here on the host, behind an address guard, so a sandbox with
no network can still read the web when its agent is allowed to.

Every failure the model can act on comes back as an `is_error` result with a
message for the model; only "the sandbox cannot run at all" is raised.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError

from server.core.tools import ToolResult
from server.core.validation import problem_lines
from server.egress.web_fetch import FetchPolicy, WebFetchError, web_fetch
from server.hands.helper.channel import HelperError
from server.hands.sandbox import SandboxLostError

__all__ = ["BUILTIN_TOOL_SPECS", "HelperCalls", "SandboxTools"]

DEFAULT_BASH_TIMEOUT_MS = 120_000
MAX_BASH_TIMEOUT_MS = 600_000
HOST_GRACE_S = 15.0
"""Beyond a bash timeout the helper needs a moment to kill the command and answer; past that, the host
gives up on the container."""
FILE_TOOL_TIMEOUT_S = 150.0
"""The reference runner's bound on one tool call."""


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BashInput(_Input):
    command: str | None = Field(default=None, description="The command to run in the persistent bash shell.")
    restart: bool = Field(default=False, description="Restart the shell (cwd and variables are reset).")
    timeout_ms: int | None = Field(default=None, ge=0, le=MAX_BASH_TIMEOUT_MS, description="Default 120000.")


class ReadInput(_Input):
    file_path: str = Field(description="Path to read, relative to /workspace or absolute.")
    view_range: Annotated[list[int], Field(min_length=2, max_length=2)] | None = Field(
        default=None, description="[start, end] lines, 1-indexed and inclusive; end -1 reads to the end."
    )


class WriteInput(_Input):
    file_path: str = Field(description="Path to write (parents are created); the file is replaced.")
    content: str


class EditInput(_Input):
    file_path: str
    old_string: str = Field(description="Exact text to replace; must appear once unless replace_all.")
    new_string: str
    replace_all: bool = False


class GlobInput(_Input):
    pattern: str = Field(description="Glob such as '**/*.py', relative to path.")
    path: str | None = Field(default=None, description="Directory to search; default /workspace.")


class GrepInput(_Input):
    pattern: str = Field(description="Regular expression to search file contents for.")
    path: str | None = Field(default=None, description="File or directory to search; default /workspace.")


class WebFetchInput(_Input):
    url: str = Field(description="An http(s) URL.")


_DESCRIPTIONS = {
    "bash": "Run a command in a persistent bash shell in the sandbox (cwd and exported variables persist). "
    "stdout and stderr are merged; long output keeps its tail. Default timeout 120 s.",
    "read": "Read a file: text (optionally a line range), or an image or PDF as content. Text over 256 KiB "
    "needs view_range.",
    "write": "Write a whole file, creating parent directories.",
    "edit": "Replace an exact string in a file; old_string must be unique unless replace_all.",
    "glob": "Find files by glob pattern, newest first (at most 200).",
    "grep": "Search file contents with a regular expression; lines come back as file:line:text.",
    "web_fetch": "Fetch a web page or text document and return it as readable text.",
}
_INPUTS: dict[str, type[_Input]] = {
    "bash": BashInput,
    "read": ReadInput,
    "write": WriteInput,
    "edit": EditInput,
    "glob": GlobInput,
    "grep": GrepInput,
    "web_fetch": WebFetchInput,
}
BUILTIN_TOOL_SPECS: dict[str, dict[str, Any]] = {
    name: {"name": name, "description": _DESCRIPTIONS[name], "input_schema": model.model_json_schema()}
    for name, model in _INPUTS.items()
}
"""Tool definitions in the Messages API's shape, for the model."""


class HelperCalls(Protocol):
    """One session's helper, however the backend reaches it (see helper/PROTOCOL.md for the ops)."""

    async def call(self, op: str, args: Mapping[str, JsonValue], timeout_s: float) -> dict[str, Any]:
        """Raises `HelperError` (tell the model), `SandboxLostError`, `TimeoutError` or `SandboxUnavailableError`."""
        ...

    def take_notice(self) -> str | None:
        """What the model must hear once about the sandbox itself (say, its shell was restarted), if anything."""
        ...


class SandboxTools:
    """The `Sandbox` the agent loop calls: built-in tools for one session."""

    def __init__(self, sandbox: HelperCalls, fetch_policy: FetchPolicy) -> None:
        self._sandbox = sandbox
        self._fetch_policy = fetch_policy

    async def execute(self, tool_name: str, tool_input: Mapping[str, JsonValue]) -> ToolResult:
        model = _INPUTS.get(tool_name)
        if model is None:
            return ToolResult.text(f"{tool_name}: no such tool in agent_toolset_20260401", is_error=True)
        try:
            parsed = model.model_validate(tool_input)
        except ValidationError as exc:
            problems = "; ".join(problem_lines(exc, root="input"))
            return ToolResult.text(f"{tool_name}: invalid input: {problems}", is_error=True)
        if isinstance(parsed, WebFetchInput):
            return await self._web_fetch(parsed)
        result = await self._in_sandbox(tool_name, parsed)
        notice = self._sandbox.take_notice()
        if notice is not None:  # first, so the model reads the output knowing the shell's state was reset
            result = ToolResult(content=[{"type": "text", "text": notice}, *result.content], is_error=result.is_error)
        return result

    async def _web_fetch(self, parsed: WebFetchInput) -> ToolResult:
        try:
            fetched = await web_fetch(parsed.url, self._fetch_policy)
        except WebFetchError as exc:
            return ToolResult.text(str(exc), is_error=True)
        return ToolResult.text(fetched.text)

    async def _in_sandbox(self, tool_name: str, parsed: _Input) -> ToolResult:
        args = parsed.model_dump(exclude_none=True)
        timeout_s = FILE_TOOL_TIMEOUT_S
        if isinstance(parsed, BashInput):
            if parsed.command is None and not parsed.restart:
                return ToolResult.text("bash: give a command, or restart: true", is_error=True)
            timeout_s = (parsed.timeout_ms or DEFAULT_BASH_TIMEOUT_MS) / 1000 + HOST_GRACE_S
        try:
            result = await self._sandbox.call(tool_name, args, timeout_s)
        except HelperError as exc:
            return ToolResult.text(str(exc), is_error=True)
        except SandboxLostError as exc:
            return ToolResult.text(f"{tool_name}: {exc}", is_error=True)
        except TimeoutError:
            return ToolResult.text(
                f"{tool_name}: no answer within {timeout_s:.0f} s; the sandbox was restarted "
                "(files are kept, the shell's cwd and variables were reset)",
                is_error=True,
            )
        return _format(tool_name, result)


def _format(tool_name: str, result: dict[str, Any]) -> ToolResult:
    if tool_name == "bash":
        return _format_bash(result)
    if tool_name == "read" and result.get("type") in ("image", "document"):
        block: dict[str, JsonValue] = {
            "type": result["type"],
            "source": {"type": "base64", "media_type": result["media_type"], "data": result["data"]},
        }
        return ToolResult(content=[block])
    return ToolResult.text(str(result.get("text", "")))


def _format_bash(result: dict[str, Any]) -> ToolResult:
    output = str(result.get("output", ""))
    exit_code = result.get("exit_code")
    if result.get("timed_out"):
        return ToolResult.text(output, is_error=True)
    if exit_code not in (0, None):
        return ToolResult.text(f"{output}\n[exit code {exit_code}]" if output else f"[exit code {exit_code}]", True)
    return ToolResult.text(output)
