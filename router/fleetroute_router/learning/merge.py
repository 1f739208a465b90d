"""Share learning between router replicas by exchanging statistic deltas.

The math. Every replica starts from the same prior, A = λI and b = 0 per arm. After replicas
r = 1..R learned from disjoint data sets D_r, a single learner that saw all the data would hold
    A* = λI + Σ_r Σ_{(x,r)∈D_r} x xᵀ        b* = Σ_r Σ_{(x,y)∈D_r} y x
because both are plain sums. Each replica keeps the base (A_B, b_B) it shared at its last
exchange; its delta is Δ_r = (A_r - A_B, b_r - b_B), exactly what it learned since. A replica
that adds every peer's delta to its own statistics holds A_B + Σ_r Δ_r = A*, and b* likewise:
merged learners equal one learner that saw everything (θ = A⁻¹b then matches too). Counts and
reward sums add the same way. The new base is old base + own sent delta + peers' deltas, so
what a replica learns while an exchange is in flight is sent next time, never lost or doubled.
With discounting (gamma < 1) sums are no longer order-free: the merge is then an approximation
(each replica forgets over its own stream).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from fleetroute_router.policies.bandits import LinearBandit
from fleetroute_router.policies.linear import ArmStatistics

Key = tuple[str, str]


def _subtract(current: ArmStatistics, base: ArmStatistics | None, prior: float) -> ArmStatistics:
    if base is None:
        gram = current.gram.copy()
        gram.flat[:: gram.shape[0] + 1] -= prior
        return ArmStatistics(
            current.arm,
            gram,
            current.target.copy(),
            current.observations,
            current.reward_sum,
            current.objective,
        )
    return ArmStatistics(
        current.arm,
        current.gram - base.gram,
        current.target - base.target,
        current.observations - base.observations,
        current.reward_sum - base.reward_sum,
        current.objective,
    )


def key(stats: ArmStatistics) -> Key:
    """Statistics are kept per arm and objective."""
    return stats.arm, stats.objective


def _add(into: dict[Key, ArmStatistics], deltas: Iterable[ArmStatistics], prior: float) -> None:
    for delta in deltas:
        base = into.get(key(delta))
        if base is None:
            d = delta.target.shape[0]
            gram = delta.gram.copy()
            gram.flat[:: d + 1] += prior
            into[key(delta)] = ArmStatistics(
                delta.arm,
                gram,
                delta.target.copy(),
                delta.observations,
                delta.reward_sum,
                delta.objective,
            )
        else:
            into[key(delta)] = ArmStatistics(
                delta.arm,
                base.gram + delta.gram,
                base.target + delta.target,
                base.observations + delta.observations,
                base.reward_sum + delta.reward_sum,
                delta.objective,
            )


def merge_deltas(deltas: Sequence[Sequence[ArmStatistics]]) -> list[ArmStatistics]:
    """The sum of several replicas' deltas, arm and objective by arm and objective (what a
    hub would forward)."""
    total: dict[Key, ArmStatistics] = {}
    for replica in deltas:
        _add(total, replica, 0.0)
    return list(total.values())


class ReplicaSync:
    """One replica's side of the exchange: produce its delta, absorb its peers'."""

    def __init__(self, bandit: LinearBandit) -> None:
        self.bandit = bandit
        self._prior = bandit.model.regularization
        self._base: dict[Key, ArmStatistics] = {key(s): s for s in bandit.statistics()}
        self._sent: list[ArmStatistics] = []

    def delta(self) -> list[ArmStatistics]:
        """What this replica learned since its base; remembered as sent until `absorb`."""
        self._sent = [
            _subtract(s, self._base.get(key(s)), self._prior) for s in self.bandit.statistics()
        ]
        return self._sent

    def absorb(self, peer_deltas: Sequence[Sequence[ArmStatistics]]) -> None:
        """Add the peers' deltas to the bandit and move the base past this exchange."""
        for deltas in peer_deltas:
            self.bandit.add_delta(deltas)
        _add(self._base, self._sent, self._prior)
        for deltas in peer_deltas:
            _add(self._base, deltas, self._prior)
        self._sent = []
