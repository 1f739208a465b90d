"""Joules per request: from DCGM power metrics when an endpoint has them, else the pool's figures.

measured (DCGM_FI_DEV_POWER_USAGE summed over the replica's GPUs, mean of the samples at start
and end of the request):   J = P_measured * duration * share
modelled (GpuFigures of the pool):
    J = gpus * (idle + (max - idle) * u) * duration * share
    u = min(1, U_BUSY + (1 - U_BUSY) * r / R)
share = 1 / max(1, running requests on the endpoint) (the request's slice of the replica);
r = running requests (scraped, else this router's in-flight count), R = SATURATION_BATCH.
"""

from __future__ import annotations

from dataclasses import dataclass

from fleetroute.v1alpha1 import config_pb2
from fleetroute_router.endpoints.interfaces import EndpointMetrics

U_BUSY = 0.5
SATURATION_BATCH = 32.0


@dataclass(frozen=True)
class PowerSample:
    """What is known about an endpoint's power draw at one moment."""

    running: float
    measured_watts: float | None = None


def sample(metrics: EndpointMetrics | None, in_flight: int) -> PowerSample:
    if metrics is None:
        return PowerSample(running=float(in_flight))
    return PowerSample(running=metrics.running, measured_watts=metrics.power_watts)


def modelled_watts(pool: config_pb2.Pool, running: float) -> float:
    gpus = max(pool.gpus_per_replica, 1)
    idle, peak = pool.gpu.idle_watts, pool.gpu.max_watts
    utilisation = (
        0.0 if running <= 0 else min(1.0, U_BUSY + (1 - U_BUSY) * running / SATURATION_BATCH)
    )
    return gpus * (idle + (peak - idle) * utilisation)


def request_joules(
    pool: config_pb2.Pool, duration_s: float, start: PowerSample, end: PowerSample
) -> tuple[float, str]:
    """Energy of one request and its source ('dcgm' or 'model')."""
    running = max((start.running + end.running) / 2.0, 1.0)
    share = 1.0 / running
    measured = [s.measured_watts for s in (start, end) if s.measured_watts is not None]
    if measured:
        return sum(measured) / len(measured) * duration_s * share, "dcgm"
    return modelled_watts(pool, running) * duration_s * share, "model"


JOULES_PER_KWH = 3.6e6


def carbon_grams(joules: float, intensity_g_per_kwh: float) -> float:
    """gCO2e of `joules` drawn from a grid emitting `intensity_g_per_kwh` gCO2e per kWh."""
    return joules / JOULES_PER_KWH * intensity_g_per_kwh
