"""A session's events as a few terminal lines each, for `sessions watch`.

Events arrive as the REST API shows them (JSON objects), from either source. Messages show a few lines, tool
calls one, tool results three and a count of the rest; spans and usage show nothing (the spinner stands for a
model request). Every piece of event text goes through `terminal_text`, so nothing in a log steers the terminal.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from server.fronts.cli.terminal_text import Palette, columns, fold, one_line

__all__ = ["MESSAGE_LINES", "RESULT_LINES", "EventLines"]

MESSAGE_LINES = 8
RESULT_LINES = 3
Event = dict[str, Any]


@dataclass
class EventLines:
    """Turns events into lines; remembers tool calls by id, so a wait or a result can name its tool."""

    palette: Palette
    width: int = 120
    tools: dict[str, str] = field(default_factory=dict)

    def lines(self, event: Event) -> list[str]:
        kind = str(event.get("type", ""))
        render = _RENDERERS.get(kind)
        if render is not None:
            return render(self, event)
        if kind.startswith(("span.", "session.usage", "event_")):
            return []
        return [self._line("dim", "·", kind or "an event without a type")]

    def _line(self, style: str, mark: str, text: str, rest: str = "") -> str:
        head = one_line(text, max(self.width - len(mark) - 1, 8))
        room = self.width - len(mark) - 1 - columns(head) - 2
        tail = "  " + self.palette.paint("dim", one_line(rest, room)) if rest and room > 8 else ""
        return self.palette.paint(style, f"{mark} {head}") + tail

    def _block(self, style: str, mark: str, text: str, max_lines: int) -> list[str]:
        folded = fold(text, max_lines, max(self.width - 4, 8)) or [""]
        first = self.palette.paint(style, f"{mark} {folded[0]}")
        rest = ("  " + self.palette.paint("dim" if line.startswith("…") else style, line) for line in folded[1:])
        return [first, *rest]

    def _user_message(self, event: Event) -> list[str]:
        return self._block("bold", ">", _text_of(event.get("content")), MESSAGE_LINES)

    def _agent_message(self, event: Event) -> list[str]:
        return self._block("blue", "●", _text_of(event.get("content")), MESSAGE_LINES)

    def _thinking(self, _event: Event) -> list[str]:
        return [self._line("dim", "…", "thinking")]

    def _tool_use(self, event: Event) -> list[str]:
        name = str(event.get("name", "?"))
        server = event.get("mcp_server_name")
        label = f"{server}/{name}" if isinstance(server, str) else name
        self.tools[str(event.get("id", ""))] = label
        custom = " (custom tool)" if event.get("type") == "agent.custom_tool_use" else ""
        line = self._line("magenta", "→", label + custom, _summary(event.get("input")))
        if event.get("evaluated_permission") == "ask":
            return [line, self._line("yellow", " ", "needs your confirmation")]
        return [line]

    def _tool_result(self, event: Event) -> list[str]:
        used = event.get("tool_use_id") or event.get("mcp_tool_use_id")
        label = self.tools.get(str(used), "tool")
        failed = bool(event.get("is_error"))
        head = self._line("red" if failed else "green", "←", f"{label} {'failed' if failed else 'done'}")
        body = fold(_text_of(event.get("content")), RESULT_LINES, max(self.width - 4, 8))
        return [head, *("  " + self.palette.paint("dim", line) for line in body)]

    def _confirmation(self, event: Event) -> list[str]:
        label = self.tools.get(str(event.get("tool_use_id")), "a tool call")
        if event.get("result") == "allow":
            return [self._line("green", "✓", f"allowed {label}")]
        return [self._line("yellow", "✗", f"denied {label}", str(event.get("deny_message") or ""))]

    def _custom_result(self, event: Event) -> list[str]:
        label = self.tools.get(str(event.get("custom_tool_use_id")), "a custom tool")
        body = fold(_text_of(event.get("content")), RESULT_LINES, max(self.width - 4, 8))
        return [self._line("green", "←", f"result for {label}"), *("  " + self.palette.paint("dim", b) for b in body)]

    def _idle(self, event: Event) -> list[str]:
        reason = event.get("stop_reason")
        reason = reason if isinstance(reason, dict) else {}
        if reason.get("type") != "requires_action":
            return [self._line("dim", "■", f"idle ({reason.get('type', 'no reason given')})")]
        waits = [self.tools.get(str(event_id), str(event_id)) for event_id in reason.get("event_ids") or []]
        lines = [self._line("yellow", "⏸", "waiting for you: " + (", ".join(waits) or "an action"))]
        hint = "allow or deny it (or send the custom tool's result) from your MCP client or the REST API"
        return [*lines, self._line("dim", " ", hint)]

    def _error(self, event: Event) -> list[str]:
        error = event.get("error")
        error = error if isinstance(error, dict) else {}
        retry = error.get("retry_status")
        status = retry.get("type") if isinstance(retry, dict) else None
        mark = f"error ({status})" if status else "error"
        return self._block("red", "!", f"{mark}: {error.get('message', '')}", RESULT_LINES)

    def _updated(self, event: Event) -> list[str]:
        changed = [key for key in ("title", "metadata", "agent") if event.get(key) is not None]
        title = event.get("title")
        rest = str(title) if isinstance(title, str) else ""
        return [self._line("dim", "·", "updated " + (", ".join(changed) or "the session"), rest)]


def _const(style: str, mark: str, text: str) -> Callable[[EventLines, Event], list[str]]:
    return lambda view, _event: [view._line(style, mark, text)]


_RENDERERS: dict[str, Callable[[EventLines, Event], list[str]]] = {
    "user.message": EventLines._user_message,
    "user.interrupt": _const("yellow", "■", "interrupted"),
    "user.tool_confirmation": EventLines._confirmation,
    "user.custom_tool_result": EventLines._custom_result,
    "agent.message": EventLines._agent_message,
    "agent.thinking": EventLines._thinking,
    "agent.tool_use": EventLines._tool_use,
    "agent.mcp_tool_use": EventLines._tool_use,
    "agent.custom_tool_use": EventLines._tool_use,
    "agent.tool_result": EventLines._tool_result,
    "agent.mcp_tool_result": EventLines._tool_result,
    "agent.thread_context_compacted": _const("dim", "~", "context compacted: older tool results trimmed"),
    "session.status_running": _const("dim", "▶", "running"),
    "session.status_idle": EventLines._idle,
    "session.status_rescheduled": _const("yellow", "↻", "rescheduled"),
    "session.status_terminated": _const("red", "■", "terminated"),
    "session.error": EventLines._error,
    "session.updated": EventLines._updated,
    "session.deleted": _const("red", "■", "the session was deleted"),
}


def _text_of(content: object) -> str:
    """The text of content blocks; other blocks (images, documents) as a bracketed mention."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return ""
    parts: list[str] = []
    for block in content:
        if isinstance(block, dict) and block.get("type") == "text":
            parts.append(str(block.get("text", "")))
        elif isinstance(block, dict):
            parts.append(f"[{block.get('type', 'block')}]")
    return "\n".join(parts)


_INPUT_KEYS = ("command", "path", "file_path", "url", "pattern", "query")


def _summary(tool_input: object) -> str:
    """A tool call's input in brief: its command, path or URL when it has one, else compact JSON."""
    if not isinstance(tool_input, dict):
        return ""
    for key in _INPUT_KEYS:
        value = tool_input.get(key)
        if isinstance(value, str):
            return value
    return json.dumps(tool_input, ensure_ascii=False)[:4096]
