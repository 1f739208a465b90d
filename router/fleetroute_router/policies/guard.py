"""SLO guard: set aside pools that queueing would make break the policy's SLO right now.

Each pool's unloaded latency is learned from outcomes (an exponentially weighted mean):
    ttft_base = observed TTFT / (1 + q)     tpot_base = observed TPOT
where q is the requests queued per ready endpoint when the decision was made. A non-streamed
request shows only its whole duration e2e over n output tokens; the guard then scales its
current figures (or, before any, the SLO's) by the ratio r of e2e to what they predict,
    r = e2e / (ttft_base·(1 + q) + tpot_base·(n - 1))     ttft_base·r, tpot_base·r observed,
so every request teaches it, streamed or not. A prediction for the current queue q' is
    TTFT ≈ ttft_base · (1 + q')   (requests ahead of it prefill first)
    TPOT ≈ tpot_base · (1 + TPOT_LOAD_SLOPE · q')   (decode is batched: mild growth)

A pool is set aside only when load is what breaks the SLO: its prediction misses while its
unloaded figure meets it. A pool slower than the SLO even when idle stays a candidate: the
latency objective already scores it (slo / observed), and the policy's weights decide whether
its answers are worth the wait. Estimates age: an observation after a quiet spell weighs more
(half of the old estimate is forgotten every HALF_LIFE_S), figures unseen for FORGET_AFTER_S are
dropped, and a set-aside pool is still let through once every PROBE_INTERVAL_S, so it is
measured again and never starved for good. When every pool would be set aside the guard keeps
them all (serving late beats not serving).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from fleetroute.v1alpha1 import config_pb2, learning_pb2
from fleetroute_router.policies.base import Arm

SMOOTHING = 0.1
TPOT_LOAD_SLOPE = 0.1
HALF_LIFE_S = 30.0
FORGET_AFTER_S = 600.0
PROBE_INTERVAL_S = 5.0
# What a pool is assumed to take before anything is known, to split a first non-streamed e2e.
FIRST_GUESS_TTFT_S = 0.2
FIRST_GUESS_TPOT_S = 0.02


@dataclass
class _PoolLatency:
    ttft_base: float | None = None
    tpot_base: float | None = None
    seen_at: float = 0.0
    probed_at: float = float("-inf")


def _slo_seconds(slo: config_pb2.Slo | None, field: Literal["ttft", "tpot"]) -> float:
    if slo is None or not slo.HasField(field):
        return 0.0
    return float(getattr(slo, field).ToTimedelta().total_seconds())


class SloGuard:
    """Learns per-pool latency and filters arms that load would make break the SLO."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._pools: dict[str, _PoolLatency] = {}

    def observe(
        self,
        pool: str,
        queue: float,
        ttft_s: float | None,
        tpot_s: float | None,
        *,
        e2e_s: float | None = None,
        tokens: int = 0,
        slo: config_pb2.Slo | None = None,
    ) -> None:
        """Record a request's measured latencies and the queue per endpoint it met; with only
        `e2e_s` (not streamed) split it as the module says."""
        now = self._clock()
        figures = self._pools.setdefault(pool, _PoolLatency(seen_at=now, probed_at=now))
        queue = max(queue, 0.0)
        if ttft_s is None and tpot_s is None and e2e_s is not None and tokens >= 1:
            ttft_guess = figures.ttft_base or _slo_seconds(slo, "ttft") or FIRST_GUESS_TTFT_S
            tpot_guess = figures.tpot_base or _slo_seconds(slo, "tpot") or FIRST_GUESS_TPOT_S
            predicted = ttft_guess * (1.0 + queue) + tpot_guess * (tokens - 1)
            ratio = e2e_s / predicted
            ttft_s, tpot_s = ttft_guess * (1.0 + queue) * ratio, tpot_guess * ratio
            if tokens < 2:
                tpot_s = None
        weight = max(SMOOTHING, 1.0 - 0.5 ** ((now - figures.seen_at) / HALF_LIFE_S))
        if ttft_s is not None:
            figures.ttft_base = _ewma(figures.ttft_base, ttft_s / (1.0 + queue), weight)
        if tpot_s is not None:
            figures.tpot_base = _ewma(figures.tpot_base, tpot_s, weight)
        figures.seen_at = now

    def predict(self, arm: Arm) -> tuple[float | None, float | None]:
        """Predicted (TTFT, TPOT) in seconds for a new request on this arm now (None: unknown)."""
        figures = self._figures(arm.pool)
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
        """The arms load does not make late (set-aside ones still probed now and then), or all
        of them when none would do."""
        ttft_slo, tpot_slo = _slo_seconds(slo, "ttft"), _slo_seconds(slo, "tpot")
        if (ttft_slo <= 0 and tpot_slo <= 0) or not self._pools:
            return arms
        now, kept = self._clock(), []
        for arm in arms:
            if not self._late(arm, ttft_slo, tpot_slo):
                kept.append(arm)
                continue
            figures = self._pools[arm.pool]
            if now - figures.probed_at >= PROBE_INTERVAL_S:
                figures.probed_at = now
                kept.append(arm)
        return kept or arms

    def _late(self, arm: Arm, ttft_slo: float, tpot_slo: float) -> bool:
        figures = self._figures(arm.pool)
        if figures is None:
            return False
        ttft, tpot = self.predict(arm)
        return (
            ttft_slo > 0
            and ttft is not None
            and ttft > ttft_slo
            and figures.ttft_base is not None
            and figures.ttft_base <= ttft_slo
        ) or (
            tpot_slo > 0
            and tpot is not None
            and tpot > tpot_slo
            and figures.tpot_base is not None
            and figures.tpot_base <= tpot_slo
        )

    def _figures(self, pool: str) -> _PoolLatency | None:
        figures = self._pools.get(pool)
        if figures is not None and self._clock() - figures.seen_at > FORGET_AFTER_S:
            del self._pools[pool]
            return None
        return figures

    def forget(self, keep: set[str]) -> None:
        """Drop the figures of pools not in `keep` (gone from the config)."""
        for pool in set(self._pools) - keep:
            del self._pools[pool]

    def state(self) -> dict[str, learning_pb2.PoolLatency]:
        """What the guard learned, for a snapshot."""
        found = {}
        for pool, figures in self._pools.items():
            message = learning_pb2.PoolLatency()
            if figures.ttft_base is not None:
                message.ttft_base_s = figures.ttft_base
            if figures.tpot_base is not None:
                message.tpot_base_s = figures.tpot_base
            found[pool] = message
        return found

    def restore(self, state: Mapping[str, learning_pb2.PoolLatency]) -> None:
        """Load a snapshot's figures (as if just observed)."""
        now = self._clock()
        for pool, message in state.items():
            self._pools[pool] = _PoolLatency(
                message.ttft_base_s if message.HasField("ttft_base_s") else None,
                message.tpot_base_s if message.HasField("tpot_base_s") else None,
                seen_at=now,
                probed_at=now,
            )


def _ewma(current: float | None, observed: float, weight: float) -> float:
    return observed if current is None else current + weight * (observed - current)
