"""Per policy and arm: how often the arm was chosen and the mean reward it earned."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass


@dataclass
class ArmCounts:
    """Running counts of one arm."""

    decisions: int = 0
    rewards: int = 0
    reward_sum: float = 0.0

    @property
    def mean_reward(self) -> float:
        return self.reward_sum / self.rewards if self.rewards else 0.0


@dataclass(frozen=True)
class ArmSummary:
    """One arm's share of its policy's decisions and its mean reward."""

    pool: str
    decisions: int
    share: float
    rewards: int
    mean_reward: float


class ArmStatistics:
    """Counts per (policy, arm) since the policy's algorithm last changed."""

    def __init__(self) -> None:
        self._counts: defaultdict[str, defaultdict[str, ArmCounts]] = defaultdict(
            lambda: defaultdict(ArmCounts)
        )

    def chose(self, policy: str, arm: str) -> None:
        self._counts[policy][arm].decisions += 1

    def learned(self, policy: str, arm: str, reward: float) -> None:
        counts = self._counts[policy][arm]
        counts.rewards += 1
        counts.reward_sum += reward

    def reset(self, policy: str) -> None:
        """Forget a policy's counts (its algorithm changed, so it learns afresh)."""
        self._counts.pop(policy, None)

    def summary(self, policy: str) -> list[ArmSummary]:
        """Arms of a policy, most chosen first."""
        arms: dict[str, ArmCounts] = self._counts.get(policy, {})
        total = sum(c.decisions for c in arms.values())
        found = [
            ArmSummary(
                pool, c.decisions, c.decisions / total if total else 0.0, c.rewards, c.mean_reward
            )
            for pool, c in arms.items()
        ]
        return sorted(found, key=lambda a: (-a.decisions, a.pool))
