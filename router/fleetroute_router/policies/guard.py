"""SLO guard: set aside pools whose predicted TTFT/TPOT would break the policy's SLO.

Each pool's unloaded latency is learned from feedback (an exponentially weighted mean):
    ttft_base = observed TTFT / (1 + q)     tpot_base = observed TPOT
where q is the requests queued per ready endpoint when the decision was made. A prediction
for the current queue q' is then
    TTFT ≈ ttft_base · (1 + q')   (requests ahead of it prefill first)
    TPOT ≈ tpot_base · (1 + TPOT_LOAD_SLOPE · q')   (decode is batched: mild growth)
A pool with no latency observed yet is never set aside, and when every pool would be set aside
the guard keeps them all (serving late beats not serving).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from fleetroute.v1alpha1 import config_pb2
from fleetroute_router.policies.base import Arm

SMOOTHING = 0.1
TPOT_LOAD_SLOPE = 0.1


@dataclass
class _PoolLatency:
    ttft_base: float | None = None
    tpot_base: float | None = None


def _ewma(current: float | None, observed: float) -> float:
    return observed if current is None else current + SMOOTHING * (observed - current)


class SloGuard:
    """Learns per-pool latency and filters arms whose predicted latency breaks the SLO."""

    def __init__(self) -> None:
        self._pools: dict[str, _PoolLatency] = {}

    def observe(self, pool: str, queue: float, ttft_s: float | None, tpot_s: float | None) -> None:
        """Record a request's measured latencies and the queue per endpoint it met."""
        figures = self._pools.setdefault(pool, _PoolLatency())
        if ttft_s is not None:
            figures.ttft_base = _ewma(figures.ttft_base, ttft_s / (1.0 + max(queue, 0.0)))
        if tpot_s is not None:
            figures.tpot_base = _ewma(figures.tpot_base, tpot_s)

    def predict(self, arm: Arm) -> tuple[float | None, float | None]:
        """Predicted (TTFT, TPOT) in seconds for a new request on this arm now (None: unknown)."""
        figures = self._pools.get(arm.pool)
        if figures is None:
            return None, None
        queue = arm.in_flight / max(arm.ready_endpoints, 1)
        ttft = None if figures.ttft_base is None else figures.ttft_base * (1.0 + queue)
        tpot = (
            None
            if figures.tpot_base is None
            else figures.tpot_base * (1.0 + TPOT_LOAD_SLOPE * queue)
        )
        return ttft, tpot

    def admissible(self, arms: Sequence[Arm], slo: config_pb2.Slo) -> Sequence[Arm]:
        """The arms predicted to meet the SLO, or all of them when none would."""
        ttft_slo = slo.ttft.ToTimedelta().total_seconds() if slo.HasField("ttft") else 0.0
        tpot_slo = slo.tpot.ToTimedelta().total_seconds() if slo.HasField("tpot") else 0.0
        if (ttft_slo <= 0 and tpot_slo <= 0) or not self._pools:
            return arms
        kept = []
        for arm in arms:
            ttft, tpot = self.predict(arm)
            late = (ttft_slo > 0 and ttft is not None and ttft > ttft_slo) or (
                tpot_slo > 0 and tpot is not None and tpot > tpot_slo
            )
            if not late:
                kept.append(arm)
        return kept or arms
