"""Render the CustomResourceDefinitions from the models, and write them as YAML under crds/."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from fleetroute.crds.common import GROUP, VERSION
from fleetroute.crds.gpupool import GPUPoolSpec, GPUPoolStatus
from fleetroute.crds.modelpool import ModelPoolSpec, ModelPoolStatus
from fleetroute.crds.routingpolicy import RoutingPolicySpec, RoutingPolicyStatus
from fleetroute.crds.schema import structural_schema

_READY = '.status.conditions[?(@.type=="Ready")].status'


@dataclass(frozen=True)
class Kind:
    """What a CRD needs beyond its models."""

    kind: str
    plural: str
    short_names: Sequence[str]
    scope: str
    spec: type[BaseModel]
    status: type[BaseModel]
    columns: Sequence[dict[str, Any]]
    description: str

    @property
    def name(self) -> str:
        return f"{self.plural}.{GROUP}"


def _column(name: str, json_path: str, kind: str = "string", priority: int = 0) -> dict[str, Any]:
    column: dict[str, Any] = {"name": name, "type": kind, "jsonPath": json_path}
    if priority:
        column["priority"] = priority
    return column


_AGE = _column("Age", ".metadata.creationTimestamp", "date")

KINDS: tuple[Kind, ...] = (
    Kind(
        kind="GPUPool",
        plural="gpupools",
        short_names=("gpool",),
        scope="Cluster",
        spec=GPUPoolSpec,
        status=GPUPoolStatus,
        description="A class of GPU nodes, with their power and price figures.",
        columns=(
            _column("Product", ".spec.product"),
            _column("Nodes", ".status.nodes", "integer"),
            _column("Capacity", ".status.capacity", "integer"),
            _column("Allocated", ".status.allocated", "integer", priority=1),
            _column("Free", ".status.free", "integer"),
            _column("Ready", _READY),
            _AGE,
        ),
    ),
    Kind(
        kind="ModelPool",
        plural="modelpools",
        short_names=("mpool",),
        scope="Namespaced",
        spec=ModelPoolSpec,
        status=ModelPoolStatus,
        description="A model served by vLLM or SGLang on a GPUPool, or adopted servers.",
        columns=(
            _column("Model", ".spec.model"),
            _column("Role", ".spec.role"),
            _column("GPU", ".status.gpuProduct"),
            _column("Ready", ".status.readyReplicas", "integer"),
            _column("Desired", ".status.replicas", "integer"),
            _column("Status", _READY),
            _column("Engine", ".spec.engine", priority=1),
            _AGE,
        ),
    ),
    Kind(
        kind="RoutingPolicy",
        plural="routingpolicies",
        short_names=("rpol",),
        scope="Namespaced",
        spec=RoutingPolicySpec,
        status=RoutingPolicyStatus,
        description="A model alias clients call, and how to choose among its model pools.",
        columns=(
            _column("Alias", ".spec.modelAlias"),
            _column("Algorithm", ".spec.algorithm.name"),
            _column("Candidates", ".spec.candidates[*].modelPool"),
            _column("Top Arm", ".status.topArm"),
            _column("Quality", '.status.conditions[?(@.type=="QualityObserved")].status'),
            _column("Ready", _READY),
            _AGE,
        ),
    ),
)


def crd(kind: Kind) -> dict[str, Any]:
    """The CustomResourceDefinition manifest of one kind."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": kind.name, "labels": {"app.kubernetes.io/part-of": "fleetroute"}},
        "spec": {
            "group": GROUP,
            "scope": kind.scope,
            "names": {
                "kind": kind.kind,
                "listKind": f"{kind.kind}List",
                "plural": kind.plural,
                "singular": kind.kind.lower(),
                "shortNames": list(kind.short_names),
                "categories": ["fleetroute"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": list(kind.columns),
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": kind.description,
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {"type": "object"},
                                "spec": structural_schema(kind.spec),
                                "status": structural_schema(kind.status),
                            },
                        }
                    },
                }
            ],
        },
    }


def all_crds() -> list[dict[str, Any]]:
    """Every CRD of the API group."""
    return [crd(k) for k in KINDS]


def to_yaml(manifest: dict[str, Any]) -> str:
    """Stable YAML for a manifest (keys in the order built, wide lines)."""
    return yaml.safe_dump(manifest, sort_keys=False, width=120, allow_unicode=True)


def write_all(out_dir: Path) -> list[Path]:
    """Write `<group>_<plural>.yaml` for every kind into out_dir."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for kind in KINDS:
        path = out_dir / f"{GROUP}_{kind.plural}.yaml"
        path.write_text(
            "# Generated from api/fleetroute/crds by scripts/generate.py: do not edit.\n"
            + to_yaml(crd(kind))
        )
        written.append(path)
    return written
