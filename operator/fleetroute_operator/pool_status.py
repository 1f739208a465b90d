"""ModelPool status: replicas, endpoints and the Ready condition, from what the cluster shows."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fleetroute.crds import GPUPoolSpec, ModelPoolSpec
from fleetroute_operator import conditions
from fleetroute_operator.capacity import PoolCapacity, pod_requests


@dataclass(frozen=True)
class Verdict:
    """The Ready condition's status, reason and message."""

    ready: bool
    reason: str
    message: str


def pod_ready(pod: Mapping[str, Any]) -> bool:
    """Whether the pod's Ready condition is True."""
    status = pod.get("status") or {}
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )


def unschedulable(pod: Mapping[str, Any]) -> str | None:
    """The scheduler's message when the pod is Pending because it does not fit."""
    status = pod.get("status") or {}
    if status.get("phase") != "Pending":
        return None
    for c in status.get("conditions") or []:
        if (
            c.get("type") == "PodScheduled"
            and c.get("status") == "False"
            and c.get("reason") == "Unschedulable"
        ):
            return str(c.get("message") or "unschedulable")
    return None


def pod_endpoints(pods: Iterable[Mapping[str, Any]], port: int) -> list[dict[str, Any]]:
    """host:port of every live pod with an IP, sorted, with its readiness, pod name and node IP
    (the node's DCGM exporter reports the pod's GPU power)."""
    found = []
    for pod in pods:
        meta, status = pod.get("metadata") or {}, pod.get("status") or {}
        if meta.get("deletionTimestamp"):
            continue
        ip = status.get("podIP")
        if ip:
            endpoint = {"address": f"{ip}:{port}", "ready": pod_ready(pod)}
            if meta.get("name"):
                endpoint["pod"] = meta["name"]
            if status.get("hostIP"):
                endpoint["nodeIP"] = status["hostIP"]
            found.append(endpoint)
    return sorted(found, key=lambda e: e["address"])


def deployed_verdict(
    spec: ModelPoolSpec,
    gpu_pool_name: str,
    gpu_pool: GPUPoolSpec,
    capacity: PoolCapacity,
    pods: Sequence[Mapping[str, Any]],
    ready: int,
) -> Verdict:
    """Ready condition of a deployed pool, naming the GPU shortfall when pods cannot fit."""
    assert spec.deploy is not None  # noqa: S101 (caller checks)
    deploy = spec.deploy
    needed = deploy.replicas * deploy.gpus_per_replica
    held_by_us = sum(
        pod_requests(p).get(gpu_pool.gpu_resource, 0) for p in pods if not unschedulable(p)
    )
    shortfall = (
        f"needs {needed} GPUs of {gpu_pool.product} ({deploy.replicas} replicas x "
        f"{deploy.gpus_per_replica}), GPUPool {gpu_pool_name} has {capacity.free + held_by_us} "
        f"available of {capacity.capacity} on {capacity.nodes} nodes"
    )
    pending = [m for p in pods if (m := unschedulable(p))]
    if needed > capacity.capacity or pending:
        detail = f"; scheduler: {pending[0]}" if pending else ""
        return Verdict(False, "InsufficientGPUs", shortfall + detail)
    if deploy.replicas == 0:
        return Verdict(False, "ScaledToZero", "replicas is 0")
    if ready < deploy.replicas:
        return Verdict(False, "ReplicasNotReady", f"{ready}/{deploy.replicas} replicas ready")
    return Verdict(True, "AllReplicasReady", f"{ready}/{deploy.replicas} replicas ready")


def adopted_verdict(endpoints: list[dict[str, Any]]) -> Verdict:
    """Ready condition of an adopted pool: ready while any server is."""
    ready = sum(1 for e in endpoints if e["ready"])
    if ready == 0:
        return Verdict(False, "NoReadyEndpoints", f"0/{len(endpoints)} adopted servers ready")
    return Verdict(True, "EndpointsAdopted", f"{ready}/{len(endpoints)} adopted servers ready")


def status_patch(
    previous: Mapping[str, Any],
    generation: int | None,
    verdict: Verdict,
    *,
    replicas: int,
    ready_replicas: int,
    endpoints: list[dict[str, Any]],
    gpu_product: str | None,
) -> dict[str, Any]:
    """The whole status to write, with conditions merged into the previous ones."""
    ready = conditions.condition(
        conditions.READY, verdict.ready, verdict.reason, verdict.message, generation
    )
    status: dict[str, Any] = {
        "observedGeneration": generation,
        "replicas": replicas,
        "readyReplicas": ready_replicas,
        "endpoints": endpoints,
        "conditions": conditions.merge(previous.get("conditions") or [], [ready]),
    }
    if gpu_product:
        status["gpuProduct"] = gpu_product
    return status
