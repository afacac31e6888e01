"""What the OpenAI Chat Completions API refuses in a request body, checked where it catches translation bugs.

`chat_model_server.ChatModelServer` answers each problem found here with 400 `invalid_request_error` and records it
as a violation. The rules are the ones a translator from our neutral content gets wrong: roles, the pairing of an
assistant's `tool_calls` with `tool` messages, keys the API does not know (Anthropic's `cache_control` above all),
content part types a role may not carry, tool definitions, and conflicting request fields. Paths are written as
the API writes them (`messages[0].content[1].cache_control`), and so are the codes (`unknown_parameter`).

Two rules are stricter than the API, where the API's leniency would hide a bug: a `tool` message with empty
content is refused (a dropped tool output looks exactly like that), and so is a `tool` message answering a
call id twice. Unknown top-level fields are allowed: compatible servers take extra knobs through `extra_body`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

__all__ = ["ROLES", "Problem", "chat_request_problems"]

JsonObject = dict[str, Any]  # JSON as it enters from the wire

ROLES = ("system", "developer", "user", "assistant", "tool", "function")
FUNCTION_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
MESSAGE_KEYS = {
    "system": {"role", "content", "name"},
    "developer": {"role", "content", "name"},
    "user": {"role", "content", "name"},
    "assistant": {"role", "content", "name", "tool_calls", "refusal", "audio", "function_call"},
    "tool": {"role", "content", "tool_call_id"},
    "function": {"role", "content", "name"},
}
PART_KEYS = {
    "text": {"type", "text"},
    "image_url": {"type", "image_url"},
    "input_audio": {"type", "input_audio"},
    "file": {"type", "file"},
    "refusal": {"type", "refusal"},
}
PART_OBJECT_KEYS = {
    "image_url": {"url", "detail"},
    "input_audio": {"data", "format"},
    "file": {"file_data", "file_id", "filename"},
}
USER_PART_TYPES = ("text", "image_url", "input_audio", "file")
PART_TYPES_BY_ROLE = {"user": USER_PART_TYPES, "assistant": ("text", "refusal")}  # every other role: text only
TOOL_KEYS = {"function": {"type", "function"}, "custom": {"type", "custom"}}
FUNCTION_KEYS = {"name", "description", "parameters", "strict"}
TOOL_CALL_KEYS = {"id", "type", "function"}
TOOL_CALL_FUNCTION_KEYS = {"name", "arguments"}


@dataclass(frozen=True)
class Problem:
    """One refusal, as the API words its error: a message, the parameter's path and a code."""

    message: str
    param: str | None = None
    code: str | None = None


def chat_request_problems(body: JsonObject, *, assistant_keys: frozenset[str] = frozenset()) -> list[Problem]:
    """The problems the real API would refuse `body` for; `assistant_keys` are extra keys an assistant message may
    carry (a compatible server's reasoning field, passed back)."""
    problems = _request_field_problems(body)
    messages = body.get("messages")
    if "messages" not in body:
        problems.append(Problem("Missing required parameter: 'messages'.", "messages", "missing_required_parameter"))
    elif not isinstance(messages, list) or not messages:
        message = "Invalid 'messages': empty array. Expected an array with minimum length 1."
        problems.append(Problem(message, "messages", "empty_array"))
    else:
        shape = [p for i, m in enumerate(messages) for p in _message_problems(i, m, assistant_keys)]
        problems += shape or _pairing_problems(messages)
    problems += _tool_definition_problems(body.get("tools"))
    problems += [_unknown(path) for path in _cache_control_paths(body, "")]
    return list({(p.message, p.param): p for p in problems}.values())  # a cache_control can be found twice


def _unknown(path: str) -> Problem:
    return Problem(f"Unknown parameter: {path!r}.", path, "unknown_parameter")


def _wrong_type(path: str, expected: str, value: Any) -> Problem:
    got = "null" if value is None else type(value).__name__
    return Problem(f"Invalid type for {path!r}: expected {expected}, but got {got} instead.", path, "invalid_type")


def _wrong_value(path: str, value: Any, supported: tuple[str, ...]) -> Problem:
    listed = ", ".join(repr(s) for s in supported)
    return Problem(f"Invalid value: {value!r}. Supported values are: {listed}.", path, "invalid_value")


def _unknown_keys(value: JsonObject, allowed: set[str], path: str) -> list[Problem]:
    return [_unknown(f"{path}.{key}") for key in value if key not in allowed]


# --- request fields ----------------------------------------------------------------------------------------------


