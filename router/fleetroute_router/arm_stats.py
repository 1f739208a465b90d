"""Per policy and arm: how often the arm was chosen and the mean score of each objective."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from fleetroute.v1alpha1 import learning_pb2
from fleetroute_router.objectives import OBJECTIVES, QUALITY, Weights


@dataclass
class ArmCounts:
    """Running counts of one arm."""

    decisions: int = 0
    observations: dict[str, float] = field(default_factory=dict)
    score_sums: dict[str, float] = field(default_factory=dict)

    def means(self) -> dict[str, float]:
        """Mean score of each objective measured at least once."""
        return {o: self.score_sums[o] / n for o, n in self.observations.items() if n > 0}

    def mean_reward(self, weights: Weights) -> float:
        """The objectives' means combined with the weights, renormalised over those measured."""
        means = self.means()
        known = [(weights[i], means[o]) for i, o in enumerate(OBJECTIVES) if o in means]
        total = sum(w for w, _ in known)
        return sum(w * m for w, m in known) / total if total > 0 else 0.0


@dataclass(frozen=True)
class ArmSummary:
    """One arm's share of its policy's decisions, its mean reward and per-objective means."""

    pool: str
    decisions: int
    share: float
    rewards: int
    mean_reward: float
    observations: Mapping[str, float] = field(default_factory=dict)
    means: Mapping[str, float] = field(default_factory=dict)


class ArmStatistics:
    """Counts per (policy, arm) since the policy's algorithm last changed."""

    def __init__(self) -> None:
        self._counts: defaultdict[str, defaultdict[str, ArmCounts]] = defaultdict(
            lambda: defaultdict(ArmCounts)
        )

    def chose(self, policy: str, arm: str) -> None:
        self._counts[policy][arm].decisions += 1

    def learned(self, policy: str, arm: str, scores: Mapping[str, float]) -> None:
        counts = self._counts[policy][arm]
        for objective, value in scores.items():
            counts.observations[objective] = counts.observations.get(objective, 0.0) + 1.0
            counts.score_sums[objective] = counts.score_sums.get(objective, 0.0) + value

    def reset(self, policy: str) -> None:
        """Forget a policy's counts (its algorithm changed, so it learns afresh)."""
        self._counts.pop(policy, None)

    def quality_observations(self, policy: str) -> float:
        """Quality scores a policy has learned from, over all its arms."""
        name = OBJECTIVES[QUALITY]
        return sum(c.observations.get(name, 0.0) for c in self._counts.get(policy, {}).values())

    def summary(self, policy: str, weights: Weights | None = None) -> list[ArmSummary]:
        """Arms of a policy, most chosen first; mean rewards under `weights` (default equal)."""
        w = weights if weights is not None else np.full(len(OBJECTIVES), 1 / len(OBJECTIVES))
        arms: dict[str, ArmCounts] = self._counts.get(policy, {})
        total = sum(c.decisions for c in arms.values())
        found = [
            ArmSummary(
                pool,
                c.decisions,
                c.decisions / total if total else 0.0,
                int(max(c.observations.values(), default=0.0)),
                c.mean_reward(w),
                dict(c.observations),
                c.means(),
            )
            for pool, c in arms.items()
        ]
        return sorted(found, key=lambda a: (-a.decisions, a.pool))

    def state(self) -> dict[str, learning_pb2.PolicyCounts]:
        """Every policy's counts, for a snapshot."""
        return {
            policy: learning_pb2.PolicyCounts(
                arms=[
                    learning_pb2.ArmCounts(
                        arm=arm,
                        decisions=c.decisions,
                        observations=c.observations,
                        score_sums=c.score_sums,
                    )
                    for arm, c in arms.items()
                ]
            )
            for policy, arms in self._counts.items()
        }

    def restore(self, state: Mapping[str, learning_pb2.PolicyCounts], policies: set[str]) -> None:
        """Load a snapshot's counts of the given policies (others are gone from the config)."""
        for policy, message in state.items():
            if policy not in policies:
                continue
            for arm in message.arms:
                self._counts[policy][arm.arm] = ArmCounts(
                    arm.decisions, dict(arm.observations), dict(arm.score_sums)
                )
