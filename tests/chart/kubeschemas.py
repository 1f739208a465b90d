"""Offline JSON schemas for kubeconform: built-in kinds from the pinned Kubernetes module's
OpenAPI document, CRDs (ours and the Prometheus Operator's ServiceMonitor) from their YAML.

kubeconform normally downloads schemas from GitHub. Here every input comes from the Go module
proxy (the e2e harness already needs k8s.io/kubernetes at the pinned version) or the repository,
and is converted the way openapi2jsonschema --strict does: every object that lists its properties
is closed (additionalProperties: false), int-or-string and quantities accept strings or numbers.
"""

from __future__ import annotations

import copy
import json
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from e2e.localcluster import Builder, Versions, find_go

# Source of the ServiceMonitor CRD the chart can render (monitoring.coreos.com/v1).
PROMETHEUS_OPERATOR = "github.com/prometheus-operator/prometheus-operator@v0.85.0"
SERVICEMONITOR_CRD = "example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml"

BUILTIN_LOCATION = "{{ .ResourceKind }}{{ .KindSuffix }}.json"
CRD_LOCATION = "{{ .Group }}/{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json"
NUMBER_OR_STRING = {
    "io.k8s.apimachinery.pkg.api.resource.Quantity": [{"type": "string"}, {"type": "number"}],
    "io.k8s.apimachinery.pkg.util.intstr.IntOrString": [{"type": "string"}, {"type": "integer"}],
}


def module_dir(module: str) -> Path:
    """Download a Go module through the module proxy (cached) and return its directory."""
    result = subprocess.run(
        [str(find_go()), "mod", "download", "-json", module],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
        cwd=Path(__file__).parent,
    )
    return Path(json.loads(result.stdout)["Dir"])


def strict(schema: Any) -> Any:
    """Close every object that lists properties (unless it keeps unknown fields)."""
    if not isinstance(schema, dict):
        return schema
    out = dict(schema)
    for key in ("properties", "patternProperties", "definitions"):
        if isinstance(schema.get(key), dict):
            out[key] = {name: strict(value) for name, value in schema[key].items()}
    for key in ("items", "additionalProperties", "not"):
        if isinstance(schema.get(key), dict):
            out[key] = strict(schema[key])
    for key in ("allOf", "anyOf", "oneOf"):
        if isinstance(schema.get(key), list):
            out[key] = [strict(value) for value in schema[key]]
    keeps_unknown = schema.get("x-kubernetes-preserve-unknown-fields")
    if "properties" in schema and "additionalProperties" not in schema and not keeps_unknown:
        out["additionalProperties"] = False
    if schema.get("format") == "int-or-string" or schema.get("x-kubernetes-int-or-string"):
        out = {k: v for k, v in out.items() if k not in ("type", "format")}
        out["oneOf"] = [{"type": "string"}, {"type": "integer"}]
    return out


def _refs(schema: Any) -> Iterable[str]:
    if isinstance(schema, dict):
        ref = schema.get("$ref")
        if isinstance(ref, str):
            yield ref.rsplit("/", 1)[-1]
        for value in schema.values():
            yield from _refs(value)
    elif isinstance(schema, list):
        for value in schema:
            yield from _refs(value)


def _kind_suffix(group: str, version: str) -> str:
    return f"-{group.split('.')[0]}-{version}" if group else f"-{version}"


def builtin_schemas(swagger: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Standalone strict schemas of every built-in kind, by kubeconform file name."""
    definitions = {
        name: {"oneOf": NUMBER_OR_STRING[name]} if name in NUMBER_OR_STRING else strict(schema)
        for name, schema in swagger["definitions"].items()
    }
    out: dict[str, dict[str, Any]] = {}
    for name, schema in definitions.items():
        kinds = swagger["definitions"][name].get("x-kubernetes-group-version-kind") or []
        for gvk in kinds:
            reachable: dict[str, Any] = {}
            todo = list(_refs(schema))
            while todo:
                ref = todo.pop()
                if ref not in reachable:
                    reachable[ref] = definitions[ref]
                    todo.extend(_refs(definitions[ref]))
            document = copy.deepcopy(schema)
            document["definitions"] = reachable
            file = f"{gvk['kind'].lower()}{_kind_suffix(gvk['group'], gvk['version'])}.json"
            out[file] = document
    return out


def crd_schemas(crds: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Strict schemas of every version of the given CRDs, by kubeconform file name."""
    out = {}
    for crd in crds:
        spec = crd["spec"]
        for version in spec["versions"]:
            schema = strict(version["schema"]["openAPIV3Schema"])
            name = f"{spec['group']}/{spec['names']['kind'].lower()}_{version['name']}.json"
            out[name] = schema
    return out


def write_schemas(directory: Path, repo_crds: Path) -> list[str]:
    """Write every schema under `directory`; returns kubeconform's -schema-location arguments."""
    versions = Versions.load()
    kubernetes = module_dir(f"k8s.io/kubernetes@{versions.kubernetes}")
    swagger = json.loads((kubernetes / "api" / "openapi-spec" / "swagger.json").read_text())
    crds = [yaml.safe_load(p.read_text()) for p in sorted(repo_crds.glob("*.yaml"))]
    crds.append(yaml.safe_load((module_dir(PROMETHEUS_OPERATOR) / SERVICEMONITOR_CRD).read_text()))
    for name, schema in {**builtin_schemas(swagger), **crd_schemas(crds)}.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(schema))
    return [
        arg
        for location in (BUILTIN_LOCATION, CRD_LOCATION)
        for arg in ("-schema-location", f"{directory}/{location}")
    ]


def kubeconform_binary() -> Path:
    """The pinned kubeconform (built into the harness's binary cache on first use)."""
    from e2e.localcluster import cache_dir

    builder = Builder(Versions.load(), cache_dir() / "bin")
    builder.build(["kubeconform"])
    return builder.path("kubeconform")
