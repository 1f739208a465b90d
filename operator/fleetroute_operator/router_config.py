"""Pure rendering of the cluster's pools and policies into the router's RouterConfig ConfigMap."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from google.protobuf import duration_pb2
from pydantic import ValidationError

from fleetroute import routerconfig
from fleetroute.crds import GPUPoolSpec, ModelPoolSpec, RoutingPolicySpec
from fleetroute.crds.common import parse_duration
from fleetroute.crds.gpupool import DcgmExporter
from fleetroute.v1alpha1 import config_pb2
from fleetroute_operator import labels

log = logging.getLogger(__name__)
CONFIG_KEY = "config.json"
DCGM_POWER = "DCGM_FI_DEV_POWER_USAGE"

_ROLES = {
    "unified": config_pb2.ROLE_UNIFIED,
    "prefill": config_pb2.ROLE_PREFILL,
    "decode": config_pb2.ROLE_DECODE,
}
_ENGINES = {"vllm": config_pb2.ENGINE_VLLM, "sglang": config_pb2.ENGINE_SGLANG}
_FAILURE_MODES = {"FailClose": config_pb2.FAIL_CLOSE, "FailOpen": config_pb2.FAIL_OPEN}
Body = Mapping[str, Any]


def qualified(namespace: str, name: str) -> str:
    """namespace/name, the pool and policy names in a rendered config."""
    return f"{namespace}/{name}"


def _duration(text: str | None) -> duration_pb2.Duration | None:
    if text is None:
        return None
    value = duration_pb2.Duration()
    value.FromNanoseconds(round(parse_duration(text) * 1e9))
    return value


def gpu_figures(spec: GPUPoolSpec) -> config_pb2.GpuFigures:
    """Power and price figures of a GPUPool as the router needs them."""
    figures = config_pb2.GpuFigures(
        product=spec.product,
        idle_watts=spec.power.idle_watts,
        max_watts=spec.power.max_watts,
        cost_per_gpu_hour=float(Decimal(spec.cost_per_gpu_hour or "0")),
        carbon_intensity=spec.carbon_intensity or 0,
    )
    if spec.carbon_intensity_from is not None:
        source = spec.carbon_intensity_from
        figures.carbon_intensity_from.CopyFrom(
            config_pb2.MetricSource(url=source.url, metric=source.metric, labels=source.labels)
        )
    return figures


def render_pool(body: Body, gpu_pools: Mapping[str, GPUPoolSpec]) -> config_pb2.Pool:
    """A config Pool from a ModelPool object (its spec and the endpoints in its status)."""
    meta = body["metadata"]
    spec = ModelPoolSpec.model_validate(body["spec"])
    pool = config_pb2.Pool(
        name=qualified(meta["namespace"], meta["name"]),
        model=spec.model,
        engine=_ENGINES[spec.engine],
        role=_ROLES[spec.role],
        peer_pool=qualified(meta["namespace"], spec.peer_pool) if spec.peer_pool else "",
        scheme="https" if spec.scheme == "https" else "",
    )
    gpu_pool_name = (
        spec.deploy.gpu_pool if spec.deploy else spec.adopt.gpu_pool if spec.adopt else None
    )
    gpu_pool = gpu_pools.get(gpu_pool_name) if gpu_pool_name else None
    if gpu_pool is not None:
        pool.gpu.CopyFrom(gpu_figures(gpu_pool))
    elif spec.adopt and spec.adopt.gpu_product:
        pool.gpu.product = spec.adopt.gpu_product
    pool.gpus_per_replica = (
        spec.deploy.gpus_per_replica
        if spec.deploy
        else spec.adopt.gpus_per_replica
        if spec.adopt
        else 1
    )
    exporter = gpu_pool.dcgm_exporter if gpu_pool is not None else None
    for endpoint in (body.get("status") or {}).get("endpoints") or []:
        rendered = pool.endpoints.add(
            address=endpoint["address"], ready=bool(endpoint.get("ready"))
        )
        if exporter is not None and endpoint.get("nodeIP") and endpoint.get("pod"):
            rendered.power.CopyFrom(dcgm_source(exporter, endpoint, meta["namespace"]))
    return pool


def dcgm_source(
    exporter: DcgmExporter, endpoint: Mapping[str, Any], namespace: str
) -> config_pb2.MetricSource:
    """The node's DCGM exporter, read for the GPUs its Kubernetes attribution gives the pod."""
    host = endpoint["nodeIP"]
    host = f"[{host}]" if ":" in host else host
    return config_pb2.MetricSource(
        url=f"http://{host}:{exporter.port}{exporter.path}",
        metric=DCGM_POWER,
        labels={"pod": endpoint["pod"], "namespace": namespace},
    )


