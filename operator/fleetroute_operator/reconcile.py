"""Reconcile steps for each kind: read what exists, apply what should, compute the status."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import ValidationError

from fleetroute.crds import GPUPoolSpec, ModelPoolSpec, RoutingPolicySpec

__all__ = [
    "GPUPoolSpec",
    "GpuPoolView",
    "InvalidSpec",
    "RouterConfigWriter",
    "apply_failed",
    "parse_spec",
]
from fleetroute_operator import (
    conditions,
    labels,
    ownership,
    pool_status,
    router_config,
    workloads,
)
from fleetroute_operator.capacity import NodeFacts, PoolCapacity, pool_capacity
from fleetroute_operator.kube import ApiError, Kube, selector_string
from fleetroute_operator.router_stats import PolicyLearned

Body = Mapping[str, Any]


class InvalidSpec(ValueError):
    """A spec that will never work as written."""


Spec = TypeVar("Spec", GPUPoolSpec, ModelPoolSpec, RoutingPolicySpec)


def parse_spec(model: type[Spec], body: Body) -> Spec:
    """The typed spec of an object, or InvalidSpec with every field error in one line."""
    try:
        return model.model_validate(body.get("spec") or {})
    except ValidationError as error:
        details = "; ".join(
            f"spec.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors()
        )
        raise InvalidSpec(details) from error


def invalid_spec(body: Body, message: str) -> dict[str, Any]:
    """Status of an object whose spec the API server took but the operator cannot use: the
    previous status with Ready=False, reason InvalidSpec, naming the fields."""
    generation = body.get("metadata", {}).get("generation")
    previous = body.get("status") or {}
    verdict = conditions.condition(conditions.READY, False, "InvalidSpec", message, generation)
    return {
        **previous,
        "observedGeneration": generation,
        "conditions": conditions.merge(previous.get("conditions") or [], [verdict]),
    }


def gpupool_status(
    body: Body, nodes: Iterable[NodeFacts], held: Mapping[str, Iterable[Mapping[str, int]]]
) -> dict[str, Any]:
    """The GPUPool status from the nodes it selects and the pods bound to them."""
    spec = parse_spec(GPUPoolSpec, body)
    found = pool_capacity(spec, nodes, held)
    generation = body.get("metadata", {}).get("generation")
    if found.nodes:
        ready = conditions.condition(
            conditions.READY,
            True,
            "NodesFound",
            f"{found.nodes} nodes with {found.capacity} GPUs of {spec.product}",
            generation,
        )
    else:
        ready = conditions.condition(
            conditions.READY,
            False,
            "NoNodes",
            f"no ready, schedulable node has the labels {spec.selector()}",
            generation,
        )
    previous = body.get("status") or {}
    return {
        "observedGeneration": generation,
        "nodes": found.nodes,
        "capacity": found.capacity,
        "allocated": found.allocated,
        "free": found.free,
        "conditions": conditions.merge(previous.get("conditions") or [], [ready]),
    }


@dataclass(frozen=True)
class GpuPoolView:
    """A GPUPool's spec and capacity as the ModelPool reconcile needs them."""

    name: str
    spec: GPUPoolSpec
    capacity: PoolCapacity


def modelpool(kube: Kube, body: Body, gpu_pool: GpuPoolView | None) -> dict[str, Any]:
    """Apply a ModelPool's Deployment and Service (or find its adopted servers); return its status.

    Raises InvalidSpec for specs that cannot work; a missing GPUPool is a status, not an error.
    """
    spec = parse_spec(ModelPoolSpec, body)
    meta = body["metadata"]
    if spec.adopt is not None:
        return _adopted_status(kube, body, spec)
    assert spec.deploy is not None  # noqa: S101 (the schema requires one of the two)
    if gpu_pool is None:
        verdict = pool_status.Verdict(
            False, "GPUPoolNotFound", f"GPUPool {spec.deploy.gpu_pool} does not exist"
        )
        return _status(body, verdict, spec.deploy.replicas, 0, [], None)
    manifests = [
        workloads.build_deployment(body, spec, gpu_pool.name, gpu_pool.spec),
        workloads.build_service(body, spec),
    ]
    existing = [
        kube.get(m["apiVersion"], m["kind"], meta["name"], meta["namespace"]) for m in manifests
    ]
    refused = [c for found in existing if (c := ownership.conflict(found, body))]
    if refused:
        verdict = pool_status.Verdict(False, "NameConflict", "; ".join(refused))
        return _status(body, verdict, spec.deploy.replicas, 0, [], gpu_pool.spec.product)
    deployment, _ = [
        _apply_guarded(kube, manifest, found)
        for manifest, found in zip(manifests, existing, strict=True)
    ]
    pods = kube.list("v1", "Pod", meta["namespace"], f"{labels.MODELPOOL}={meta['name']}")
    ready = int((deployment.get("status") or {}).get("readyReplicas") or 0)
    verdict = pool_status.deployed_verdict(
        spec, gpu_pool.name, gpu_pool.spec, gpu_pool.capacity, pods, ready
    )
    endpoints = pool_status.pod_endpoints(pods, spec.deploy.port)
    return _status(body, verdict, spec.deploy.replicas, ready, endpoints, gpu_pool.spec.product)