def _request_field_problems(body: JsonObject) -> list[Problem]:
    problems: list[Problem] = []
    if not isinstance(body.get("model"), str) or not body["model"]:
        problems.append(Problem("you must provide a model parameter", "model"))
    if body.get("max_tokens") is not None and body.get("max_completion_tokens") is not None:
        message = "'max_tokens' and 'max_completion_tokens' cannot both be set; send only 'max_completion_tokens'."
        problems.append(Problem(message, "max_tokens", "invalid_request"))
    if "stream" in body and not isinstance(body["stream"], bool | None):
        problems.append(_wrong_type("stream", "a boolean", body["stream"]))
    if body.get("stream_options") is not None and body.get("stream") is not True:
        message = "The 'stream_options' parameter is only allowed when 'stream' is enabled."
        problems.append(Problem(message, "stream_options"))
    return problems


# --- one message at a time -----------------------------------------------------------------------------------


def _message_problems(i: int, message: Any, assistant_keys: frozenset[str]) -> list[Problem]:
    path = f"messages[{i}]"
    if not isinstance(message, dict):
        return [_wrong_type(path, "an object", message)]
    role = message.get("role")
    if role not in ROLES:
        return [_wrong_value(f"{path}.role", role, ROLES)]
    allowed = MESSAGE_KEYS[role] | (assistant_keys if role == "assistant" else set())
    problems = _unknown_keys(message, allowed, path)
    problems += _content_problems(path, role, message)
    if role == "tool" and (not isinstance(message.get("tool_call_id"), str) or not message["tool_call_id"]):
        problems.append(Problem(f"Missing required parameter: '{path}.tool_call_id'.", f"{path}.tool_call_id"))
    if role == "assistant" and "tool_calls" in message:
        problems += _tool_call_problems(path, message["tool_calls"])
    return problems


def _content_problems(path: str, role: str, message: JsonObject) -> list[Problem]:
    content = message.get("content")
    if content is None:
        if role == "assistant" and any(message.get(k) for k in ("tool_calls", "function_call", "refusal")):
            return []
        return [Problem(f"Missing required parameter: '{path}.content'.", f"{path}.content")]
    if role == "tool" and not content:
        message_text = f"Invalid '{path}.content': a tool message needs the tool's output; it is empty."
        return [Problem(message_text, f"{path}.content", "empty_string" if content == "" else "empty_array")]
    if isinstance(content, str):
        return []
    if not isinstance(content, list):
        return [_wrong_type(f"{path}.content", "a string or an array of content parts", content)]
    allowed = PART_TYPES_BY_ROLE.get(role, ("text",))
    return [p for j, part in enumerate(content) for p in _part_problems(f"{path}.content[{j}]", part, allowed)]


def _part_problems(path: str, part: Any, allowed: tuple[str, ...]) -> list[Problem]:
    if not isinstance(part, dict):
        return [_wrong_type(path, "an object", part)]
    kind = part.get("type")
    if kind not in allowed:
        return [_wrong_value(f"{path}.type", kind, allowed)]
    problems = _unknown_keys(part, PART_KEYS[kind], path)
    inner = part.get(kind)
    if kind in PART_OBJECT_KEYS:
        if isinstance(inner, dict):
            problems += _unknown_keys(inner, PART_OBJECT_KEYS[kind], f"{path}.{kind}")
        else:
            problems.append(_wrong_type(f"{path}.{kind}", "an object", inner))
    elif not isinstance(inner, str):
        problems.append(_wrong_type(f"{path}.{kind}", "a string", inner))
    return problems


def _tool_call_problems(path: str, tool_calls: Any) -> list[Problem]:
    if not isinstance(tool_calls, list):
        return [_wrong_type(f"{path}.tool_calls", "an array", tool_calls)]
    if not tool_calls:
        message = f"Invalid '{path}.tool_calls': empty array. Expected an array with minimum length 1."
        return [Problem(message, f"{path}.tool_calls", "empty_array")]
    return [p for j, call in enumerate(tool_calls) for p in _one_tool_call_problems(f"{path}.tool_calls[{j}]", call)]


def _one_tool_call_problems(path: str, call: Any) -> list[Problem]:
    if not isinstance(call, dict):
        return [_wrong_type(path, "an object", call)]
    problems = _unknown_keys(call, TOOL_CALL_KEYS, path)
    if not isinstance(call.get("id"), str) or not call["id"]:
        problems.append(Problem(f"Missing required parameter: '{path}.id'.", f"{path}.id"))
    if call.get("type") != "function":
        problems.append(_wrong_value(f"{path}.type", call.get("type"), ("function",)))
    function = call.get("function")
    if not isinstance(function, dict):
        return [*problems, _wrong_type(f"{path}.function", "an object", function)]
    problems += _unknown_keys(function, TOOL_CALL_FUNCTION_KEYS, f"{path}.function")
    if not isinstance(function.get("name"), str):
        problems.append(_wrong_type(f"{path}.function.name", "a string", function.get("name")))
    if not isinstance(function.get("arguments"), str):
        problems.append(_wrong_type(f"{path}.function.arguments", "a string", function.get("arguments")))
    return problems


