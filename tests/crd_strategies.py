"""Hypothesis strategies of custom resources, generated from the CRDs' own schemas.

`valid_shaped(kind)` follows the structural schema (types, enums, bounds, patterns, required
fields), so the API server's CEL rules and the operator are what decide; `varied(kind)` takes an
example object (examples/fleet/) and replaces one part of its spec with a schema-valid value (a
valid mutation, mostly passing CEL too, so the operator's reconcile runs deep); `mutated(kind)`
breaks one spot of such an object (a wrong type or value anywhere, a required field removed, an
unknown field added), so the schema has to say no.
"""

from __future__ import annotations

import copy
import re
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from hypothesis import strategies as st

from tests.fuzzing import json_values

CRD_DIR = Path(__file__).resolve().parent.parent / "crds"
NAMESPACE = "fuzz"
MAX_ITEMS = 3
MAX_TEXT = 24
Schema = dict[str, Any]


@cache
def crds() -> dict[str, dict[str, Any]]:
    """Every CRD by kind."""
    found = {}
    for path in sorted(CRD_DIR.glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        found[crd["spec"]["names"]["kind"]] = crd
    return found


def spec_schema(kind: str) -> Schema:
    schema: Schema = crds()[kind]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return dict(schema["properties"]["spec"])


def _string(schema: Schema) -> st.SearchStrategy[Any]:
    low, high = schema.get("minLength", 0), schema.get("maxLength", MAX_TEXT)
    if "pattern" in schema:
        # Go's RE2 and Python agree on these patterns (anchored character classes); fullmatch
        # keeps a trailing newline out, which `$` would let through in Python.
        pattern = schema["pattern"]
        return st.from_regex(
            re.compile(pattern), fullmatch=True, alphabet=st.characters(codec="ascii")
        ).filter(lambda s: low <= len(s) <= high)
    if schema.get("format") == "date-time":
        return st.datetimes().map(lambda d: d.strftime("%Y-%m-%dT%H:%M:%SZ"))
    return st.text(min_size=low, max_size=min(high, max(low, MAX_TEXT)))


def _number(schema: Schema, integer: bool) -> st.SearchStrategy[Any]:
    low, high = schema.get("minimum"), schema.get("maximum")
    if integer:
        return st.integers(
            min_value=None if low is None else int(low) + bool(schema.get("exclusiveMinimum")),
            max_value=None if high is None else int(high) - bool(schema.get("exclusiveMaximum")),
        )
    return st.floats(
        min_value=low,
        max_value=high,
        exclude_min=bool(schema.get("exclusiveMinimum")),
        exclude_max=bool(schema.get("exclusiveMaximum")),
        allow_nan=False,
        allow_infinity=False,
    )


def from_schema(schema: Schema) -> st.SearchStrategy[Any]:
    """Values that satisfy a structural schema's types, enums, bounds and patterns."""
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    kind = schema.get("type")
    if kind == "object":
        properties = schema.get("properties")
        if properties:
            required = set(schema.get("required", []))
            return st.fixed_dictionaries(
                {k: from_schema(v) for k, v in properties.items() if k in required},
                optional={k: from_schema(v) for k, v in properties.items() if k not in required},
            )
        values = schema.get("additionalProperties")
        if isinstance(values, dict):
            return st.dictionaries(
                st.from_regex(r"[a-z][a-z0-9.-]{0,15}", fullmatch=True),
                from_schema(values),
                max_size=min(schema.get("maxProperties", MAX_ITEMS), MAX_ITEMS),
            )
        return st.just({})
    if kind == "array":
        low = schema.get("minItems", 0)
        return st.lists(
            from_schema(schema["items"]),
            min_size=low,
            max_size=max(low, min(schema.get("maxItems", MAX_ITEMS), MAX_ITEMS)),
        )
    if kind == "string":
        return _string(schema)
    if kind == "integer":
        return _number(schema, integer=True)
    if kind == "number":
        return _number(schema, integer=False)
    if kind == "boolean":
        return st.booleans()
    raise ValueError(f"no strategy for schema {schema}")


def _object(kind: str, spec: dict[str, Any], name: str) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name}
    if crds()[kind]["spec"]["scope"] == "Namespaced":
        metadata["namespace"] = NAMESPACE
    return {
        "apiVersion": "fleetroute.dev/v1alpha1",
        "kind": kind,
        "metadata": metadata,
        "spec": spec,
    }


