"""Contextual bandits over per-arm ridge models: LinUCB, linear Thompson sampling, ε-greedy.

All three share LinearModel (disjoint arms, one ridge model per objective) and differ only in
how an arm's score is formed from its objectives' predicted means μ_o = θ_oᵀx and variances
sigma_o^2 = xᵀA_o⁻¹x, combined with the weights w (summing to 1) of the policy or the request:
    μ = Σ_o w_o μ_o        sigma^2 = Σ_o w_o^2 sigma_o^2   (the objectives' estimates independent)
    linucb          μ + alpha·sigma
    thompson        Σ_o w_o (μ_o + v·sigma_o·z_o), z_o ~ N(0, 1): the exact law of xᵀθ̃_o for
                    θ̃_o ~ N(θ_o, v²A_o⁻¹), so linear Thompson sampling without a Cholesky factor
    epsilon-greedy  μ, and with probability ε a uniformly random arm instead
Ties (e.g. arms never tried) break uniformly at random with the policy's seeded generator.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt

from fleetroute_router.policies.base import Arm, Choice
from fleetroute_router.policies.linear import ArmStatistics, LinearModel, Vector

TIE = 1e-12


class LinearBandit:
    """Shared machinery: state, arm bookkeeping, choosing the best score among given arms."""

    name = "linear"

    def __init__(
        self,
        *,
        regularization: float = 1.0,
        discount: float = 1.0,
        seed: int | None = None,
        objectives: Sequence[str] = ("quality",),
    ) -> None:
        self.model = LinearModel(
            regularization=regularization, discount=discount, objectives=objectives
        )
        # What this replica learned itself, beside the model (see learning/replicas.py): kept
        # only once sharing between replicas asks for it.
        self.own: LinearModel | None = None
        self._rng = np.random.default_rng(seed)
        self._equal = np.full(len(self.model.objectives), 1.0 / len(self.model.objectives))

    def _scores(self, weights: Vector, mean: Vector, variance: Vector) -> Vector:
        """Scores of K arms from (O, K) means and variances and O weights."""
        raise NotImplementedError

    def choose(
        self,
        features: npt.NDArray[np.float64],
        arms: Sequence[Arm],
        weights: Vector | None = None,
    ) -> Choice:
        x = LinearModel.context(features)
        names = [a.pool for a in arms]
        rows = self.model.indices(names, x)
        mean, variance = self.model.mean_and_variance(x)
        w = self._equal if weights is None else weights
        objective_means = mean[:, rows]
        means = w @ objective_means
        scores = self._scores(w, objective_means, variance[:, rows])
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

    def update(
        self, arm: str, features: npt.NDArray[np.float64], scores: Mapping[str, float]
    ) -> None:
        self.model.update(arm, features, scores)
        if self.own is not None:
            self.own.update(arm, features, scores)

    def track_own(self) -> LinearModel:
        """Start keeping what this replica learns itself, from the prior (for sharing)."""
        if self.own is None:
            m = self.model
            self.own = LinearModel(
                regularization=m.regularization,
                discount=m.discount,
                prior_mean=m.prior_mean,
                objectives=m.objectives,
            )
        return self.own

    def statistics(self) -> list[ArmStatistics]:
        """What every arm learned (for snapshots, merging and status)."""
        return self.model.statistics()

    def restore(self, statistics: Sequence[ArmStatistics]) -> None:
        """Set arms' statistics (a restored snapshot or a warm start); other arms are kept."""
        for stats in statistics:
            self.model.set_statistics(stats)

    def add_delta(self, deltas: Sequence[ArmStatistics]) -> None:
        """Add what another replica learned since the last exchange (see learning.merge)."""
        for delta in deltas:
            self.model.add_delta(delta)

    def forget(self, arm: str) -> None:
        """Drop an arm's statistics, e.g. when its pool is deleted for good."""
        self.model.forget(arm)
        if self.own is not None:
            self.own.forget(arm)


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
        objectives: Sequence[str] = ("quality",),
    ) -> None:
        super().__init__(
            regularization=regularization, discount=discount, seed=seed, objectives=objectives
        )
        self.alpha = alpha

    def _scores(self, weights: Vector, mean: Vector, variance: Vector) -> Vector:
        result: Vector = weights @ mean + self.alpha * np.sqrt((weights * weights) @ variance)
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
        objectives: Sequence[str] = ("quality",),
    ) -> None:
        super().__init__(
            regularization=regularization, discount=discount, seed=seed, objectives=objectives
        )
        self.exploration = exploration

    def _scores(self, weights: Vector, mean: Vector, variance: Vector) -> Vector:
        noise = self._rng.standard_normal(mean.shape)
        result: Vector = weights @ (mean + self.exploration * np.sqrt(variance) * noise)
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
        objectives: Sequence[str] = ("quality",),
    ) -> None:
        super().__init__(
            regularization=regularization, discount=discount, seed=seed, objectives=objectives
        )
        self.epsilon = epsilon

    def _scores(self, weights: Vector, mean: Vector, variance: Vector) -> Vector:
        result: Vector = weights @ mean
        return result

    def _best(self, scores: Vector) -> int:
        if self.epsilon > 0 and self._rng.random() < self.epsilon:
            return int(self._rng.integers(scores.shape[0]))
        return super()._best(scores)
