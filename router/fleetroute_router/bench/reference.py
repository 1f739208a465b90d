"""Bare-numpy LinUCB, one objective: the floor a decision is compared with in `bench decision`.

Textbook disjoint LinUCB (Li et al., 2010) written as tightly as numpy allows, with nothing a
router needs around it (no arm names, objectives, weights, ties or bookkeeping): per arm an
inverse Gram matrix kept by Sherman-Morrison and a weight vector. `step` chooses an arm for a
context and learns a reward for it, the unit the reference is timed in.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

Vector = npt.NDArray[np.float64]


class BareLinUCB:
    """K arms over d features; alpha scales the confidence bonus."""

    def __init__(self, arms: int, dimension: int, alpha: float = 1.0) -> None:
        self.alpha = alpha
        self.gram_inv = np.broadcast_to(np.eye(dimension), (arms, dimension, dimension)).copy()
        self.target = np.zeros((arms, dimension))
        self.theta = np.zeros((arms, dimension))
        self._flat = self.gram_inv.reshape(arms * dimension, dimension)  # a view

    def choose(self, x: Vector) -> int:
        """The arm with the highest upper confidence bound at x."""
        k, d = self.theta.shape
        variance = (self._flat @ x).reshape(k, d) @ x
        return int(np.argmax(self.theta @ x + self.alpha * np.sqrt(variance)))

    def update(self, arm: int, x: Vector, reward: float) -> None:
        """Learn one reward of an arm at x."""
        inv = self.gram_inv[arm]
        ax = inv @ x
        inv -= np.outer(ax, ax) / (1.0 + float(x @ ax))
        self.target[arm] += reward * x
        self.theta[arm] = inv @ self.target[arm]

    def step(self, x: Vector, reward: float) -> int:
        """Choose at x and learn the reward for the chosen arm."""
        arm = self.choose(x)
        self.update(arm, x, reward)
        return arm


def contexts(count: int, dimension: int, seed: int = 0) -> npt.NDArray[Any]:
    """Random contexts in [0, 1) with a bias feature first, as the router's vectors have."""
    rows = np.random.default_rng(seed).random((count, dimension))
    rows[:, 0] = 1.0
    return rows
