"""Energy per request: DCGM power when scraped, else the pool's power figures."""

from __future__ import annotations

import pytest

from fleetroute.v1alpha1 import config_pb2
from fleetroute_router import energy
from fleetroute_router.endpoints.interfaces import EndpointMetrics

POOL = config_pb2.Pool(
    name="p",
    gpus_per_replica=2,
    gpu=config_pb2.GpuFigures(idle_watts=50, max_watts=350),
)


def test_measured_power_is_shared_among_running_requests() -> None:
    start = energy.sample(EndpointMetrics(running=4, power_watts=600), 0)
    end = energy.sample(EndpointMetrics(running=4, power_watts=800), 0)
    joules, source = energy.request_joules(POOL, 2.0, start, end)
    assert source == "dcgm"
    assert joules == pytest.approx(700 * 2.0 / 4)


def test_modelled_power_without_metrics() -> None:
    alone = energy.sample(None, in_flight=1)
    joules, source = energy.request_joules(POOL, 1.0, alone, alone)
    assert source == "model"
    # two GPUs at idle + (max - idle) * (0.5 + 0.5 / 32)
    assert joules == pytest.approx(2 * (50 + 300 * (0.5 + 0.5 / 32)))


def test_batching_lowers_the_energy_of_each_request() -> None:
    busy = energy.sample(None, in_flight=16)
    alone = energy.sample(None, in_flight=1)
    assert (
        energy.request_joules(POOL, 1.0, busy, busy)[0]
        < energy.request_joules(POOL, 1.0, alone, alone)[0]
    )
