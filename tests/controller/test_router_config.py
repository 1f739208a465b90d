"""The RouterConfig the operator renders from the cluster, and when it writes the ConfigMap."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fleetroute import routerconfig
from fleetroute.crds import GPUPoolSpec
from fleetroute.v1alpha1 import config_pb2
from fleetroute_operator import reconcile, router_config
from tests.controller.fakes import FakeKube


def _split(
    objects: list[dict[str, Any]],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, GPUPoolSpec]]:
    pools = [o for o in objects if o["kind"] == "ModelPool"]
    policies = [o for o in objects if o["kind"] == "RoutingPolicy"]
    gpus = {
        o["metadata"]["name"]: GPUPoolSpec.model_validate(o["spec"])
        for o in objects
        if o["kind"] == "GPUPool"
    }
    return pools, policies, gpus


def test_examples_render_to_the_embedded_fleet(
    example_objects: list[dict[str, Any]], repo_root: Path
) -> None:
    pools, policies, gpus = _split(example_objects)
    rendered = router_config.build_router_config(pools, policies, gpus)
    embedded = routerconfig.load(repo_root / "router/fleetroute_router/defaults/example-fleet.yaml")
    # The embedded fleet is the examples with endpoints filled in (the operator takes endpoints
    # from each ModelPool's status): everything else is the same.
    for pool in [*embedded.pools, *rendered.pools]:
        del pool.endpoints[:]
    assert {p.name: p for p in rendered.pools} == {p.name: p for p in embedded.pools}
    assert list(rendered.policies) == list(embedded.policies)


def test_rendered_config_passes_the_routers_checks(example_objects: list[dict[str, Any]]) -> None:
    pools, policies, gpus = _split(example_objects)
    config = router_config.build_router_config(pools, policies, gpus)
    routerconfig.check(config)
    assert config.revision == routerconfig.revision(config)


def test_endpoints_come_from_modelpool_status(example_objects: list[dict[str, Any]]) -> None:
    pools, policies, gpus = _split(example_objects)
    l4 = next(p for p in pools if p["metadata"]["name"] == "llama-8b-l4")
    l4 = {**l4, "status": {"endpoints": [{"address": "10.0.0.7:8000", "ready": True}]}}
    config = router_config.build_router_config([l4], policies, gpus)
    assert [(e.address, e.ready) for e in config.pools[0].endpoints] == [("10.0.0.7:8000", True)]
    assert config.pools[0].gpu.max_watts == 72
    assert config.pools[0].gpu.cost_per_gpu_hour == 0.7


def test_an_https_modelpool_renders_an_https_pool(example_objects: list[dict[str, Any]]) -> None:
    pools, policies, gpus = _split(example_objects)
    l4 = next(p for p in pools if p["metadata"]["name"] == "llama-8b-l4")
    secure = {**l4, "spec": {**l4["spec"], "scheme": "https"}}
    assert router_config.build_router_config([secure], policies, gpus).pools[0].scheme == "https"
    assert router_config.build_router_config([l4], policies, gpus).pools[0].scheme == ""


def test_a_gpupool_with_a_dcgm_exporter_gives_each_pod_its_nodes_power_source(
    example_objects: list[dict[str, Any]],
) -> None:
    pools, _, gpus = _split(example_objects)
    gpus["l4"] = gpus["l4"].model_copy(
        update={
            "dcgm_exporter": GPUPoolSpec.model_validate(
                {**example_l4(example_objects), "dcgmExporter": {"port": 9500}}
            ).dcgm_exporter,
            "carbon_intensity_from": GPUPoolSpec.model_validate(
                {
                    **example_l4(example_objects),
                    "carbonIntensityFrom": {
                        "url": "http://carbon.monitoring:9100/metrics",
                        "metric": "grid_carbon_intensity_grams_per_kwh",
                        "labels": {"zone": "DE"},
                    },
                }
            ).carbon_intensity_from,
        }
    )
    l4 = next(p for p in pools if p["metadata"]["name"] == "llama-8b-l4")
    endpoints = [
        {"address": "10.0.0.7:8000", "ready": True, "pod": "l4-a", "nodeIP": "192.0.2.7"},
        {"address": "10.0.0.8:8000", "ready": True},  # node not known yet: no source
    ]
    config = router_config.build_router_config(
        [{**l4, "status": {"endpoints": endpoints}}], [], gpus
    )
    first, second = config.pools[0].endpoints
    assert first.power == config_pb2.MetricSource(
        url="http://192.0.2.7:9500/metrics",
        metric="DCGM_FI_DEV_POWER_USAGE",
        labels={"pod": "l4-a", "namespace": "llm"},
    )
    assert not second.HasField("power")
    carbon = config.pools[0].gpu.carbon_intensity_from
    assert (carbon.url, carbon.metric, dict(carbon.labels)) == (
        "http://carbon.monitoring:9100/metrics",
        "grid_carbon_intensity_grams_per_kwh",
        {"zone": "DE"},
    )
    assert config.pools[0].gpu.carbon_intensity == 120


def example_l4(objects: list[dict[str, Any]]) -> dict[str, Any]:
    spec: dict[str, Any] = next(
        o["spec"] for o in objects if o["kind"] == "GPUPool" and o["metadata"]["name"] == "l4"
    )
    return spec


def test_missing_pools_drop_out_of_policies_and_pairs(
    example_objects: list[dict[str, Any]],
) -> None:
    pools, policies, gpus = _split(example_objects)
    without_prefill = [
        p for p in pools if p["metadata"]["name"] not in ("llama-70b-prefill", "llama-8b-l4")
    ]
    config = router_config.build_router_config(without_prefill, policies, gpus)
    assert "llm/llama-8b-l4" not in config.policies[0].candidates
    decode = next(p for p in config.pools if p.name == "llm/llama-70b-decode")
    assert (decode.role, decode.peer_pool) == (config_pb2.ROLE_UNIFIED, "")
    routerconfig.check(config)


def test_unparseable_objects_are_skipped(example_objects: list[dict[str, Any]]) -> None:
    pools, policies, gpus = _split(example_objects)
    broken = [{"metadata": {"name": "bad", "namespace": "llm"}, "spec": {"model": 3}}, *pools]
    config = router_config.build_router_config(broken, policies, gpus)
    assert "llm/bad" not in {p.name for p in config.pools}
    assert len(config.pools) == len(pools)


def test_writer_applies_only_when_the_config_changes(example_objects: list[dict[str, Any]]) -> None:
    pools, policies, _ = _split(example_objects)
    gpu_bodies = [o for o in example_objects if o["kind"] == "GPUPool"]
    kube = FakeKube()
    writer = reconcile.RouterConfigWriter(kube, "fleetroute-system", "fleetroute-router-config")
    assert writer.sync(pools, policies, gpu_bodies)
    assert not writer.sync(pools, policies, gpu_bodies)
    configmap = kube.applied[-1]
    assert configmap["metadata"]["namespace"] == "fleetroute-system"
    loaded = routerconfig.loads(configmap["data"][router_config.CONFIG_KEY])
    assert len(loaded.pools) == 5
    changed = [
        *pools[:-1],
        {**pools[-1], "status": {"endpoints": [{"address": "1.2.3.4:80", "ready": True}]}},
    ]
    assert writer.sync(changed, policies, gpu_bodies)
    assert len(kube.applied) == 2


def test_writer_resyncs_after_its_period(example_objects: list[dict[str, Any]]) -> None:
    pools, policies, _ = _split(example_objects)
    kube = FakeKube()
    writer = reconcile.RouterConfigWriter(kube, "ns", "cm", resync_seconds=0.0)
    assert writer.sync(pools, policies, [])
    assert writer.sync(pools, policies, [])
