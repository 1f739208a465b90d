"""Gauges read at scrape time from what the router knows of its fleet: each endpoint's queue,
KV-cache use and GPU power, and each pool's grid carbon intensity."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from fleetroute.v1alpha1 import config_pb2
from fleetroute_router.endpoints.interfaces import EndpointMetrics
from fleetroute_router.fleet import Fleet
from fleetroute_router.telemetry.metrics import PREFIX

ENDPOINT = ["pool", "endpoint"]


def _families() -> dict[str, GaugeMetricFamily]:
    return {
        "waiting": GaugeMetricFamily(
            f"{PREFIX}_endpoint_waiting_requests",
            "Requests queued in the model server (its /metrics)",
            labels=ENDPOINT,
        ),
        "running": GaugeMetricFamily(
            f"{PREFIX}_endpoint_running_requests",
            "Requests the model server is running (its /metrics)",
            labels=ENDPOINT,
        ),
        "kv": GaugeMetricFamily(
            f"{PREFIX}_endpoint_kv_cache_usage_ratio",
            "KV-cache use of the model server in [0, 1] (its /metrics)",
            labels=ENDPOINT,
        ),
        "power": GaugeMetricFamily(
            f"{PREFIX}_endpoint_power_watts",
            "Watts the endpoint's GPUs draw (source: dcgm_exporter, the node's DCGM exporter; "
            "server, the server's own /metrics)",
            labels=[*ENDPOINT, "source"],
        ),
        "carbon": GaugeMetricFamily(
            f"{PREFIX}_grid_carbon_intensity",
            "gCO2e per kWh of the grid feeding a pool's GPUs (source: metric or config)",
            labels=["pool", "source"],
        ),
    }


@dataclass(eq=False)
class FleetGauges(Collector):
    """Collects the gauges from live lookups; unknown values are left out, not zero."""

    fleet: Fleet | None = None
    endpoint_metrics: Callable[[str], EndpointMetrics | None] | None = None
    exporter_watts: Callable[[str], float | None] | None = None
    carbon_intensity: Callable[[config_pb2.Pool], tuple[float, str]] | None = None

    def collect(self) -> Iterator[GaugeMetricFamily]:
        families = _families()
        fleet = self.fleet
        for pool in fleet.config.pools if fleet is not None else ():
            for endpoint in pool.endpoints:
                labels = [pool.name, endpoint.address]
                metrics = self.endpoint_metrics(endpoint.address) if self.endpoint_metrics else None
                if metrics is not None:
                    families["waiting"].add_metric(labels, metrics.waiting)
                    families["running"].add_metric(labels, metrics.running)
                    if metrics.kv_cache_usage is not None:
                        families["kv"].add_metric(labels, metrics.kv_cache_usage)
                watts = self.exporter_watts(endpoint.address) if self.exporter_watts else None
                if watts is not None:
                    families["power"].add_metric([*labels, "dcgm_exporter"], watts)
                elif metrics is not None and metrics.power_watts is not None:
                    families["power"].add_metric([*labels, "server"], metrics.power_watts)
            if self.carbon_intensity is not None:
                value, source = self.carbon_intensity(pool)
                if source != "none":
                    families["carbon"].add_metric([pool.name, source], value)
        yield from families.values()

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield from _families().values()
