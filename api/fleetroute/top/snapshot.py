"""One reading of a router: what it learned (GetStats) and what it measured (/metrics)."""

from __future__ import annotations

import time
import urllib.request
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Final

from prometheus_client.parser import text_string_to_metric_families

from fleetroute.v1alpha1 import router_pb2, router_pb2_grpc

PREFIX: Final = "fleetroute_router_"
# Counter samples summed per (policy, pool): name in the exposition -> key in Snapshot.totals.
TOTALS: Final = {
    f"{PREFIX}energy_joules_total": "joules",
    f"{PREFIX}carbon_grams_total": "grams",
    f"{PREFIX}cost_dollars_total": "dollars",
}
MEASURED: Final = "measured_joules"  # energy whose source is dcgm
SERVED: Final = "served"  # requests with outcome success
FAILED: Final = "failed"  # requests with any other outcome

Arm = tuple[str, str]  # (policy, pool)


@dataclass(frozen=True)
class Snapshot:
    """GetStats' answer and per-(policy, pool) counter totals at monotonic time `at`."""

    at: float
    stats: router_pb2.RouterStats
    totals: Mapping[Arm, Mapping[str, float]] = field(default_factory=dict)


def totals(exposition: str) -> dict[Arm, dict[str, float]]:
    """Energy, carbon, cost and request counters of a router's /metrics, per (policy, pool).

    Energy and cost carry no policy label on older routers: they count under policy "".
    """
    found: dict[Arm, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            labels = sample.labels
            arm = (labels.get("policy", ""), labels.get("pool", ""))
            key = TOTALS.get(sample.name)
            if key is not None:
                found[arm][key] += sample.value
                if key == "joules" and labels.get("source") == "dcgm":
                    found[arm][MEASURED] += sample.value
            elif sample.name == f"{PREFIX}requests_total":
                found[arm][SERVED if labels.get("outcome") == "success" else FAILED] += sample.value
    return {arm: dict(values) for arm, values in found.items()}


def fetch_metrics(url: str, timeout_s: float) -> str:
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"metrics URL must be http(s), got {url!r}")
    with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310 (checked)
        text: str = response.read().decode()
        return text


def take(
    stub: router_pb2_grpc.RouterStub,
    metrics_url: str,
    *,
    policy: str = "",
    timeout_s: float = 5.0,
    clock: Callable[[], float] = time.monotonic,
    token: str | None = None,
) -> Snapshot:
    """Read the router now (the gRPC call, with `token` as its bearer token when given, and
    the scrape; an empty URL skips the scrape)."""
    metadata = (("authorization", f"Bearer {token}"),) if token else ()
    stats = stub.GetStats(
        router_pb2.StatsRequest(policy=policy), timeout=timeout_s, metadata=metadata
    )
    exposition = fetch_metrics(metrics_url, timeout_s) if metrics_url else ""
    return Snapshot(clock(), stats, totals(exposition))
