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
# LinUCB keeps its combined matrices for this many weight vectors (per-request objectives vary).
COMBINED_CACHE = 8


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
        self._rng = np.random.default_rng(seed)
        self._equal = np.full(len(self.model.objectives), 1.0 / len(self.model.objectives))

    def _scores(
        self, weights: Vector, mean: Vector, x: Vector, rows: npt.NDArray[np.intp]
    ) -> Vector:
        """Scores of the K arms at `rows` from their (O, K) means, O weights and the context
        (variances, when a policy needs them, come from self.model at x)."""
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
        w = self._equal if weights is None else weights
        objective_means = self.model.mean(x)[:, rows]
        scores = self._scores(w, objective_means, x, rows)
        means = w @ objective_means
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
        # weights (bytes) -> (model layout, Σ_o w_o² A_ok⁻¹, arms' change counts, w²)
        self._cache: dict[bytes, tuple[int, Vector, list[int], Vector]] = {}

    def _scores(
        self, weights: Vector, mean: Vector, x: Vector, rows: npt.NDArray[np.intp]
    ) -> Vector:
        # Σ_o w_o² xᵀA_ok⁻¹x = xᵀ(Σ_o w_o² A_ok⁻¹)x: one dxd quadratic form per arm, on a
        # combined matrix kept per weights and refreshed only for arms that learned since.
        combined = self._combined(weights)
        k, d = combined.shape[0], self.model.dimension
        variance = ((combined.reshape(k * d, d) @ x).reshape(k, d) @ x)[rows]
        result: Vector = weights @ mean + self.alpha * np.sqrt(np.maximum(variance, 0.0))
        return result

    def _combined(self, weights: Vector) -> Vector:
        """Σ_o w_o² A_ok⁻¹ for every arm k, (K, d, d), brought up to date with the model."""
        model, key = self.model, weights.tobytes()
        cached = self._cache.get(key)
        if cached is None or cached[0] != model.layout:
            if len(self._cache) >= COMBINED_CACHE:
                self._cache.clear()
            squared = weights * weights
            combined = np.tensordot(squared, model.gram_inv, axes=1)
            self._cache[key] = (model.layout, combined, list(model.changes), squared)
            return combined
        _, combined, seen, squared = cached
        for k, count in enumerate(model.changes):
            if seen[k] != count:
                combined[k] = np.tensordot(squared, model.gram_inv[:, k], axes=1)
                seen[k] = count
        return combined


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

    def _scores(
        self, weights: Vector, mean: Vector, x: Vector, rows: npt.NDArray[np.intp]
    ) -> Vector:
        variance = self.model.variance(x)[:, rows]
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

    def _scores(
        self, weights: Vector, mean: Vector, x: Vector, rows: npt.NDArray[np.intp]
    ) -> Vector:
        result: Vector = weights @ mean  # no variance needed: its O·K·d² cost is skipped
        return result

    def _best(self, scores: Vector) -> int:
        if self.epsilon > 0 and self._rng.random() < self.epsilon:
            return int(self._rng.integers(scores.shape[0]))
        return super()._best(scores)