def _apply_guarded(kube: Kube, manifest: dict[str, Any], existing: Body | None) -> dict[str, Any]:
    """Apply with the uid of the object checked above, when there was one: the API server then
    refuses the apply (422, metadata.uid is immutable) if that object was replaced in between by
    another, and the reconcile is retried, so the next check sees the newcomer."""
    uid = ((existing or {}).get("metadata") or {}).get("uid")
    if not uid:
        return kube.apply(manifest)
    try:
        return kube.apply({**manifest, "metadata": {**manifest["metadata"], "uid": uid}})
    except ApiError as error:
        if error.status == 422 and "metadata.uid" in str(error):
            raise ApiError(
                f"{manifest['kind']} {manifest['metadata']['name']} was replaced since it was "
                f"checked: {error}",
                status=409,
                retriable=True,
            ) from error
        raise


def apply_failed(body: Body, message: str) -> dict[str, Any]:
    """Status of a pool whose workloads the API server refused (not worth retrying as is)."""
    previous = body.get("status") or {}
    verdict = pool_status.Verdict(False, "ApplyFailed", message)
    return _status(
        body,
        verdict,
        int(previous.get("replicas") or 0),
        int(previous.get("readyReplicas") or 0),
        list(previous.get("endpoints") or []),
        previous.get("gpuProduct"),
    )


def _adopted_status(kube: Kube, body: Body, spec: ModelPoolSpec) -> dict[str, Any]:
    adopt = spec.adopt
    assert adopt is not None  # noqa: S101
    if adopt.endpoints is not None:
        endpoints = [{"address": a, "ready": True} for a in adopt.endpoints]
    else:
        assert adopt.selector is not None  # noqa: S101 (CEL: selector or endpoints)
        assert adopt.port is not None  # noqa: S101 (CEL: a selector needs a port)
        selector = adopt.selector.model_dump(by_alias=True, exclude_none=True)
        pods = kube.list(
            "v1",
            "Pod",
            body["metadata"]["namespace"],
            selector_string(selector.get("matchLabels"), selector.get("matchExpressions")),
        )
        endpoints = pool_status.pod_endpoints(pods, adopt.port)
    ready = sum(1 for e in endpoints if e["ready"])
    verdict = pool_status.adopted_verdict(endpoints)
    return _status(body, verdict, len(endpoints), ready, endpoints, adopt.gpu_product)


def _status(
    body: Body,
    verdict: pool_status.Verdict,
    replicas: int,
    ready: int,
    endpoints: list[dict[str, Any]],
    product: str | None,
) -> dict[str, Any]:
    return pool_status.status_patch(
        body.get("status") or {},
        body["metadata"].get("generation"),
        verdict,
        replicas=replicas,
        ready_replicas=ready,
        endpoints=endpoints,
        gpu_product=product,
    )


