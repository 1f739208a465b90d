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

import random
from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt

from fleetroute_router.policies.base import Arm, Choice
from fleetroute_router.policies.linear import ArmStatistics, LinearModel, Vector

TIE = 1e-12
# The arms a choice is among, as columns of the model's stacked arrays (LinearModel.columns).
Columns = npt.NDArray[np.intp] | slice
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
        # What this replica learned itself, beside the model (see learning/replicas.py): kept
        # only once sharing between replicas asks for it.
        self.own: LinearModel | None = None
        self._rng = np.random.default_rng(seed)
        # Ties and ε's coin: Python's generator draws one number in a fraction of numpy's
        # per-call overhead, and a decision draws at most two.
        self._draw = random.Random(seed)  # noqa: S311 (not for security)
        self._equal = np.full(len(self.model.objectives), 1.0 / len(self.model.objectives))

    def _scores(self, weights: Vector, mean: Vector, x: Vector, rows: Columns) -> Vector:
        """Scores of the K arms at `rows` from their (O, K) means, O weights and the context
        (variances, when a policy needs them, come from self.model at x)."""
        raise NotImplementedError

    def _weighted(self, weights: Vector, x: Vector, rows: Columns) -> tuple[Vector, Vector]:
        """Scores and weighted predicted means μ of the arms at `rows`."""
        objective_means = self.model.mean(x)[:, rows]
        return self._scores(weights, objective_means, x, rows), weights @ objective_means

    def choose(
        self,
        features: npt.NDArray[np.float64],
        arms: Sequence[Arm],
        weights: Vector | None = None,
    ) -> Choice:
        x = LinearModel.context(features)
        names = [a.pool for a in arms]
        rows = self.model.columns(names, x)
        scores, means = self._weighted(self._equal if weights is None else weights, x, rows)
        # K is small: Python floats from here on are cheaper than more numpy calls.
        values, predicted = scores.tolist(), means.tolist()
        pick = self._best(values)
        return Choice(
            names[pick],
            dict(zip(names, values, strict=True)),
            # Exploring: the arm's predicted mean is below the best one's (the bonus, the
            # posterior sample or the random pick chose it).
            explored=predicted[pick] < max(predicted) - TIE,
        )

    def _best(self, scores: list[float]) -> int:
        top = max(scores)
        tied = [i for i, score in enumerate(scores) if score >= top - TIE]
        return tied[self._draw.randrange(len(tied))] if len(tied) > 1 else tied[0]

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
        self._cache: dict[bytes, _Combined] = {}

    def _weighted(self, weights: Vector, x: Vector, rows: Columns) -> tuple[Vector, Vector]:
        # μ = Σ_o w_o (m + θ_okᵀx) = m·Σw + (Σ_o w_o θ_ok)ᵀx and α²Σ_o w_o² xᵀA_ok⁻¹x =
        # xᵀ(α²Σ_o w_o² A_ok⁻¹)x: per arm one vector and one dxd matrix combined per weights,
        # stacked into one matrix and refreshed only for arms that learned since, so a choice
        # is two matrix-vector products.
        combined = self._combined(weights)
        k, d = len(combined.seen), self.model.dimension
        projected = combined.stacked @ x
        bonus = projected[: k * d].reshape(k, d) @ x
        np.sqrt(np.maximum(bonus, 0.0, out=bonus), out=bonus)
        means = projected[k * d :]
        means += combined.offset
        bonus += means
        return bonus[rows], means[rows]

    def _combined(self, weights: Vector) -> _Combined:
        """The model's estimates combined under `weights`, brought up to date with it."""
        model, key = self.model, weights.tobytes()
        cached = self._cache.get(key)
        if cached is None or cached.layout != model.layout:
            if len(self._cache) >= COMBINED_CACHE:
                self._cache.clear()
            cached = self._cache[key] = _Combined(model, weights, self.alpha)
        elif cached.version != model.version:
            cached.refresh(model)
        return cached


class _Combined:
    """For one weights vector, rows (K·d, d) α²Σ_o w_o² A_ok⁻¹ over rows (K, d) Σ_o w_o θ_ok in
    one stacked matrix, m·Σw, and the model's change counters they reflect."""

    def __init__(self, model: LinearModel, weights: Vector, alpha: float) -> None:
        _, k, d = model.theta.shape
        self.weights, self.scaled = weights.copy(), alpha * alpha * weights * weights
        self.stacked = np.concatenate(
            [
                np.tensordot(self.scaled, model.gram_inv, axes=1).reshape(k * d, d),
                np.tensordot(weights, model.theta, axes=1),
            ]
        )
        self.offset = model.prior_mean * float(weights.sum())
        self.layout, self.version, self.seen = model.layout, model.version, list(model.changes)

    def refresh(self, model: LinearModel) -> None:
        """Recombine the arms whose change counter moved."""
        d, rows = model.dimension, len(self.seen) * model.dimension
        for k, count in enumerate(model.changes):
            if self.seen[k] != count:
                # Σ_o s_o A_ok⁻¹ as one (O)·(O, d²) product: tensordot's overhead is per call.
                self.stacked[k * d : (k + 1) * d] = (
                    self.scaled @ model.gram_inv[:, k].reshape(-1, d * d)
                ).reshape(d, d)
                self.stacked[rows + k] = self.weights @ model.theta[:, k]
                self.seen[k] = count
        self.version = model.version


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

    def _scores(self, weights: Vector, mean: Vector, x: Vector, rows: Columns) -> Vector:
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

    def _scores(self, weights: Vector, mean: Vector, x: Vector, rows: Columns) -> Vector:
        result: Vector = weights @ mean  # no variance needed: its O·K·d² cost is skipped
        return result

    def _best(self, scores: list[float]) -> int:
        if self.epsilon > 0 and self._draw.random() < self.epsilon:
            return self._draw.randrange(len(scores))
        return super()._best(scores)
