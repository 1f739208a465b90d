"""What one outcome scores on each objective, in [0, 1], and the reward the weights make of it.

Each objective is scored only when it was measured (None otherwise) and learned on its own
(objectives.py); the reward of a request, for metrics and replies, is the weighted mean of the
objectives it measured, weights renormalised over those:

    reward = Σ_{o measured} w_o·score_o / Σ_{o measured} w_o

quality  a feedback score (POST /v1/feedback, SubmitFeedback): never part of an outcome, and
         never assumed. A failed request scores 0 on every objective.
latency  against the policy's SLOs: a streamed request scores each SLO set, 1 when met, else
         slo/observed, and takes the mean of TTFT and TPOT; a non-streamed one (no TTFT seen)
         scores its whole duration against the duration the SLOs allow its tokens,
         ttft_slo + tpot_slo·(tokens - 1). Only without any SLO: 1 / (1 + e2e seconds).
energy   1 - min(1, joules per output token / REFERENCE_JOULES_PER_TOKEN); joules as measured,
         else the energy module's model of the pool's GPUs for the request's share of the
         server's time.
cost     1 - min(1, dollars per 1k output tokens / REFERENCE_DOLLARS_PER_1K_TOKENS), from the
         pool's price per GPU-hour and the same share of time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from fleetroute.v1alpha1 import config_pb2
from fleetroute_router import energy
from fleetroute_router.objectives import OBJECTIVES, Weights

REFERENCE_JOULES_PER_TOKEN = 10.0
REFERENCE_DOLLARS_PER_1K_TOKENS = 0.05


@dataclass(frozen=True)
class Outcome:
    """What the data plane (or a gRPC client's Report) measured of a routed request."""

    success: bool
    ttft_s: float | None = None
    e2e_s: float | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    energy_joules: float | None = None

    @property
    def tpot_s(self) -> float | None:
        """Seconds per output token after the first."""
        if self.ttft_s is None or self.e2e_s is None or self.completion_tokens < 2:
            return None
        return max(self.e2e_s - self.ttft_s, 0.0) / (self.completion_tokens - 1)


@dataclass(frozen=True)
class Scores:
    """Each objective's score (None: not measured), with the joules and dollars behind them."""

    quality: float | None = None
    latency: float | None = None
    energy: float | None = None
    cost: float | None = None
    joules: float = 0.0
    dollars: float = 0.0

    def measured(self) -> dict[str, float]:
        """The scores that were measured, by objective name (what the policy learns)."""
        return {name: value for name in OBJECTIVES if (value := getattr(self, name)) is not None}

    def reward(self, weights: Weights) -> float | None:
        """The weighted mean of the measured scores (None when none has a weight above 0)."""
        values = np.array([getattr(self, name) for name in OBJECTIVES], dtype=float)
        known = ~np.isnan(values)
        total = float(weights[known].sum())
        if total <= 0:
            return None
        return float(weights[known] @ values[known]) / total


FAILED = Scores(0.0, 0.0, 0.0, 0.0)


def estimate_energy(pool: config_pb2.Pool, e2e_s: float, share: float) -> float:
    """Joules of a request nobody measured: the energy module's model of the pool's GPUs,
    with the request's share of its endpoint's concurrent requests."""
    running = energy.PowerSample(running=1.0 / min(max(share, 1e-6), 1.0))
    joules, _ = energy.request_joules(pool, e2e_s, running, running)
    return joules


def request_cost(pool: config_pb2.Pool, e2e_s: float, share: float) -> float:
    """Dollars spent on a request by the same share of GPU time."""
    gpus = max(pool.gpus_per_replica, 1)
    return gpus * pool.gpu.cost_per_gpu_hour * e2e_s / 3600.0 * min(max(share, 0.0), 1.0)


def _seconds(slo: config_pb2.Slo, field: Literal["ttft", "tpot"]) -> float:
    return getattr(slo, field).ToTimedelta().total_seconds() if slo.HasField(field) else 0.0


def latency_score(slo: config_pb2.Slo, outcome: Outcome) -> float | None:
    """The latency objective's score of an outcome (None when no latency was measured)."""
    ttft_slo, tpot_slo = _seconds(slo, "ttft"), _seconds(slo, "tpot")
    if outcome.ttft_s is not None:
        parts = [
            1.0 if observed <= target else target / observed
            for target, observed in ((ttft_slo, outcome.ttft_s), (tpot_slo, outcome.tpot_s))
            if target > 0 and observed is not None
        ]
        if parts:
            return sum(parts) / len(parts)
    if outcome.e2e_s is None:
        return None if outcome.ttft_s is None else 1.0 / (1.0 + outcome.ttft_s)
    if ttft_slo > 0 or tpot_slo > 0:
        allowed = ttft_slo + tpot_slo * max(outcome.completion_tokens - 1, 0)
        if allowed > 0:
            return 1.0 if outcome.e2e_s <= allowed else allowed / outcome.e2e_s
    return 1.0 / (1.0 + outcome.e2e_s)


def score(
    policy: config_pb2.Policy, pool: config_pb2.Pool, outcome: Outcome, share: float = 1.0
) -> Scores:
    """The latency, energy and cost scores of an outcome (quality comes only from feedback)."""
    if not outcome.success:
        return FAILED
    e2e = outcome.e2e_s
    joules = outcome.energy_joules
    if joules is None and e2e is not None:
        joules = estimate_energy(pool, e2e, share)
    dollars = request_cost(pool, e2e, share) if e2e is not None else None
    tokens = max(outcome.completion_tokens, 1)
    return Scores(
        latency=latency_score(policy.slo, outcome),
        energy=None
        if joules is None
        else 1.0 - min(1.0, joules / tokens / REFERENCE_JOULES_PER_TOKEN),
        cost=None
        if dollars is None
        else 1.0 - min(1.0, dollars / tokens * 1000.0 / REFERENCE_DOLLARS_PER_1K_TOKENS),
        joules=joules or 0.0,
        dollars=dollars or 0.0,
    )
