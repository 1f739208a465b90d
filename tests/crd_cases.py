"""Invalid variants of the example objects, each with the message the API server must give."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

Mutation = Callable[[dict[str, Any]], None]


def example(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    """A deep copy of one example object, by kind and name."""
    return copy.deepcopy(
        next(o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name)
    )


def _set(path: str, value: Any) -> Mutation:
    def mutate(obj: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = obj
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value

    return mutate


def _delete(path: str) -> Mutation:
    def mutate(obj: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = obj
        for key in parents:
            node = node[key]
        del node[last]

    return mutate


INVALID: list[tuple[str, str, str, Mutation, str]] = [
    # (kind, example name, case, mutation, expected message fragment)
    (
        "ModelPool",
        "llama-8b-l4",
        "deploy-and-adopt",
        _set("spec.adopt", {"endpoints": ["10.0.0.1:8000"]}),
        "exactly one of deploy or adopt",
    ),
    (
        "ModelPool",
        "llama-8b-l4",
        "non-root-as-uid-0",
        lambda o: o["spec"]["deploy"].update(runAsNonRoot=True, runAsUser=0),
        "runAsUser 0 is root",
    ),
    (
        "ModelPool",
        "llama-8b-l4",
        "neither-deploy-nor-adopt",
        _delete("spec.deploy"),
        "exactly one of deploy or adopt",
    ),
    (
        "ModelPool",
        "llama-70b-decode",
        "decode-without-peer",
        _delete("spec.peerPool"),
        "must name its peerPool",
    ),
    (
        "ModelPool",
        "llama-8b-l4",
        "unified-with-peer",
        _set("spec.peerPool", "other"),
        "peerPool is only for prefill or decode",
    ),
    ("ModelPool", "llama-8b-l4", "unknown-role", _set("spec.role", "encode"), "encode"),
    ("ModelPool", "llama-8b-l4", "unknown-engine", _set("spec.engine", "tgi"), "tgi"),
    ("ModelPool", "llama-8b-l4", "zero-gpus", _set("spec.deploy.gpusPerReplica", 0), "minimum"),
    ("ModelPool", "llama-8b-l4", "negative-replicas", _set("spec.deploy.replicas", -1), "minimum"),
    (
        "ModelPool",
        "llama-8b-l4",
        "bad-gpupool-name",
        _set("spec.deploy.gpuPool", "H100_pool"),
        "does not match",
    ),
    ("ModelPool", "llama-8b-l4", "no-image", _delete("spec.deploy.image"), "'image' is a required"),
    (
        "ModelPool",
        "mistral-7b-external",
        "adopt-endpoint-not-host-port",
        _set("spec.adopt.endpoints", ["just-a-host"]),
        "does not match",
    ),
    (
        "ModelPool",
        "mistral-7b-external",
        "adopt-selector-and-endpoints",
        _set("spec.adopt.selector", {"matchLabels": {"app": "vllm"}}),
        "exactly one of adopt.selector",
    ),
    (
        "ModelPool",
        "mistral-7b-external",
        "adopt-selector-without-port",
        lambda o: o["spec"].update(adopt={"selector": {"matchLabels": {"app": "vllm"}}}),
        "adopt.port is required",
    ),
    (
        "GPUPool",
        "h100",
        "max-below-idle",
        _set("spec.power.maxWatts", 50),
        "maxWatts must be at least",
    ),
    ("GPUPool", "h100", "no-power", _delete("spec.power"), "'power' is a required"),
    ("GPUPool", "h100", "cost-not-decimal", _set("spec.costPerGpuHour", "$2.50"), "does not match"),
    ("GPUPool", "h100", "bad-product-label", _set("spec.product", "NVIDIA H100"), "does not match"),
    (
        "GPUPool",
        "h100",
        "carbon-source-not-http",
        _set("spec.carbonIntensityFrom", {"url": "file:///etc/passwd", "metric": "grid"}),
        "does not match",
    ),
    (
        "GPUPool",
        "h100",
        "carbon-source-without-metric",
        _set("spec.carbonIntensityFrom", {"url": "http://grid:9100/metrics"}),
        "'metric' is a required",
    ),
    ("GPUPool", "h100", "dcgm-port-zero", _set("spec.dcgmExporter", {"port": 0}), "minimum"),
    (
        "RoutingPolicy",
        "chat",
        "all-weights-zero",
        _set("spec.objective", {"quality": 0, "latency": 0, "energy": 0, "cost": 0}),
        "objective weights must not all be zero",
    ),
    ("RoutingPolicy", "chat", "weight-above-one", _set("spec.objective.quality", 2), "maximum"),
    (
        "RoutingPolicy",
        "chat",
        "zero-ttft",
        _set("spec.slo.ttft", "0s"),
        "slo.ttft must be positive",
    ),
    (
        "RoutingPolicy",
        "chat",
        "ttft-not-a-duration",
        _set("spec.slo.ttft", "fast"),
        "does not match",
    ),
    ("RoutingPolicy", "chat", "negative-tpot", _set("spec.slo.tpot", "-5ms"), "does not match"),
    (  # found by fuzzing: past Go's 290 years, CEL could not convert it
        "RoutingPolicy",
        "chat",
        "ttft-overflowing-a-duration",
        _set("spec.slo.ttft", "10000000000000ms"),
        "does not match",
    ),
    (
        "RoutingPolicy",
        "chat",
        "feedback-window-over-a-day",
        _set("spec.feedbackWindow", "25h"),
        "feedbackWindow must be above 0 and at most 24h",
    ),
    ("RoutingPolicy", "chat", "unknown-algorithm", _set("spec.algorithm.name", "ucb9"), "ucb9"),
    (
        "RoutingPolicy",
        "chat",
        "epsilon-on-linucb",
        _set("spec.algorithm.parameters.epsilon", 0.1),
        "parameters.epsilon applies only to epsilon-greedy",
    ),
    (
        "RoutingPolicy",
        "chat",
        "epsilon-above-one",
        lambda o: o["spec"].update(
            algorithm={"name": "epsilon-greedy", "parameters": {"epsilon": 1.5}}
        ),
        "maximum",
    ),
    (
        "RoutingPolicy",
        "chat",
        "discount-zero",
        _set("spec.algorithm.parameters.discount", 0),
        "minimum",
    ),
    ("RoutingPolicy", "chat", "no-candidates", _set("spec.candidates", []), "should be non-empty"),
    (
        "RoutingPolicy",
        "chat",
        "unknown-failure-mode",
        _set("spec.failureMode", "FailSoft"),
        "FailSoft",
    ),
]