# --- across messages -----------------------------------------------------------------------------------------


def _pairing_problems(messages: list[JsonObject]) -> list[Problem]:
    """Each assistant `tool_calls` must be answered by one `tool` message per id, before any other message."""
    problems: list[Problem] = []
    asker: int | None = None  # the assistant message whose calls the following tool messages answer
    asked: list[str] = []
    answered: list[str] = []
    for i, message in enumerate(messages):
        if message["role"] == "tool":
            problems += _answer_problems(i, message["tool_call_id"], asker, asked, answered)
            answered.append(message["tool_call_id"])
            continue
        if asker is not None:
            problems += _unanswered(asker, asked, answered)
        calls = message.get("tool_calls") if message["role"] == "assistant" else None
        asker, asked, answered = (i, [c["id"] for c in calls], []) if calls else (None, [], [])
    if asker is not None:
        problems += _unanswered(asker, asked, answered)
    return problems


def _answer_problems(i: int, call_id: str, asker: int | None, asked: list[str], answered: list[str]) -> list[Problem]:
    path = f"messages[{i}].tool_call_id"
    if asker is None:
        message = (
            f"Invalid parameter: messages with role 'tool' must be a response to a preceding message with "
            f"'tool_calls'; messages[{i}] answers {call_id!r}, but no assistant message with tool_calls precedes it."
        )
        return [Problem(message, path)]
    if call_id not in asked:
        return [Problem(f"{path}: {call_id!r} answers none of the tool calls of messages[{asker}] ({asked}).", path)]
    if call_id in answered:
        return [Problem(f"{path}: the tool call {call_id!r} of messages[{asker}] is answered more than once.", path)]
    return []


def _unanswered(asker: int, asked: list[str], answered: list[str]) -> list[Problem]:
    missing = [call_id for call_id in asked if call_id not in answered]
    if not missing:
        return []
    message = (
        "An assistant message with 'tool_calls' must be followed by tool messages responding to each "
        f"'tool_call_id'. The following tool_call_ids did not have response messages: {', '.join(missing)}"
    )
    return [Problem(message, f"messages[{asker}].role")]


# --- tools -----------------------------------------------------------------------------------------------------


def _tool_definition_problems(tools: Any) -> list[Problem]:
    if tools is None:
        return []
    if not isinstance(tools, list):
        return [_wrong_type("tools", "an array", tools)]
    return [p for i, tool in enumerate(tools) for p in _one_tool_problems(f"tools[{i}]", tool)]


def _one_tool_problems(path: str, tool: Any) -> list[Problem]:
    if not isinstance(tool, dict):
        return [_wrong_type(path, "an object", tool)]
    kind = tool.get("type")
    if kind not in TOOL_KEYS:
        return [_wrong_value(f"{path}.type", kind, tuple(TOOL_KEYS))]
    problems = _unknown_keys(tool, TOOL_KEYS[kind], path)
    definition = tool.get(kind)
    if not isinstance(definition, dict):
        return [*problems, _wrong_type(f"{path}.{kind}", "an object", definition)]
    name = definition.get("name")
    if not isinstance(name, str) or not FUNCTION_NAME.match(name):
        message = f"Invalid '{path}.{kind}.name': {name!r} does not match the pattern '{FUNCTION_NAME.pattern}'."
        problems.append(Problem(message, f"{path}.{kind}.name", "invalid_value"))
    if kind == "function":
        problems += _unknown_keys(definition, FUNCTION_KEYS, f"{path}.function")
        problems += _parameters_problems(f"{path}.function.parameters", name, definition)
    return problems


def _parameters_problems(path: str, name: Any, function: JsonObject) -> list[Problem]:
    if "parameters" not in function:
        return []
    parameters = function["parameters"]
    kind = parameters.get("type") if isinstance(parameters, dict) else type(parameters).__name__
    if isinstance(parameters, dict) and kind == "object":
        return []
    message = f"Invalid schema for function {name!r}: schema must be a JSON Schema of 'type: \"object\"', got {kind!r}."
    return [Problem(message, path, "invalid_function_parameters")]


def _cache_control_paths(value: Any, path: str) -> Iterator[str]:
    """Every `cache_control` key anywhere in the body: the API knows no such parameter at any depth."""
    if isinstance(value, dict):
        for key, inner in value.items():
            inner_path = f"{path}.{key}" if path else str(key)
            if key == "cache_control":
                yield inner_path
            else:
                yield from _cache_control_paths(inner, inner_path)
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            yield from _cache_control_paths(inner, f"{path}[{index}]")