NAMES = st.from_regex(r"fuzz-[a-z0-9]{1,8}", fullmatch=True)


def valid_shaped(kind: str) -> st.SearchStrategy[dict[str, Any]]:
    """Objects of a kind whose spec satisfies its structural schema."""
    return st.builds(
        lambda spec, name: _object(kind, spec, name), from_schema(spec_schema(kind)), NAMES
    )


EXAMPLES_DIR = CRD_DIR.parent / "examples" / "fleet"


@cache
def examples_of(kind: str) -> tuple[dict[str, Any], ...]:
    """The example objects of a kind, in the fuzz namespace."""
    found = []
    for path in sorted(EXAMPLES_DIR.glob("*.yaml")):
        for obj in yaml.safe_load_all(path.read_text()):
            if obj and obj.get("kind") == kind:
                found.append(_object(kind, obj["spec"], obj["metadata"]["name"]))
    return tuple(found)


def _schema_at(schema: Schema, path: tuple[Any, ...]) -> Schema | None:
    """The sub-schema at a path of a value, if the schema describes it."""
    for key in path:
        if isinstance(key, int):
            schema = schema.get("items") or {}
        elif key in (schema.get("properties") or {}):
            schema = schema["properties"][key]
        elif isinstance(schema.get("additionalProperties"), dict):
            schema = schema["additionalProperties"]
        else:
            return None
    return schema or None


@st.composite
def varied(draw: st.DrawFn, kind: str) -> dict[str, Any]:
    """An example object with one part of its spec (or a field it lacks) replaced by a value
    valid for the schema."""
    base = copy.deepcopy(draw(st.sampled_from(examples_of(kind))))
    spec = base["spec"]
    schema = spec_schema(kind)
    missing = [
        (*p, name)
        for p in [(), *(q for q in _paths(spec) if isinstance(_at(spec, q), dict))]
        for name in (_schema_at(schema, p) or {}).get("properties", {})
        if name not in _at(spec, p)
    ]
    path = draw(st.sampled_from([*_paths(spec), *missing]))
    sub = _schema_at(schema, path)
    if sub is not None:
        _at(spec, path[:-1])[path[-1]] = draw(from_schema(sub))
    return base


def _paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path into a JSON value (the root excluded)."""
    found = []
    if isinstance(value, dict):
        for key, child in value.items():
            found.append((*path, key))
            found.extend(_paths(child, (*path, key)))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found.append((*path, index))
            found.extend(_paths(child, (*path, index)))
    return found


def _at(value: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        value = value[key]
    return value


@st.composite
def mutated(draw: st.DrawFn, kind: str) -> dict[str, Any]:
    """A valid-shaped or varied object with one spot of its spec broken."""
    obj = draw(valid_shaped(kind) | varied(kind))
    spec = copy.deepcopy(obj["spec"])
    paths = _paths(spec)
    how = draw(st.sampled_from(["replace", "unknown", "delete"] if paths else ["unknown"]))
    if how == "unknown":
        targets = [(), *(p for p in paths if isinstance(_at(spec, p), dict))]
        target = _at(spec, draw(st.sampled_from(targets)))
        target[draw(st.from_regex(r"zz[A-Za-z]{1,6}", fullmatch=True))] = draw(json_values(3))
    else:
        path = draw(st.sampled_from(paths))
        parent = _at(spec, path[:-1])
        if how == "delete":
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(json_values(3))
    if draw(st.booleans()):
        spec = draw(json_values(3)) if draw(st.booleans()) else spec
    return {**obj, "spec": spec}


KINDS = ("GPUPool", "ModelPool", "RoutingPolicy")


def crs() -> st.SearchStrategy[dict[str, Any]]:
    """Objects of every kind: valid-shaped, varied (twice as often) and mutated."""
    return st.sampled_from(KINDS).flatmap(
        lambda kind: st.one_of(valid_shaped(kind), varied(kind), varied(kind), mutated(kind))
    )
