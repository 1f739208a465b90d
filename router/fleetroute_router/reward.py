"""The reward of one outcome under a policy's objective: a weighted mean of scores in [0, 1].

    reward = (w_q·quality + w_l·latency + w_e·energy + w_c·cost) / (w_q + w_l + w_e + w_c)

quality  explicit score from Report when given (a grader's, a user's, or a task-specific check
         the client ran), else 1 for success; a failed request earns 0 whatever the weights.
latency  for each SLO set: 1 when met, else slo/observed; mean of TTFT and TPOT; without SLOs
         1 / (1 + e2e seconds).
energy   1 - min(1, joules per output token / REFERENCE_JOULES_PER_TOKEN); joules measured
         when Report carries them, else the energy module's model of the pool's GPUs for the
         request's share of the server's time.
cost     1 - min(1, dollars per 1k output tokens / REFERENCE_DOLLARS_PER_1K_TOKENS), from the
         pool's price per GPU-hour and the same share of time.
partial_score is for feedback that never arrived: quality is unknown, so only the components
that were measured (latency from TTFT/e2e, energy and cost from e2e) enter, with their weights
renormalised; None when nothing was measured.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from fleetroute.v1alpha1 import config_pb2
from fleetroute_router import energy

REFERENCE_JOULES_PER_TOKEN = 10.0
REFERENCE_DOLLARS_PER_1K_TOKENS = 0.05


@dataclass(frozen=True)
class Outcome:
    """What happened to a routed request."""

    success: bool
    ttft_s: float | None = None
    e2e_s: float | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    energy_joules: float | None = None
    quality: float | None = None

    @property
    def tpot_s(self) -> float | None:
        """Seconds per output token after the first."""
        if self.ttft_s is None or self.e2e_s is None or self.completion_tokens < 2:
            return None
        return max(self.e2e_s - self.ttft_s, 0.0) / (self.completion_tokens - 1)


@dataclass(frozen=True)
class Scores:
    """The four normalised scores and the weighted reward."""

    quality: float
    latency: float
    energy: float
    cost: float
    reward: float


def estimate_energy(pool: config_pb2.Pool, e2e_s: float, share: float) -> float:
    """Joules of a request nobody measured (feedback without energy): the energy module's model
    of the pool's GPUs, with the request's share of its endpoint's concurrent requests."""
    running = energy.PowerSample(running=1.0 / min(max(share, 1e-6), 1.0))
    joules, _ = energy.request_joules(pool, e2e_s, running, running)
    return joules


def request_cost(pool: config_pb2.Pool, e2e_s: float, share: float) -> float:
    """Dollars spent on a request by the same share of GPU time."""
    gpus = max(pool.gpus_per_replica, 1)
    return gpus * pool.gpu.cost_per_gpu_hour * e2e_s / 3600.0 * min(max(share, 0.0), 1.0)


def _latency_score(slo: config_pb2.Slo, outcome: Outcome) -> float:
    parts = []
    for target, observed in (
        (slo.ttft.ToTimedelta().total_seconds() if slo.HasField("ttft") else 0.0, outcome.ttft_s),
        (slo.tpot.ToTimedelta().total_seconds() if slo.HasField("tpot") else 0.0, outcome.tpot_s),
    ):
        if target > 0 and observed is not None:
            parts.append(1.0 if observed <= target else target / observed)
    if parts:
        return sum(parts) / len(parts)
    return 1.0 / (1.0 + (outcome.e2e_s or 0.0))


def score(
    policy: config_pb2.Policy, pool: config_pb2.Pool, outcome: Outcome, share: float = 1.0
) -> Scores:
    """Scores and reward of an outcome for a policy, using the pool's figures where needed."""
    if not outcome.success:
        return Scores(0.0, 0.0, 0.0, 0.0, 0.0)
    tokens = max(outcome.completion_tokens, 1)
    e2e = outcome.e2e_s or 0.0
    joules = (
        outcome.energy_joules
        if outcome.energy_joules is not None
        else estimate_energy(pool, e2e, share)
    )
    dollars = request_cost(pool, e2e, share)
    quality = 1.0 if outcome.quality is None else min(max(outcome.quality, 0.0), 1.0)
    latency = _latency_score(policy.slo, outcome)
    energy = 1.0 - min(1.0, joules / tokens / REFERENCE_JOULES_PER_TOKEN)
    cost = 1.0 - min(1.0, dollars / tokens * 1000.0 / REFERENCE_DOLLARS_PER_1K_TOKENS)
    w = policy.objective
    total = w.quality + w.latency + w.energy + w.cost
    weighted = w.quality * quality + w.latency * latency + w.energy * energy + w.cost * cost
    reward = weighted / total if total > 0 else 0.0
    return Scores(quality, latency, energy, cost, reward)


def partial_score(
    policy: config_pb2.Policy, pool: config_pb2.Pool, outcome: Outcome, share: float = 1.0
) -> float | None:
    """Reward from what was measured of an outcome whose feedback never came (quality unknown)."""
    full = score(policy, pool, replace(outcome, success=True), share)
    w = policy.objective
    parts: list[tuple[float, float]] = []
    if outcome.ttft_s is not None or outcome.e2e_s is not None:
        parts.append((w.latency, full.latency))
    if outcome.e2e_s is not None or outcome.energy_joules is not None:
        parts.append((w.energy, full.energy))
    if outcome.e2e_s is not None:
        parts.append((w.cost, full.cost))
    total = sum(weight for weight, _ in parts)
    if total <= 0:
        return None
    return sum(weight * value for weight, value in parts) / total
