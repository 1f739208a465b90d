"""The interface every selection policy implements."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol

import numpy as np
import numpy.typing as npt


class Arm(NamedTuple):
    """A candidate pool as a policy sees it at decision time (a tuple: one is made per
    candidate on every request)."""

    pool: str
    ready_endpoints: int
    in_flight: int


@dataclass(frozen=True)
class Choice:
    """The arm a policy chose, with the score it gave each arm."""

    arm: str
    scores: Mapping[str, float]
    # True when the arm is not the one the policy currently believes best (it explores).
    explored: bool = False


class SelectionPolicy(Protocol):
    """Chooses among arms for a feature vector, and learns per objective from scores in [0, 1].

    Arms may differ from one call to the next (pools scale to zero, are added or removed):
    a policy keeps state per arm name and must accept arms it has not seen.
    """

    @property
    def name(self) -> str:
        """The algorithm's name as RoutingPolicies spell it."""
        ...

    def choose(
        self,
        features: npt.NDArray[np.float64],
        arms: Sequence[Arm],
        weights: npt.NDArray[np.float64] | None = None,
    ) -> Choice:
        """Pick one of `arms` (never empty); `weights` combine the objectives' estimates (in
        the policy's objectives order, summing to 1; None: equal weights)."""
        ...

    def update(
        self, arm: str, features: npt.NDArray[np.float64], scores: Mapping[str, float]
    ) -> None:
        """Learn the scores `arm` earned, by objective (only the objectives measured), for a
        request with these features."""
        ...