def render_policy(body: Body) -> config_pb2.Policy:
    """A config Policy from a RoutingPolicy object."""
    meta = body["metadata"]
    spec = RoutingPolicySpec.model_validate(body["spec"])
    policy = config_pb2.Policy(
        name=qualified(meta["namespace"], meta["name"]),
        model_alias=spec.model_alias,
        candidates=[qualified(meta["namespace"], c.model_pool) for c in spec.candidates],
        objective=config_pb2.Objective(
            quality=spec.objective.quality,
            latency=spec.objective.latency,
            energy=spec.objective.energy,
            cost=spec.objective.cost,
        ),
        algorithm=config_pb2.Algorithm(
            name=spec.algorithm.name,
            parameters={
                k: float(v)
                for k, v in (
                    spec.algorithm.parameters.model_dump(exclude_none=True).items()
                    if spec.algorithm.parameters
                    else ()
                )
            },
        ),
        min_uncached_prompt_tokens=spec.disaggregation.min_uncached_prompt_tokens,
        failure_mode=_FAILURE_MODES[spec.failure_mode],
    )
    if (window := _duration(spec.feedback_window)) is not None:
        policy.feedback_window.CopyFrom(window)
    if spec.slo:
        if (ttft := _duration(spec.slo.ttft)) is not None:
            policy.slo.ttft.CopyFrom(ttft)
        if (tpot := _duration(spec.slo.tpot)) is not None:
            policy.slo.tpot.CopyFrom(tpot)
    return policy


def build_router_config(
    model_pools: Iterable[Body], policies: Iterable[Body], gpu_pools: Mapping[str, GPUPoolSpec]
) -> config_pb2.RouterConfig:
    """The RouterConfig of a whole cluster, sorted by name.

    Objects that do not parse are skipped (their own status says why); policies drop candidates
    that do not exist, and a policy left with none is skipped.
    """
    config = config_pb2.RouterConfig()
    for body in sorted(model_pools, key=_key):
        try:
            config.pools.append(render_pool(body, gpu_pools))
        except (ValidationError, KeyError) as error:
            log.warning("skipping ModelPool %s in router config: %s", _key(body), error)
    known = {p.name: p for p in config.pools}
    for body in sorted(policies, key=_key):
        try:
            policy = render_policy(body)
        except (ValidationError, KeyError, ValueError) as error:
            log.warning("skipping RoutingPolicy %s in router config: %s", _key(body), error)
            continue
        kept = [
            c for c in policy.candidates if c in known and known[c].role != config_pb2.ROLE_PREFILL
        ]
        if not kept:
            log.warning("skipping RoutingPolicy %s: none of its candidates exist", _key(body))
            continue
        del policy.candidates[:]
        policy.candidates.extend(kept)
        config.policies.append(policy)
    _drop_broken_pairs(config)
    config.revision = routerconfig.revision(config)
    return config


def _drop_broken_pairs(config: config_pb2.RouterConfig) -> None:
    """A prefill/decode pool whose peer is missing serves alone as a unified pool."""
    names = {p.name for p in config.pools}
    for pool in config.pools:
        if pool.peer_pool and pool.peer_pool not in names:
            pool.peer_pool = ""
            pool.role = config_pb2.ROLE_UNIFIED


def _key(body: Body) -> str:
    meta = body.get("metadata") or {}
    return qualified(meta.get("namespace", ""), meta.get("name", ""))


def build_configmap(name: str, namespace: str, config: config_pb2.RouterConfig) -> dict[str, Any]:
    """The ConfigMap the router mounts, holding the config as JSON."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {
                "app.kubernetes.io/part-of": "fleetroute",
                labels.MANAGED_BY: labels.OPERATOR_NAME,
            },
            "annotations": {labels.ROUTER_CONFIG: config.revision},
        },
        "data": {CONFIG_KEY: routerconfig.dumps(config)},
    }
