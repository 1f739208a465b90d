"""Turn a pydantic model's JSON schema into a structural OpenAPI v3 schema for a CRD."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

_KEPT = {
    "type",
    "description",
    "properties",
    "required",
    "items",
    "enum",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "pattern",
    "minItems",
    "maxItems",
    "minProperties",
    "maxProperties",
    "format",
    "default",
    "additionalProperties",
}
_UNTYPED_OK = {"x-kubernetes-int-or-string", "x-kubernetes-preserve-unknown-fields"}

Schema = dict[str, Any]


class SchemaError(ValueError):
    """A model cannot be expressed as a structural schema."""


def structural_schema(model: type[BaseModel]) -> Schema:
    """The structural schema of `model`: refs inlined, optionals unwrapped, OpenAPI 3.0 bounds."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    defs: dict[str, Schema] = raw.pop("$defs", {})
    return _convert(raw, defs, path=model.__name__)


def _resolve(node: Schema, defs: dict[str, Schema]) -> Schema:
    """Inline a `$ref` (or a single-entry allOf), letting the referring node's keys win."""
    if "$ref" in node:
        target = defs[node["$ref"].rsplit("/", 1)[-1]]
        return {**_resolve(target, defs), **{k: v for k, v in node.items() if k != "$ref"}}
    if "allOf" in node and len(node["allOf"]) == 1:
        rest = {k: v for k, v in node.items() if k != "allOf"}
        return {**_resolve(node["allOf"][0], defs), **rest}
    return node


def _unwrap_optional(node: Schema, defs: dict[str, Schema], path: str) -> Schema:
    """`anyOf: [X, null]` (an Optional field) becomes X; other unions are not structural."""
    if "anyOf" not in node:
        return node
    choices = [c for c in node["anyOf"] if c.get("type") != "null"]
    if len(choices) != 1:
        raise SchemaError(f"{path}: unions are not allowed in a structural schema")
    rest = {k: v for k, v in node.items() if k != "anyOf"}
    return {**_resolve(choices[0], defs), **rest}


def _convert(node: Schema, defs: dict[str, Schema], path: str) -> Schema:
    node = _unwrap_optional(_resolve(node, defs), defs, path)
    out: Schema = {}
    for key, value in node.items():
        if key.startswith("x-kubernetes-"):
            out[key] = value
        elif key == "const":
            out["enum"] = [value]
        elif key == "exclusiveMinimum":
            out["minimum"], out["exclusiveMinimum"] = value, True
        elif key == "exclusiveMaximum":
            out["maximum"], out["exclusiveMaximum"] = value, True
        elif key == "default" and value is None:
            continue
        elif key in _KEPT:
            out[key] = value
    if "properties" in out:
        out["properties"] = {
            name: _convert(child, defs, f"{path}.{name}")
            for name, child in out["properties"].items()
        }
        out.pop("additionalProperties", None)
    elif isinstance(out.get("additionalProperties"), dict):
        out["additionalProperties"] = _convert(out["additionalProperties"], defs, f"{path}.*")
    elif out.get("additionalProperties") is False:
        out.pop("additionalProperties")
    if "items" in out:
        out["items"] = _convert(out["items"], defs, f"{path}[]")
    if "type" not in out and not _UNTYPED_OK & out.keys():
        raise SchemaError(f"{path}: every node of a structural schema needs a type")
    if "required" in out:
        out["required"] = sorted(out["required"])
    return out
