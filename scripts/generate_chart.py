"""Generate the Helm chart files derived from other sources: values schema, values table, CRDs.

charts/fleetroute/values.yaml is the single source of the chart's values: the comment above each
key documents it, and a comment line `@schema {...}` adds JSON-schema keywords. From it come
values.schema.json (every object closed with additionalProperties: false unless it says
otherwise) and the values table in the chart's README.md. The CRD templates come from the same
models as crds/*.yaml, wrapped in `crds.enabled` / `crds.keep`.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "charts" / "fleetroute"
TABLE_START = "<!-- values:start (generated from values.yaml by scripts/generate.py) -->"
TABLE_END = "<!-- values:end -->"
_KEY = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z_][A-Za-z0-9_-]*):(?:\s|$)")
_SCHEMA = "@schema "


@dataclass
class Entry:
    """One key of values.yaml: its path, description and extra schema keywords."""

    path: tuple[str, ...]
    description: str
    extra: dict[str, Any] = field(default_factory=dict)


def parse_entries(text: str) -> dict[tuple[str, ...], Entry]:
    """Every key of values.yaml (two-space indentation) with the comment block just above it."""
    entries: dict[tuple[str, ...], Entry] = {}
    stack: list[str] = []
    comment: list[str] = []
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped:
            comment = []
            continue
        if stripped.startswith("#"):
            comment.append(stripped[1:].strip())
            continue
        match = _KEY.match(line)
        if match is None:
            comment = []
            continue
        indent = len(match["indent"])
        if indent % 2:
            raise ValueError(f"values.yaml:{number}: indentation must be a multiple of 2")
        depth = indent // 2
        if depth > len(stack):
            raise ValueError(f"values.yaml:{number}: unexpected indentation")
        stack[depth:] = [match["key"]]
        extra: dict[str, Any] = {}
        words: list[str] = []
        for text_line in comment:
            if text_line.startswith(_SCHEMA):
                try:
                    extra.update(json.loads(text_line[len(_SCHEMA) :]))
                except json.JSONDecodeError as error:
                    raise ValueError(f"values.yaml:{number}: bad @schema: {error}") from error
            else:
                words.append(text_line)
        entries[tuple(stack)] = Entry(tuple(stack), " ".join(words), extra)
        comment = []
    return entries


def _type_of(value: Any) -> str | None:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return None


def _schema(
    path: tuple[str, ...], value: Any, entries: dict[tuple[str, ...], Entry]
) -> dict[str, Any]:
    entry = entries.get(path)
    schema: dict[str, Any] = {}
    kind = _type_of(value)
    if kind is not None:
        schema["type"] = kind
    if entry is not None and entry.description:
        schema["description"] = entry.description
    extra = dict(entry.extra) if entry is not None else {}
    if isinstance(value, dict) and "additionalProperties" not in extra:
        schema["properties"] = {
            key: _schema((*path, key), child, entries) for key, child in value.items()
        }
        schema["additionalProperties"] = False
    schema.update(extra)
    if path:
        schema["default"] = value
    return schema


def values_schema(text: str) -> dict[str, Any]:
    """The JSON schema of values.yaml: closed objects, types from the defaults, @schema extras."""
    values = yaml.safe_load(text)
    entries = parse_entries(text)
    missing = [".".join(p) for p in _leaf_paths(values, entries) if not entries[p].description]
    if missing:
        raise ValueError(f"values.yaml: undocumented values: {', '.join(missing)}")
    schema = _schema((), values, entries)
    return {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": "Values of the fleetroute Helm chart",
        **schema,
    }


def _leaf_paths(
    values: dict[str, Any], entries: dict[tuple[str, ...], Entry], prefix: tuple[str, ...] = ()
) -> list[tuple[str, ...]]:
    """Paths of the documented values: keys of closed objects, down to the first open one."""
    paths = []
    for key, value in values.items():
        path = (*prefix, key)
        closed = isinstance(value, dict) and "additionalProperties" not in entries[path].extra
        if closed:
            paths.extend(_leaf_paths(value, entries, path))
        else:
            paths.append(path)
    return paths


def values_table(text: str) -> str:
    """The Markdown table of every value: key, type, default and description."""
    values = yaml.safe_load(text)
    entries = parse_entries(text)
    rows = ["| Key | Type | Default | Description |", "| --- | --- | --- | --- |"]
    for path in _leaf_paths(values, entries):
        value: Any = values
        for key in path:
            value = value[key]
        entry = entries[path]
        kind = entry.extra.get("type", _type_of(value))
        kinds = " or ".join(kind) if isinstance(kind, list) else kind
        enum = entry.extra.get("enum")
        if enum:
            kinds = f"{kinds}: " + ", ".join(f"`{v}`" for v in enum)
        default = json.dumps(value, separators=(", ", ": "))
        description = entry.description.replace("|", "\\|")
        rows.append(f"| `{'.'.join(path)}` | {kinds} | `{default}` | {description} |")
    return "\n".join(rows) + "\n"


def readme(current: str, table: str) -> str:
    """The chart README with its values table replaced (between the markers)."""
    start, end = current.find(TABLE_START), current.find(TABLE_END)
    if start < 0 or end < start:
        raise ValueError(f"charts/fleetroute/README.md needs the markers {TABLE_START} {TABLE_END}")
    return current[: start + len(TABLE_START)] + "\n" + table + current[end:]


def crd_template(manifest: dict[str, Any], source: str) -> str:
    """A CRD as a chart template: rendered when crds.enabled, kept on uninstall when crds.keep."""
    spec = yaml.safe_dump(
        {"spec": manifest["spec"]}, sort_keys=False, width=120, allow_unicode=True
    )
    if "{{" in spec or "}}" in spec:
        raise ValueError(f"{source}: braces would be read as Helm template actions")
    return (
        "{{- if .Values.crds.enabled }}\n"
        f"# Generated from {source} by scripts/generate.py: do not edit.\n"
        f"apiVersion: {manifest['apiVersion']}\n"
        f"kind: {manifest['kind']}\n"
        "metadata:\n"
        f"  name: {manifest['metadata']['name']}\n"
        "  labels:\n"
        '    {{- include "fleetroute.labels" . | nindent 4 }}\n'
        "  {{- if .Values.crds.keep }}\n"
        "  annotations:\n"
        "    helm.sh/resource-policy: keep\n"
        "  {{- end }}\n"
        f"{spec}"
        "{{- end }}\n"
    )


def chart_files() -> dict[str, str]:
    """Every generated file of the chart, by path relative to charts/fleetroute."""
    sys.path.insert(0, str(ROOT / "api"))
    from fleetroute.crds import GROUP, render

    text = (CHART / "values.yaml").read_text()
    files = {
        "values.schema.json": json.dumps(values_schema(text), indent=2) + "\n",
        "README.md": readme((CHART / "README.md").read_text(), values_table(text)),
    }
    for kind in render.KINDS:
        source = f"crds/{GROUP}_{kind.plural}.yaml"
        files[f"templates/crds/{kind.plural}.yaml"] = crd_template(render.crd(kind), source)
    return files


def stale_files(chart: Path = CHART) -> list[str]:
    """Generated chart files that differ from what is committed (or are missing, or extra)."""
    files = chart_files()
    stale = [name for name, text in files.items() if _read(chart / name) != text]
    extra = {
        f"templates/crds/{p.name}" for p in (chart / "templates" / "crds").glob("*.yaml")
    } - set(files)
    return sorted(f"charts/fleetroute/{name}" for name in [*stale, *extra])


def write(chart: Path = CHART) -> None:
    """Write every generated chart file, removing CRD templates of kinds that no longer exist."""
    files = chart_files()
    crd_dir = chart / "templates" / "crds"
    crd_dir.mkdir(parents=True, exist_ok=True)
    for old in crd_dir.glob("*.yaml"):
        if f"templates/crds/{old.name}" not in files:
            old.unlink()
    for name, text in files.items():
        (chart / name).write_text(text)


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except FileNotFoundError:
        return None
