"""Contextual bandits over per-arm ridge models: LinUCB, linear Thompson sampling, ε-greedy.

All three share LinearModel (disjoint arms) and differ only in how an arm's score is formed
from its predicted mean μ = θᵀx and variance sigma^2 = xᵀA⁻¹x:
    linucb          μ + alpha·sigma
    thompson        μ + v·sigma·z, z ~ N(0, 1) per arm: the exact law of xᵀθ̃ for θ̃ ~ N(θ, v²A⁻¹),
                    so sampling the score is linear Thompson sampling without a Cholesky factor
    epsilon-greedy  μ, and with probability ε a uniformly random arm instead
Ties (e.g. arms never tried) break uniformly at random with the policy's seeded generator.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from fleetroute_router.policies.base import Arm, Choice
from fleetroute_router.policies.linear import ArmStatistics, LinearModel, Vector

TIE = 1e-12


class LinearBandit:
    """Shared machinery: state, arm bookkeeping, choosing the best score among given arms."""

    name = "linear"

    def __init__(
        self, *, regularization: float = 1.0, discount: float = 1.0, seed: int | None = None
    ) -> None:
        self.model = LinearModel(regularization=regularization, discount=discount)
        self._rng = np.random.default_rng(seed)

    def _scores(self, mean: Vector, variance: Vector) -> Vector:
        raise NotImplementedError

    def choose(self, features: npt.NDArray[np.float64], arms: Sequence[Arm]) -> Choice:
        x = LinearModel.context(features)
        names = [a.pool for a in arms]
        rows = self.model.indices(names, x)
        mean, variance = self.model.mean_and_variance(x)
        means = mean[rows]
        scores = self._scores(means, variance[rows])
        pick = self._best(scores)
        return Choice(
            names[pick],
            dict(zip(names, scores.tolist(), strict=True)),
            # Exploring: the arm's predicted mean is below the best one's (the bonus, the
            # posterior sample or the random pick chose it).
            explored=bool(means[pick] < means.max() - TIE),
        )

    def _best(self, scores: Vector) -> int:
        top = int(np.argmax(scores))
        tied = np.flatnonzero(scores >= scores[top] - TIE)
        return int(tied[self._rng.integers(len(tied))]) if len(tied) > 1 else top

    def update(self, arm: str, features: npt.NDArray[np.float64], reward: float) -> None:
        self.model.update(arm, features, reward)

    def statistics(self) -> list[ArmStatistics]:
        """What every arm learned (for snapshots, merging and status)."""
        return self.model.statistics()

    def restore(self, statistics: Sequence[ArmStatistics]) -> None:
        """Set arms' statistics (a restored snapshot or a warm start); other arms are kept."""
        for stats in statistics:
            self.model.add_arm(stats.arm, stats)

    def add_delta(self, deltas: Sequence[ArmStatistics]) -> None:
        """Add what another replica learned since the last exchange (see learning.merge)."""
        for delta in deltas:
            self.model.add_delta(delta)

    def forget(self, arm: str) -> None:
        """Drop an arm's statistics, e.g. when its pool is deleted for good."""
        self.model.forget(arm)


class LinUCB(LinearBandit):
    """Disjoint LinUCB (Li et al., 2010): optimism in the face of uncertainty."""

    name = "linucb"

    def __init__(
        self,
        *,
        alpha: float = 1.0,
        regularization: float = 1.0,
        discount: float = 1.0,
        seed: int | None = None,
    ) -> None:
        super().__init__(regularization=regularization, discount=discount, seed=seed)
        self.alpha = alpha

    def _scores(self, mean: Vector, variance: Vector) -> Vector:
        result: Vector = mean + self.alpha * np.sqrt(variance)
        return result


class LinearThompson(LinearBandit):
    """Linear Thompson sampling (Agrawal & Goyal, 2013) with posterior scale v."""

    name = "thompson"

    def __init__(
        self,
        *,
        exploration: float = 0.5,
        regularization: float = 1.0,
        discount: float = 1.0,
        seed: int | None = None,
    ) -> None:
        super().__init__(regularization=regularization, discount=discount, seed=seed)
        self.exploration = exploration

    def _scores(self, mean: Vector, variance: Vector) -> Vector:
        noise = self._rng.standard_normal(mean.shape[0])
        result: Vector = mean + self.exploration * np.sqrt(variance) * noise
        return result


class EpsilonGreedy(LinearBandit):
    """The arm with the best predicted reward, or with probability ε a random one."""

    name = "epsilon-greedy"

    def __init__(
        self,
        *,
        epsilon: float = 0.1,
        regularization: float = 1.0,
        discount: float = 1.0,
        seed: int | None = None,
    ) -> None:
        super().__init__(regularization=regularization, discount=discount, seed=seed)
        self.epsilon = epsilon

    def _scores(self, mean: Vector, variance: Vector) -> Vector:
        return mean

    def _best(self, scores: Vector) -> int:
        if self.epsilon > 0 and self._rng.random() < self.epsilon:
            return int(self._rng.integers(scores.shape[0]))
        return super()._best(scores)
