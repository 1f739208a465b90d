"""Per-arm ridge regression kept incrementally: the statistics every linear bandit shares.

For arm k with contexts x_t and rewards r_t it observed, and a prior mean reward m:
    A_k = λ·I + Σ_t x_t x_tᵀ     b_k = Σ_t (r_t - m) x_t     θ_k = A_k⁻¹ b_k
and the predicted reward is m + θ_kᵀx: an arm never tried predicts m, and ridge shrinks towards
m rather than towards 0 (rewards are in [0, 1]; m = PRIOR_MEAN, optimistic, so every arm gets
tried before one is settled on, whatever the exploration parameter).
A_k⁻¹ is updated by Sherman-Morrison, (A + x xᵀ)⁻¹ = A⁻¹ - (A⁻¹x)(A⁻¹x)ᵀ / (1 + xᵀA⁻¹x), so a
decision never inverts a matrix. With a discount gamma < 1 (drift) an update first forgets:
    A_k ← gamma·A_k + (1 - gamma)·λ·I + x xᵀ     b_k ← gamma·b_k + (r - m) x
which keeps A_k ⪰ λ·I; A_k⁻¹ is then recomputed from A_k (one dxd inverse per update of that
arm, never per decision). Arms are stacked in (K, d, d) arrays so scoring all arms is two matrix
products.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Vector = npt.NDArray[np.float64]
BIAS_ONLY = np.ones(1)
PRIOR_MEAN = 1.0
LOOKUP_CACHE = 256


@dataclass(frozen=True)
class ArmStatistics:
    """What one arm learned: A (dxd, prior included), b (d), and how much it saw."""

    arm: str
    gram: Vector
    target: Vector
    observations: float
    reward_sum: float


class LinearModel:
    """Ridge statistics for a changing set of named arms, all over one feature dimension."""

    def __init__(
        self, regularization: float = 1.0, discount: float = 1.0, prior_mean: float = PRIOR_MEAN
    ) -> None:
        self.regularization = regularization
        self.discount = discount
        self.prior_mean = prior_mean
        self.dimension = 0
        self.arms: list[str] = []
        self._index: dict[str, int] = {}
        self._lookup: dict[tuple[str, ...], npt.NDArray[np.intp]] = {}
        self.gram = np.zeros((0, 0, 0))
        self.gram_inv = np.zeros((0, 0, 0))
        self.target = np.zeros((0, 0))
        self.theta = np.zeros((0, 0))
        self.observations = np.zeros(0)
        self.reward_sum = np.zeros(0)

    @staticmethod
    def context(features: Vector) -> Vector:
        """The vector the model sees: the features, or a bias alone when there are none."""
        return features if features.shape[0] else BIAS_ONLY

    def _fix_dimension(self, x: Vector) -> None:
        if self.dimension == 0:
            self.dimension = x.shape[0]
            d = self.dimension
            self.gram = np.zeros((0, d, d))
            self.gram_inv = np.zeros((0, d, d))
            self.target = np.zeros((0, d))
            self.theta = np.zeros((0, d))
        elif x.shape[0] != self.dimension:
            raise ValueError(
                f"feature vector has {x.shape[0]} dimensions, the model learned {self.dimension}"
            )

    def indices(self, arms: Sequence[str], x: Vector) -> npt.NDArray[np.intp]:
        """Row of each arm in the stacked arrays; unseen arms start from the prior."""
        self._fix_dimension(x)
        key = tuple(arms)
        found = self._lookup.get(key)
        if found is None:
            for arm in arms:
                if arm not in self._index:
                    self.add_arm(arm)
            found = np.fromiter((self._index[a] for a in arms), dtype=np.intp, count=len(arms))
            if len(self._lookup) >= LOOKUP_CACHE:  # arm subsets vary (SLO guard): stay bounded
                self._lookup.clear()
            self._lookup[key] = found
        return found

    def add_arm(self, arm: str, stats: ArmStatistics | None = None) -> None:
        """Start learning an arm, from the prior or from given statistics (a warm start)."""
        if self.dimension == 0:
            if stats is None:
                raise ValueError("the feature dimension is unknown until the first context")
            self._fix_dimension(stats.target)
        d = self.dimension
        if stats is None:
            gram, target, seen, total = self.regularization * np.eye(d), np.zeros(d), 0.0, 0.0
        else:
            if stats.gram.shape != (d, d) or stats.target.shape != (d,):
                raise ValueError(f"statistics of arm {arm!r} are not of dimension {d}")
            gram, target = stats.gram, stats.target
            seen, total = stats.observations, stats.reward_sum
        if arm in self._index:
            k = self._index[arm]
            self.gram[k], self.target[k] = gram, target
            self.observations[k], self.reward_sum[k] = seen, total
            self._refresh(k)
            return
        self._index[arm] = len(self.arms)
        self.arms.append(arm)
        self.gram = np.concatenate([self.gram, gram[None]])
        self.gram_inv = np.concatenate([self.gram_inv, np.linalg.inv(gram)[None]])
        self.target = np.concatenate([self.target, target[None]])
        self.theta = np.concatenate([self.theta, (self.gram_inv[-1] @ target)[None]])
        self.observations = np.append(self.observations, seen)
        self.reward_sum = np.append(self.reward_sum, total)
        self._lookup.clear()

    def forget(self, arm: str) -> None:
        """Drop what an arm learned (it restarts from the prior if it comes back)."""
        k = self._index.pop(arm, None)
        if k is None:
            return
        del self.arms[k]
        self._index = {a: i for i, a in enumerate(self.arms)}
        self.gram = np.delete(self.gram, k, axis=0)
        self.gram_inv = np.delete(self.gram_inv, k, axis=0)
        self.target = np.delete(self.target, k, axis=0)
        self.theta = np.delete(self.theta, k, axis=0)
        self.observations = np.delete(self.observations, k)
        self.reward_sum = np.delete(self.reward_sum, k)
        self._lookup.clear()

    def _refresh(self, k: int) -> None:
        self.gram_inv[k] = np.linalg.inv(self.gram[k])
        self.theta[k] = self.gram_inv[k] @ self.target[k]

    def mean_and_variance(self, x: Vector) -> tuple[Vector, Vector]:
        """m + θ_kᵀx and xᵀA_k⁻¹x for every known arm, in the order of `arms`."""
        projected = self.gram_inv @ x
        return self.prior_mean + self.theta @ x, np.maximum(projected @ x, 0.0)

    def update(self, arm: str, features: Vector, reward: float) -> None:
        """Add one observation (context, reward) to an arm's statistics."""
        x = self.context(features)
        k = int(self.indices((arm,), x)[0])
        residual = reward - self.prior_mean
        gamma = self.discount
        if gamma < 1.0:
            d = self.dimension
            self.gram[k] = gamma * self.gram[k] + (1.0 - gamma) * self.regularization * np.eye(d)
            self.gram[k] += np.outer(x, x)
            self.target[k] = gamma * self.target[k] + residual * x
            self.observations[k] = gamma * self.observations[k] + 1.0
            self.reward_sum[k] = gamma * self.reward_sum[k] + reward
            self._refresh(k)
            return
        self.gram[k] += np.outer(x, x)
        self.target[k] += residual * x
        self.observations[k] += 1.0
        self.reward_sum[k] += reward
        inv = self.gram_inv[k]
        ax = inv @ x
        inv -= np.outer(ax, ax) / (1.0 + float(x @ ax))
        self.theta[k] = inv @ self.target[k]

    def statistics(self) -> list[ArmStatistics]:
        """Copies of every arm's statistics."""
        return [
            ArmStatistics(
                arm,
                self.gram[k].copy(),
                self.target[k].copy(),
                float(self.observations[k]),
                float(self.reward_sum[k]),
            )
            for k, arm in enumerate(self.arms)
        ]

    def add_delta(self, delta: ArmStatistics) -> None:
        """Add increments (A, b and counts over some base) learned elsewhere to an arm."""
        if delta.arm not in self._index:
            self._fix_dimension(delta.target)
            self.add_arm(delta.arm)
        k = self._index[delta.arm]
        if delta.gram.shape != self.gram[k].shape:
            raise ValueError(f"delta of arm {delta.arm!r} has the wrong dimension")
        self.gram[k] += delta.gram
        self.target[k] += delta.target
        self.observations[k] += delta.observations
        self.reward_sum[k] += delta.reward_sum
        self._refresh(k)
