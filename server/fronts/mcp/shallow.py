"""The output schemas the tools publish: a model's top level, with what lies below it left open.

A client checks every structured result against the tool's published output schema, and the SDK's client lists
the tools before it checks the first one. Session's full schema was 19 KB (28 `$defs`, discriminated unions);
checking a `get_session` result against it took about 0.7 ms of jsonschema per call, more than the rest of the
round trip, and the first `tools/list` carried 167 KB of output schemas (issue 14). So each published schema
keeps, for every top-level field, its JSON type (with `null` when it is optional), its scalar constraints (enums,
consts), its title, description and default, and the model's `required` list; a nested object or array is
published as just `{"type": "object"}` / `{"type": "array"}`. A field that had no description of its own takes
the nested model's, and a discriminated union names its kinds, so the shape is still named where it matters.

This only loosens: any result valid under the full schema is valid under the shallow one. The server still
validates every result against the full pydantic model before sending it (the SDK's `FuncMetadata.convert_result`),
and the nested shapes are described in the README's tool table and are whole in every result itself.
"""

from __future__ import annotations

from typing import Any

__all__ = ["shallow_schema"]

_ANNOTATIONS = ("title", "description", "default")
_OPEN: dict[str, Any] = {}  # a branch that takes any value


def shallow_schema(full: dict[str, Any]) -> dict[str, Any]:
    """`full` (a model's JSON schema, as pydantic makes it) cut to its top level; see the module docstring."""
    defs: dict[str, Any] = full.get("$defs", {})
    shallow = {key: value for key, value in full.items() if key not in ("$defs", "properties")}
    shallow["properties"] = {name: _field(node, defs) for name, node in full.get("properties", {}).items()}
    return shallow


def _field(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    field = {key: node[key] for key in _ANNOTATIONS if key in node}
    if "description" not in field and (borrowed := _model_description(node, defs)):
        field["description"] = borrowed
    if kinds := _kinds(node):
        field["description"] = f"{field.get('description', '')} One of, by `{kinds[0]}`: {kinds[1]}.".lstrip()
    branches = _dedupe(_branches(node, defs))
    if _OPEN in branches:
        return field
    if all(branch.keys() == {"type"} for branch in branches):
        types = [branch["type"] for branch in branches]
        return field | {"type": types[0] if len(types) == 1 else types}
    return field | (branches[0] if len(branches) == 1 else {"anyOf": branches})


def _branches(node: dict[str, Any], defs: dict[str, Any]) -> list[dict[str, Any]]:
    """The JSON values `node` allows, each as a flat schema: scalars whole, objects and arrays open."""
    if "$ref" in node:
        return _branches(defs[node["$ref"].rsplit("/", 1)[-1]], defs)
    if "anyOf" in node or "oneOf" in node:
        return [flat for branch in node.get("anyOf") or node["oneOf"] for flat in _branches(branch, defs)]
    if len(node.get("allOf", ())) == 1:
        return _branches(node["allOf"][0], defs)
    kind = node.get("type")
    if kind in ("object", "array"):
        return [{"type": kind}]
    if isinstance(kind, str) or "enum" in node or "const" in node:
        return [{key: value for key, value in node.items() if key not in _ANNOTATIONS}]
    return [_OPEN]


def _model_description(node: dict[str, Any], defs: dict[str, Any]) -> str | None:
    """The description of the one model `node` refers to (directly, as optional, or as array items), if any."""
    items = node.get("items", {})
    refs = [n["$ref"] for n in (node, items, *node.get("anyOf", ())) if "$ref" in n]
    found = [defs[ref.rsplit("/", 1)[-1]].get("description") for ref in refs]
    if len(found) != 1 or not found[0]:
        return None
    return f"Items: {found[0]}" if "$ref" in items else str(found[0])


def _kinds(node: dict[str, Any]) -> tuple[str, str] | None:
    """A discriminated union's tag and its values (on the field or on its items), e.g. `('type', 'none | limited')`."""
    union = node.get("discriminator") or node.get("items", {}).get("discriminator")
    if union is None:
        return None
    return union["propertyName"], " | ".join(union["mapping"])


def _dedupe(branches: list[dict[str, Any]]) -> list[dict[str, Any]]:
    unique: list[dict[str, Any]] = []
    for branch in branches:
        if branch not in unique:
            unique.append(branch)
    return unique
