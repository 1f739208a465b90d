"""The interface every selection policy implements."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class Arm:
    """A candidate pool as a policy sees it at decision time."""

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
    """Chooses among arms for a feature vector, and learns from rewards in [0, 1].

    Arms may differ from one call to the next (pools scale to zero, are added or removed):
    a policy keeps state per arm name and must accept arms it has not seen.
    """

    @property
    def name(self) -> str:
        """The algorithm's name as RoutingPolicies spell it."""
        ...

    def choose(self, features: npt.NDArray[np.float64], arms: Sequence[Arm]) -> Choice:
        """Pick one of `arms` (never empty)."""
        ...

    def update(self, arm: str, features: npt.NDArray[np.float64], reward: float) -> None:
        """Learn that `arm` earned `reward` for a request with these features."""
        ...
