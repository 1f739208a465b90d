"""GPU power from a node's DCGM exporter and grid carbon intensity from a metric."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from fleetroute.v1alpha1 import config_pb2
from fleetroute_router import energy, metric_sources
from fleetroute_router.dataplane import DataPlane
from fleetroute_router.features import RequestInfo
from fleetroute_router.fleet import Fleet

from .dcgm_exporter import POD_WATTS, FakeExporter, exposition

ADDRESS = "127.0.0.1:9"  # nothing listens: only the exporter is read


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def exporter() -> AsyncIterator[FakeExporter]:
    server = FakeExporter(carbon_intensity=412.0)
    await server.start()
    yield server
    await server.stop()


def _fleet(url: str, *, pod: str = "llama-70b-decode-0", carbon: str = "") -> Fleet:
    config = config_pb2.RouterConfig()
    pool = config.pools.add(name="llm/llama-70b", model="m-70B", gpus_per_replica=2)
    pool.gpu.idle_watts, pool.gpu.max_watts, pool.gpu.carbon_intensity = 70, 700, 350
    if carbon:
        pool.gpu.carbon_intensity_from.url = carbon
        pool.gpu.carbon_intensity_from.metric = "grid_carbon_intensity_grams_per_kwh"
        pool.gpu.carbon_intensity_from.labels["zone"] = "DE"
    endpoint = pool.endpoints.add(address=ADDRESS, ready=True)
    endpoint.power.url = url
    endpoint.power.labels.update({"pod": pod, "namespace": "llm"})
    return Fleet.from_config(config)


def test_the_series_of_the_pods_gpus_are_summed() -> None:
    samples = metric_sources.parse(exposition())
    labels = {"pod": "llama-70b-decode-0", "namespace": "llm"}
    assert metric_sources.read(samples, "DCGM_FI_DEV_POWER_USAGE", labels) == POD_WATTS
    assert metric_sources.read(samples, "DCGM_FI_DEV_POWER_USAGE", {"pod": "gone"}) is None
    # no labels: the whole node
    assert metric_sources.read(samples, "DCGM_FI_DEV_POWER_USAGE", {}) == pytest.approx(772.75)


def test_only_the_asked_metrics_are_parsed() -> None:
    text = exposition() + 'DCGM_FI_DEV_POWER_USAGE_INSTANT{gpu="0"} 9999\n'
    samples = metric_sources.parse(text, {"DCGM_FI_DEV_POWER_USAGE"})
    assert {name for name, _, _ in samples} == {"DCGM_FI_DEV_POWER_USAGE"}
    assert metric_sources.read(samples, "DCGM_FI_DEV_POWER_USAGE", {}) == pytest.approx(772.75)
    assert metric_sources.parse(text, set()) == []


async def test_power_comes_from_the_exporter_and_goes_stale(exporter: FakeExporter) -> None:
    clock = Clock()
    sources = metric_sources.MetricSources(power_interval_s=3600, clock=clock)
    try:
        sources.set_fleet(_fleet(exporter.url))
        assert await sources.fetch(exporter.url)
        assert sources.watts(ADDRESS) == POD_WATTS
        assert sources.watts("127.0.0.1:10") is None  # an endpoint without a source
        clock.now += metric_sources.POWER_STALE_S + 1
        assert sources.watts(ADDRESS) is None
    finally:
        await sources.close()


async def test_carbon_intensity_from_a_metric_falls_back_to_the_config(
    exporter: FakeExporter,
) -> None:
    clock = Clock()
    sources = metric_sources.MetricSources(carbon_interval_s=3600, clock=clock)
    fleet = _fleet(exporter.url, carbon=exporter.url)
    pool = fleet.pools["llm/llama-70b"]
    try:
        sources.set_fleet(fleet)
        assert sources.carbon_intensity(pool) == (350, "config")  # not read yet
        assert await sources.fetch(exporter.url)
        assert sources.carbon_intensity(pool) == (412.0, "metric")
        exporter.body = "not an exposition {"
        assert not await sources.fetch(exporter.url)
        clock.now += metric_sources.CARBON_STALE_S + 1
        assert sources.carbon_intensity(pool) == (350, "config")
    finally:
        await sources.close()


async def test_a_requests_energy_is_measured_from_its_nodes_exporter(
    exporter: FakeExporter,
) -> None:
    dataplane = DataPlane(_fleet(exporter.url), scrape=False)
    try:
        dataplane.start()
        assert await dataplane.sources.fetch(exporter.url)
        flight = dataplane.route(RequestInfo(model="m-70B", prompt="hi"), "r1", "/v1/completions")
        assert flight.power.measured_watts == POD_WATTS
        result = dataplane.succeeded(flight, ttft_s=0.1, usage=None)
        assert result.source == "dcgm"
        # the request alone on the replica: all of the pod's watts for its duration
        assert result.joules > 0
        registry = dataplane.telemetry.registry
        watts = registry.get_sample_value(
            "fleetroute_router_endpoint_power_watts",
            {"pool": "llm/llama-70b", "endpoint": ADDRESS, "source": "dcgm_exporter"},
        )
        assert watts == POD_WATTS
        grams = registry.get_sample_value(
            "fleetroute_router_carbon_grams_total",
            {"policy": "", "model": "m-70B", "pool": "llm/llama-70b"},
        )
        assert grams == pytest.approx(energy.carbon_grams(result.joules, 350))
    finally:
        await dataplane.close()
