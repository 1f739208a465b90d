"""Per-arm, per-objective ridge regression kept incrementally: what every linear bandit shares.

Each objective o (quality, latency, energy, cost; see objectives.py) of each arm k is its own
ridge model, learned only from the requests that measured that objective. For objective o of
arm k with contexts x_t and scores r_t it observed, and a prior mean score m:
    A_k = λ·I + Σ_t x_t x_tᵀ     b_k = Σ_t (r_t - m) x_t     θ_k = A_k⁻¹ b_k
and the predicted reward is m + θ_kᵀx: an arm never tried predicts m, and ridge shrinks towards
m rather than towards 0 (rewards are in [0, 1]; m = PRIOR_MEAN, optimistic, so every arm gets
tried before one is settled on, whatever the exploration parameter).
A_k⁻¹ is updated by Sherman-Morrison, (A + x xᵀ)⁻¹ = A⁻¹ - (A⁻¹x)(A⁻¹x)ᵀ / (1 + xᵀA⁻¹x), so a
decision never inverts a matrix. With a discount gamma < 1 (drift) an update first forgets:
    A_k ← gamma·A_k + (1 - gamma)·λ·I + x xᵀ     b_k ← gamma·b_k + (r - m) x
which keeps A_k ⪰ λ·I; A_k⁻¹ is then recomputed from A_k (one dxd inverse per update of that
arm, never per decision). Objectives and arms are stacked in (O, K, d, d) arrays, so scoring
every objective of every arm is two matrix products.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Vector = npt.NDArray[np.float64]
BIAS_ONLY = np.ones(1)
PRIOR_MEAN = 1.0
LOOKUP_CACHE = 256


@dataclass(frozen=True)
class ArmStatistics:
    """What one objective of one arm learned: A (dxd, prior included), b (d), how much it saw."""

    arm: str
    gram: Vector
    target: Vector
    observations: float
    reward_sum: float
    objective: str = "quality"


class LinearModel:
    """Ridge statistics per objective for a changing set of named arms, over one dimension."""

    def __init__(
        self,
        regularization: float = 1.0,
        discount: float = 1.0,
        prior_mean: float = PRIOR_MEAN,
        objectives: Sequence[str] = ("quality",),
    ) -> None:
        if not objectives or len(set(objectives)) != len(objectives):
            raise ValueError(f"objectives must be distinct and not empty, got {objectives}")
        self.regularization = regularization
        self.discount = discount
        self.prior_mean = prior_mean
        self.objectives = tuple(objectives)
        self._objective = {name: o for o, name in enumerate(self.objectives)}
        self.dimension = 0
        self.arms: list[str] = []
        self._index: dict[str, int] = {}
        self._lookup: dict[
            tuple[str, ...], tuple[npt.NDArray[np.intp], npt.NDArray[np.intp] | slice]
        ] = {}
        n = len(self.objectives)
        self.gram = np.zeros((n, 0, 0, 0))
        self.gram_inv = np.zeros((n, 0, 0, 0))
        self.target = np.zeros((n, 0, 0))
        self.theta = np.zeros((n, 0, 0))
        self.observations = np.zeros((n, 0))
        self.reward_sum = np.zeros((n, 0))
        # Change counters, for caches derived from A⁻¹ (bandits.LinUCB): `layout` moves when
        # arms are added or dropped, `changes[k]` when any objective of arm k learns, and
        # `version` with every change of either (a cache that saw it is current).
        self.layout = 0
        self.changes: list[int] = []
        self.version = 0

    @staticmethod
    def context(features: Vector) -> Vector:
        """The vector the model sees: the features, or a bias alone when there are none."""
        return features if features.shape[0] else BIAS_ONLY

    def objective_index(self, name: str) -> int:
        """Row of an objective in the stacked arrays; ValueError for one not learned here."""
        found = self._objective.get(name)
        if found is None:
            raise ValueError(f"objective {name!r} is not learned; known: {self.objectives}")
        return found

    def _fix_dimension(self, x: Vector) -> None:
        if self.dimension == 0:
            self.dimension = x.shape[0]
            d, n = self.dimension, len(self.objectives)
            self.gram = np.zeros((n, 0, d, d))
            self.gram_inv = np.zeros((n, 0, d, d))
            self.target = np.zeros((n, 0, d))
            self.theta = np.zeros((n, 0, d))
        elif x.shape[0] != self.dimension:
            raise ValueError(
                f"feature vector has {x.shape[0]} dimensions, the model learned {self.dimension}"
            )

    def indices(self, arms: Sequence[str], x: Vector) -> npt.NDArray[np.intp]:
        """Column of each arm in the stacked arrays; unseen arms start from the prior."""
        return self._resolve(arms, x)[0]

    def columns(self, arms: Sequence[str], x: Vector) -> npt.NDArray[np.intp] | slice:
        """What selects `arms` from the stacked arrays: their indices, or a slice of every
        column when they are all the arms in order (a view, cheaper than gathering)."""
        return self._resolve(arms, x)[1]

    def _resolve(
        self, arms: Sequence[str], x: Vector
    ) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp] | slice]:
        self._fix_dimension(x)
        key = tuple(arms)
        found = self._lookup.get(key)
        if found is None:
            for arm in arms:
                if arm not in self._index:
                    self.add_arm(arm)
            rows = np.fromiter((self._index[a] for a in arms), dtype=np.intp, count=len(arms))
            every = rows.shape[0] == len(self.arms) and bool(
                (rows == np.arange(rows.shape[0])).all()
            )
            if len(self._lookup) >= LOOKUP_CACHE:  # arm subsets vary (SLO guard): stay bounded
                self._lookup.clear()
            found = self._lookup[key] = (rows, slice(None) if every else rows)
        return found

    def add_arm(self, arm: str) -> None:
        """Start learning an arm from the prior (a no-op for a known arm)."""
        if arm in self._index:
            return
        if self.dimension == 0:
            raise ValueError("the feature dimension is unknown until the first context")
        d, n = self.dimension, len(self.objectives)
        prior = np.broadcast_to(self.regularization * np.eye(d), (n, 1, d, d))
        self._index[arm] = len(self.arms)
        self.arms.append(arm)
        self.gram = np.concatenate([self.gram, prior], axis=1)
        self.gram_inv = np.concatenate([self.gram_inv, prior / self.regularization**2], axis=1)
        self.target = np.concatenate([self.target, np.zeros((n, 1, d))], axis=1)
        self.theta = np.concatenate([self.theta, np.zeros((n, 1, d))], axis=1)
        self.observations = np.concatenate([self.observations, np.zeros((n, 1))], axis=1)
        self.reward_sum = np.concatenate([self.reward_sum, np.zeros((n, 1))], axis=1)
        self._lookup.clear()
        self.changes.append(0)
        self.layout += 1
        self.version += 1

    def set_statistics(self, stats: ArmStatistics) -> None:
        """Set one objective of an arm to given statistics (a restored snapshot, a prior)."""
        o = self.objective_index(stats.objective)
        if self.dimension == 0:
            self._fix_dimension(stats.target)
        d = self.dimension
        if stats.gram.shape != (d, d) or stats.target.shape != (d,):
            raise ValueError(f"statistics of arm {stats.arm!r} are not of dimension {d}")
        self.add_arm(stats.arm)
        k = self._index[stats.arm]
        self.gram[o, k], self.target[o, k] = stats.gram, stats.target
        self.observations[o, k], self.reward_sum[o, k] = stats.observations, stats.reward_sum
        self._refresh(o, k)

    def forget(self, arm: str) -> None:
        """Drop what an arm learned (it restarts from the prior if it comes back)."""
        k = self._index.pop(arm, None)
        if k is None:
            return
        del self.arms[k]
        self._index = {a: i for i, a in enumerate(self.arms)}
        self.gram = np.delete(self.gram, k, axis=1)
        self.gram_inv = np.delete(self.gram_inv, k, axis=1)
        self.target = np.delete(self.target, k, axis=1)
        self.theta = np.delete(self.theta, k, axis=1)
        self.observations = np.delete(self.observations, k, axis=1)
        self.reward_sum = np.delete(self.reward_sum, k, axis=1)
        self._lookup.clear()
        del self.changes[k]
        self.layout += 1
        self.version += 1

    def _refresh(self, o: int, k: int) -> None:
        self.changes[k] += 1
        self.version += 1
        self.gram_inv[o, k] = np.linalg.inv(self.gram[o, k])
        self.theta[o, k] = self.gram_inv[o, k] @ self.target[o, k]

    def mean(self, x: Vector) -> Vector:
        """m + θ_okᵀx for every objective o and known arm k: an (O, K) array."""
        o, k, d = self.theta.shape
        # One matrix-vector product over the flattened stack (a single BLAS call) rather than
        # a batched matmul, which loops over the O·K small products.
        return self.prior_mean + (self.theta.reshape(o * k, d) @ x).reshape(o, k)

    def mean_and_variance(self, x: Vector) -> tuple[Vector, Vector]:
        """m + θ_okᵀx and xᵀA_ok⁻¹x for every objective o and known arm k: (O, K) arrays."""
        return self.mean(x), self.variance(x)

    def variance(self, x: Vector) -> Vector:
        """xᵀA_ok⁻¹x for every objective o and known arm k: an (O, K) array."""
        o, k, d = self.theta.shape
        projected = (self.gram_inv.reshape(o * k * d, d) @ x).reshape(o * k, d)
        return np.maximum(projected @ x, 0.0).reshape(o, k)

    def update(self, arm: str, features: Vector, scores: Mapping[str, float]) -> None:
        """Add one observation (context, score) to each objective of an arm that was measured."""
        x = self.context(features)
        k = int(self.indices((arm,), x)[0])
        if len(scores) == 1:
            for name, score in scores.items():
                self._learn(self.objective_index(name), k, x, score)
        elif scores:
            self._learn_together([self.objective_index(n) for n in scores], k, x, scores)

    def _learn_together(
        self, rows: list[int], k: int, x: Vector, scores: Mapping[str, float]
    ) -> None:
        """_learn for several objectives of one arm in one pass of numpy calls: the same
        Sherman-Morrison step (or, discounted, the same inverses), batched over the objectives."""
        first, n = rows[0], len(rows)
        # Objectives measured together are usually adjacent (latency, energy, cost): a slice
        # gives views that update in place, where an index array copies out and back.
        o: slice | npt.NDArray[np.intp] = (
            slice(first, first + n)
            if rows == list(range(first, first + n))
            else np.array(rows, dtype=np.intp)
        )
        values = np.fromiter(scores.values(), dtype=np.float64, count=len(rows))
        if self.discount < 1.0:
            self._learn_discounted_together(o, k, x, values)
            return
        self.gram[o, k] += np.outer(x, x)
        self.target[o, k] += (values - self.prior_mean)[:, None] * x
        self.observations[o, k] += 1.0
        self.reward_sum[o, k] += values
        self.changes[k] += 1
        self.version += 1
        inv = self.gram_inv[o, k]  # a view for a slice, else a copy written back below
        ax = inv @ x
        # The scale goes on a d-vector, not on the (d, d) outer product: one matrix pass fewer.
        scaled = ax / (1.0 + ax @ x)[:, None]
        inv -= scaled[:, :, None] * ax[:, None, :]
        if not isinstance(o, slice):
            self.gram_inv[o, k] = inv
        self.theta[o, k] = (inv @ self.target[o, k][:, :, None])[:, :, 0]

    def _learn_discounted_together(
        self, o: slice | npt.NDArray[np.intp], k: int, x: Vector, values: Vector
    ) -> None:
        """The discounted step for the objectives `o` of arm k, with one batched inverse:
        forgetting changes every direction, so it has no rank-one shortcut."""
        gamma, d = self.discount, self.dimension
        gram = gamma * self.gram[o, k]
        gram.reshape(-1, d * d)[:, :: d + 1] += (1.0 - gamma) * self.regularization
        gram += np.outer(x, x)
        target = gamma * self.target[o, k] + (values - self.prior_mean)[:, None] * x
        inv = np.linalg.inv(gram)
        self.gram[o, k], self.target[o, k], self.gram_inv[o, k] = gram, target, inv
        self.observations[o, k] = gamma * self.observations[o, k] + 1.0
        self.reward_sum[o, k] = gamma * self.reward_sum[o, k] + values
        self.theta[o, k] = (inv @ target[:, :, None])[:, :, 0]
        self.changes[k] += 1
        self.version += 1

    def _learn(self, o: int, k: int, x: Vector, score: float) -> None:
        if self.discount < 1.0:
            self._learn_discounted_together(slice(o, o + 1), k, x, np.array([score]))
            return
        self.gram[o, k] += np.outer(x, x)
        self.target[o, k] += (score - self.prior_mean) * x
        self.observations[o, k] += 1.0
        self.reward_sum[o, k] += score
        self.changes[k] += 1
        self.version += 1
        inv = self.gram_inv[o, k]
        ax = inv @ x
        inv -= np.outer(ax / (1.0 + float(x @ ax)), ax)
        self.theta[o, k] = inv @ self.target[o, k]

    def statistics(self) -> list[ArmStatistics]:
        """Copies of every arm's statistics, one per objective."""
        return [
            ArmStatistics(
                arm,
                self.gram[o, k].copy(),
                self.target[o, k].copy(),
                float(self.observations[o, k]),
                float(self.reward_sum[o, k]),
                objective,
            )
            for k, arm in enumerate(self.arms)
            for o, objective in enumerate(self.objectives)
        ]

    def add_delta(self, delta: ArmStatistics) -> None:
        """Add increments (A, b and counts over some base) learned elsewhere to an objective."""
        o = self.objective_index(delta.objective)
        if delta.arm not in self._index:
            self._fix_dimension(delta.target)
            self.add_arm(delta.arm)
        k = self._index[delta.arm]
        if delta.gram.shape != self.gram[o, k].shape:
            raise ValueError(f"delta of arm {delta.arm!r} has the wrong dimension")
        self.gram[o, k] += delta.gram
        self.target[o, k] += delta.target
        self.observations[o, k] += delta.observations
        self.reward_sum[o, k] += delta.reward_sum
        self._refresh(o, k)