def routingpolicy_status(
    body: Body,
    model_pools: Mapping[tuple[str, str], Body],
    learned: PolicyLearned | None = None,
    replicas: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """RoutingPolicy status: candidates that exist and are Ready, what the router learned, and
    whether it has seen what answers are worth (QualityObserved, when quality is weighed);
    with `replicas` (learning sharing), each router replica's last publish and a
    ReplicasPublishing condition that is False while one has gone silent."""
    spec = parse_spec(RoutingPolicySpec, body)
    namespace = body["metadata"]["namespace"]
    missing, prefill, ready = [], [], 0
    for candidate in spec.candidates:
        pool = model_pools.get((namespace, candidate.model_pool))
        if pool is None:
            missing.append(candidate.model_pool)
            continue
        if (pool.get("spec") or {}).get("role") == "prefill":
            prefill.append(candidate.model_pool)
            continue
        found = conditions.find(
            (pool.get("status") or {}).get("conditions") or [], conditions.READY
        )
        ready += bool(found and found.get("status") == "True")
    generation = body["metadata"].get("generation")
    if missing:
        verdict = conditions.condition(
            conditions.READY,
            False,
            "CandidatesMissing",
            f"ModelPools not found in {namespace}: {', '.join(missing)}",
            generation,
        )
    elif prefill:
        verdict = conditions.condition(
            conditions.READY,
            False,
            "PrefillCandidate",
            f"name the decode pool of a prefill/decode pair, not {', '.join(prefill)}",
            generation,
        )
    elif ready == 0:
        verdict = conditions.condition(
            conditions.READY,
            False,
            "NoCandidateReady",
            "no candidate ModelPool is Ready",
            generation,
        )
    else:
        verdict = conditions.condition(
            conditions.READY,
            True,
            "CandidatesReady",
            f"{ready}/{len(spec.candidates)} candidates ready",
            generation,
        )
    previous = body.get("status") or {}
    prefix = f"{namespace}/"
    arms = [
        {
            "modelPool": arm.pool.removeprefix(prefix),
            "share": f"{arm.share:.2f}",
            "meanReward": "-" if arm.mean_reward is None else f"{arm.mean_reward:.3f}",
            **({} if arm.decisions is None else {"decisions": arm.decisions}),
        }
        for arm in (learned.arms if learned is not None else ())
    ]
    learned_status = {"arms": arms, "topArm": arms[0]["modelPool"]} if arms else {}
    kept = [c for c in previous.get("conditions") or [] if c.get("type") != QUALITY_OBSERVED]
    updates = [verdict]
    if spec.objective.quality > 0:
        updates.append(_quality_observed(spec.objective.quality, learned, generation))
    if replicas is not None:
        learned_status["replicas"] = replicas
        updates.append(_replicas_publishing(replicas, generation))
    return {
        **{k: v for k, v in previous.items() if k in ("arms", "topArm")},
        **learned_status,
        "observedGeneration": generation,
        "readyCandidates": ready,
        "conditions": conditions.merge(
            (previous.get("conditions") or []) if spec.objective.quality > 0 else kept, updates
        ),
    }


QUALITY_OBSERVED = "QualityObserved"
REPLICAS_PUBLISHING = "ReplicasPublishing"


def _replicas_publishing(replicas: list[dict[str, Any]], generation: int | None) -> dict[str, Any]:
    stale = [r["name"] for r in replicas if r["stale"]]
    if stale:
        return conditions.condition(
            REPLICAS_PUBLISHING,
            False,
            "StaleReplica",
            f"no recent learning publish from {', '.join(stale)}: its learning is merged as of "
            "its last publish (is the API server reachable from it?)",
            generation,
        )
    return conditions.condition(
        REPLICAS_PUBLISHING,
        True,
        "Publishing" if replicas else "NoReplicas",
        f"{len(replicas)} router replicas share their learning",
        generation,
    )


def _quality_observed(
    weight: float, learned: PolicyLearned | None, generation: int | None
) -> dict[str, Any]:
    if learned is None:
        return conditions.condition(
            QUALITY_OBSERVED,
            False,
            "RouterStatsUnavailable",
            "the router's learning statistics are not available (is --router-address set?)",
            generation,
        ) | {"status": "Unknown"}
    if learned.quality_observations <= 0:
        return conditions.condition(
            QUALITY_OBSERVED,
            False,
            "NoQualityFeedback",
            f"quality weighs {weight:g} but the router has neither quality feedback nor a "
            "prior: POST /v1/feedback (or SubmitFeedback), or load one with --learning-prior",
            generation,
        )
    return conditions.condition(
        QUALITY_OBSERVED,
        True,
        "QualityFeedback",
        f"{learned.quality_observations:.0f} quality scores learned (feedback and prior)",
        generation,
    )


class RouterConfigWriter:
    """Renders the router config; applies its ConfigMap on change, and once per resync period."""

    def __init__(self, kube: Kube, namespace: str, name: str, resync_seconds: float = 60.0) -> None:
        self._kube, self._namespace, self._name = kube, namespace, name
        self._resync = resync_seconds
        self._lock = threading.Lock()
        self._written: str | None = None
        self._written_at = 0.0

    def sync(
        self, model_pools: Iterable[Body], policies: Iterable[Body], gpu_pools: Iterable[Body]
    ) -> bool:
        """Render and apply; True when the ConfigMap was written."""
        with self._lock:
            specs = {}
            for body in gpu_pools:
                try:
                    specs[body["metadata"]["name"]] = parse_spec(GPUPoolSpec, body)
                except InvalidSpec:
                    continue
            config = router_config.build_router_config(model_pools, policies, specs)
            fresh = time.monotonic() - self._written_at < self._resync
            if config.revision == self._written and fresh:
                return False
            self._kube.apply(router_config.build_configmap(self._name, self._namespace, config))
            self._written, self._written_at = config.revision, time.monotonic()
            return True
