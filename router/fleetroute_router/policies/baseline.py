"""Context-free baseline policies: least-loaded, round-robin, random and static."""

from __future__ import annotations

import itertools
import random
from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt

from fleetroute_router.policies.base import Arm, Choice


class LeastLoaded:
    """The arm with the fewest in-flight requests per ready endpoint; ties go round-robin."""

    name = "least-loaded"

    def __init__(self) -> None:
        self._turn = itertools.count()

    def choose(
        self,
        features: npt.NDArray[np.float64],
        arms: Sequence[Arm],
        weights: npt.NDArray[np.float64] | None = None,
    ) -> Choice:
        scores = {a.pool: 1.0 / (1.0 + a.in_flight / max(a.ready_endpoints, 1)) for a in arms}
        best = max(scores.values())
        tied = [a.pool for a in arms if scores[a.pool] == best]
        return Choice(tied[next(self._turn) % len(tied)], scores)

    def update(
        self, arm: str, features: npt.NDArray[np.float64], scores: Mapping[str, float]
    ) -> None:
        """Load is observed, not learned."""


class RoundRobin:
    """Each arm in turn."""

    name = "round-robin"

    def __init__(self) -> None:
        self._turn = itertools.count()

    def choose(
        self,
        features: npt.NDArray[np.float64],
        arms: Sequence[Arm],
        weights: npt.NDArray[np.float64] | None = None,
    ) -> Choice:
        pick = arms[next(self._turn) % len(arms)].pool
        return Choice(pick, {a.pool: float(a.pool == pick) for a in arms})

    def update(
        self, arm: str, features: npt.NDArray[np.float64], scores: Mapping[str, float]
    ) -> None:
        """Nothing to learn."""


class UniformRandom:
    """An arm uniformly at random (the logging policy of offline replay)."""

    name = "random"

    def __init__(self, seed: int | None = None) -> None:
        self._rng = random.Random(seed)  # noqa: S311 (not for security)

    def choose(
        self,
        features: npt.NDArray[np.float64],
        arms: Sequence[Arm],
        weights: npt.NDArray[np.float64] | None = None,
    ) -> Choice:
        pick = self._rng.choice(arms).pool
        return Choice(pick, {a.pool: 1.0 / len(arms) for a in arms})

    def update(
        self, arm: str, features: npt.NDArray[np.float64], scores: Mapping[str, float]
    ) -> None:
        """Nothing to learn."""


class Static:
    """Always one pool: the one named when it is among the arms, else the first arm listed."""

    name = "static"

    def __init__(self, pool: str = "") -> None:
        self.pool = pool

    def choose(
        self,
        features: npt.NDArray[np.float64],
        arms: Sequence[Arm],
        weights: npt.NDArray[np.float64] | None = None,
    ) -> Choice:
        pick = next((a.pool for a in arms if a.pool == self.pool), arms[0].pool)
        return Choice(pick, {a.pool: float(a.pool == pick) for a in arms})

    def update(
        self, arm: str, features: npt.NDArray[np.float64], scores: Mapping[str, float]
    ) -> None:
        """Nothing to learn."""
