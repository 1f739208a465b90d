"""Validate objects against the generated CRDs as the API server would: defaults, schema, CEL."""

from __future__ import annotations

import copy
from functools import cache
from pathlib import Path
from typing import Any

import cel
import yaml
from openapi_schema_validator import OAS30Validator

CRD_DIR = Path(__file__).resolve().parent.parent / "crds"


@cache
def _schemas() -> dict[str, dict[str, Any]]:
    found = {}
    for path in CRD_DIR.glob("*.yaml"):
        crd = yaml.safe_load(path.read_text())
        found[crd["spec"]["names"]["kind"]] = crd["spec"]["versions"][0]["schema"][
            "openAPIV3Schema"
        ]
    return found


def apply_defaults(schema: dict[str, Any], value: Any) -> Any:
    """Fill in `default`s of absent properties, recursively, as structural defaulting does
    (a null where the schema is not nullable is pruned first, so it counts as absent)."""
    if isinstance(value, dict) and "properties" in schema:
        for name, child in schema["properties"].items():
            if name in value and value[name] is None and not child.get("nullable"):
                del value[name]
            if name not in value and "default" in child:
                value[name] = copy.deepcopy(child["default"])
            if name in value:
                value[name] = apply_defaults(child, value[name])
    elif isinstance(value, list) and "items" in schema:
        return [apply_defaults(schema["items"], item) for item in value]
    return value


def cel_errors(schema: dict[str, Any], value: Any, path: str = "") -> list[str]:
    """Messages of the CEL rules that fail, with the path of the object they sit on."""
    failed = []
    for rule in schema.get("x-kubernetes-validations", []):
        if not cel.evaluate(rule["rule"], {"self": value}):
            failed.append(f"{path or '<root>'}: {rule['message']}")
    if isinstance(value, dict):
        for name, child in (schema.get("properties") or {}).items():
            if name in value:
                failed += cel_errors(child, value[name], f"{path}.{name}")
    elif isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            failed += cel_errors(schema["items"], item, f"{path}[{i}]")
    return failed


def list_errors(schema: dict[str, Any], value: Any, path: str = "") -> list[str]:
    """Duplicates in lists the schema declares `x-kubernetes-list-type: set` or `map` (by their
    `x-kubernetes-list-map-keys`), which the API server refuses."""
    failed = []
    if isinstance(value, list) and "items" in schema:
        kind = schema.get("x-kubernetes-list-type")
        keys = schema.get("x-kubernetes-list-map-keys") or []
        seen: list[Any] = []
        for i, item in enumerate(value):
            if kind == "map" and isinstance(item, dict):
                identity: Any = tuple(item.get(k) for k in keys)
            elif kind == "set":
                identity = item
            else:
                identity = None
            if identity is not None and identity in seen:
                failed.append(f"{path}[{i}]: Duplicate value")
            seen.append(identity)
            failed += list_errors(schema["items"], item, f"{path}[{i}]")
    elif isinstance(value, dict):
        for name, child in (schema.get("properties") or {}).items():
            if name in value:
                failed += list_errors(child, value[name], f"{path}.{name}")
    return failed


def errors(obj: dict[str, Any]) -> list[str]:
    """Every schema and CEL error of an object of one of our kinds (empty when valid)."""
    schema = _schemas()[obj["kind"]]
    value = apply_defaults(schema, copy.deepcopy(obj))
    found = [
        f"{'.'.join(str(p) for p in e.absolute_path) or '<root>'}: {e.message}"
        for e in OAS30Validator(schema).iter_errors(value)
    ]
    return found or list_errors(schema, value) or cel_errors(schema, value)
