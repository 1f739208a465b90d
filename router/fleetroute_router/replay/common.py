"""What both replay suites share: building policies, featurising prompts, warm starts."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from fleetroute_router.features import RequestInfo
from fleetroute_router.features.text import text_vector
from fleetroute_router.policies import registry
from fleetroute_router.policies.base import Arm, SelectionPolicy
from fleetroute_router.policies.baseline import Static

Matrix = npt.NDArray[np.float64]
# Rows of features for requests, in order (the text features, maybe with semantic ones).
Featurizer = Callable[[Sequence[RequestInfo]], Matrix]


def text_matrix(requests: Sequence[RequestInfo]) -> Matrix:
    """The text feature vectors of requests, one row each."""
    return np.stack([text_vector(r)[0] for r in requests])


@dataclass(frozen=True)
class PolicySpec:
    """A policy by name with its parameters (checked by the router's registry)."""

    name: str
    parameters: Mapping[str, float]

    def build(self, seed: int, static_pool: str = "") -> SelectionPolicy:
        """A fresh policy; `static` serves `static_pool` (the best model of the training data)."""
        if self.name == "static":
            registry.parameters("static", self.parameters)
            return Static(static_pool)
        given = dict(self.parameters)
        if "seed" in registry.PARAMETERS[self.name]:
            given["seed"] = float(seed)
        return registry.create(self.name, given)


def parse_parameters(items: Sequence[str]) -> dict[str, float]:
    """`--param alpha=0.3` values as a mapping; ValueError for a malformed one."""
    parsed = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--param takes NAME=NUMBER, got {item!r}")
        try:
            parsed[key.strip()] = float(value)
        except ValueError as error:
            raise ValueError(f"--param takes NAME=NUMBER, got {item!r}") from error
    return parsed


def arms(names: Sequence[str]) -> list[Arm]:
    """Arms for offline replay: every model ready, nothing in flight."""
    return [Arm(name, 1, 0) for name in names]


def warm_start(
    policy: SelectionPolicy,
    rows: Sequence[tuple[int, str, float]],
    features: Matrix,
    seed: int,
) -> None:
    """Teach a policy (feature row index, arm, reward) outcomes in a seeded order."""
    order = np.random.default_rng(seed).permutation(len(rows))
    for i in order:
        row, arm, reward = rows[int(i)]
        policy.update(arm, features[row], {"quality": reward})


def best_of(means: Mapping[str, float]) -> tuple[str, float]:
    """The key with the highest value (ties: first by name)."""
    name = max(sorted(means), key=lambda k: means[k])
    return name, means[name]
