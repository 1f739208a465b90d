"""GPU accounting: which nodes a GPUPool selects, their GPUs, and how many pods hold."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fleetroute.crds import GPUPoolSpec


@dataclass(frozen=True)
class NodeFacts:
    """What the operator needs to know of one Node."""

    name: str
    labels: Mapping[str, str]
    allocatable: Mapping[str, int]
    schedulable: bool


@dataclass(frozen=True)
class PoolCapacity:
    """GPUs of a pool's nodes: capacity, allocated and free."""

    nodes: int = 0
    capacity: int = 0
    allocated: int = 0
    node_names: frozenset[str] = field(default_factory=frozenset)

    @property
    def free(self) -> int:
        return max(self.capacity - self.allocated, 0)


def parse_quantity(value: str | int) -> int:
    """An integer count from a Kubernetes quantity of a countable resource ("8", 8, "2k")."""
    text = str(value).strip()
    multipliers = {"k": 10**3, "M": 10**6, "G": 10**9}
    if text and text[-1] in multipliers:
        return int(text[:-1]) * multipliers[text[-1]]
    return int(text)


def node_facts(node: Mapping[str, Any]) -> NodeFacts:
    """NodeFacts from a Node object: schedulable means Ready and not cordoned."""
    status = node.get("status") or {}
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )
    allocatable = {}
    for name, value in (status.get("allocatable") or {}).items():
        try:
            allocatable[name] = parse_quantity(value)
        except ValueError:
            continue  # cpu "3500m", memory "64Gi": not countable, not needed
    return NodeFacts(
        name=node["metadata"]["name"],
        labels=dict(node["metadata"].get("labels") or {}),
        allocatable=allocatable,
        schedulable=ready and not (node.get("spec") or {}).get("unschedulable", False),
    )


def pod_requests(pod: Mapping[str, Any]) -> dict[str, int]:
    """Extended-resource requests of a pod that holds them (bound and not finished)."""
    if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
        return {}
    totals: dict[str, int] = {}
    for container in (pod.get("spec") or {}).get("containers") or []:
        resources = container.get("resources") or {}
        wanted = {**(resources.get("limits") or {}), **(resources.get("requests") or {})}
        for name, value in wanted.items():
            if "/" in name:
                totals[name] = totals.get(name, 0) + parse_quantity(value)
    return totals


def selects(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    """Whether equality-based selector matches labels."""
    return all(labels.get(k) == v for k, v in selector.items())


def pool_capacity(
    spec: GPUPoolSpec, nodes: Iterable[NodeFacts], held: Mapping[str, Iterable[Mapping[str, int]]]
) -> PoolCapacity:
    """Capacity, allocation and free GPUs of a pool from node facts and per-node pod requests."""
    selector = spec.selector()
    matching = [n for n in nodes if n.schedulable and selects(selector, n.labels)]
    capacity = sum(n.allocatable.get(spec.gpu_resource, 0) for n in matching)
    allocated = sum(
        requests.get(spec.gpu_resource, 0) for n in matching for requests in held.get(n.name, ())
    )
    return PoolCapacity(
        nodes=len(matching),
        capacity=capacity,
        allocated=allocated,
        node_names=frozenset(n.name for n in matching),
    )
