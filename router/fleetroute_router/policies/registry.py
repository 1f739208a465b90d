"""Build the selection policy a RoutingPolicy names, with its parameters checked."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from fleetroute.v1alpha1 import config_pb2
from fleetroute_router.objectives import OBJECTIVES
from fleetroute_router.policies.bandits import EpsilonGreedy, LinearThompson, LinUCB
from fleetroute_router.policies.base import SelectionPolicy
from fleetroute_router.policies.baseline import LeastLoaded, RoundRobin, Static, UniformRandom


@dataclass(frozen=True)
class Parameter:
    """A numeric parameter's allowed range and default; `integer` ones must be whole."""

    low: float
    high: float
    default: float
    low_open: bool = False
    integer: bool = False

    def check(self, algorithm: str, name: str, value: float) -> float:
        below = value <= self.low if self.low_open else value < self.low
        if not math.isfinite(value) or below or value > self.high:
            bracket = "(" if self.low_open else "["
            raise ValueError(
                f"{algorithm}: parameter {name}={value} is out of range; "
                f"allowed {bracket}{self.low:g}, {self.high:g}]"
            )
        if self.integer and value != int(value):
            raise ValueError(f"{algorithm}: parameter {name}={value} must be a whole number")
        return value


SEED = Parameter(0, 2**31 - 1, -1, integer=True)
RIDGE = {
    "regularization": Parameter(0, 1000, 1.0, low_open=True),
    "discount": Parameter(0, 1, 1.0, low_open=True),
    "seed": SEED,
}
PARAMETERS: Mapping[str, Mapping[str, Parameter]] = {
    "linucb": {"alpha": Parameter(0, 100, 1.0), **RIDGE},
    "thompson": {"exploration": Parameter(0, 100, 0.5), **RIDGE},
    "epsilon-greedy": {"epsilon": Parameter(0, 1, 0.1), **RIDGE},
    "random": {"seed": SEED},
    "round-robin": {},
    "static": {},
    "least-loaded": {},
}


def _seed(p: Mapping[str, float]) -> int | None:
    return int(p["seed"]) if p["seed"] >= 0 else None


def _ridge(p: Mapping[str, float]) -> dict[str, float]:
    return {"regularization": p["regularization"], "discount": p["discount"]}


Factory = Callable[[Mapping[str, float], Sequence[str]], SelectionPolicy]
FACTORIES: Mapping[str, Factory] = {
    "linucb": lambda p, o: LinUCB(alpha=p["alpha"], seed=_seed(p), objectives=o, **_ridge(p)),
    "thompson": lambda p, o: LinearThompson(
        exploration=p["exploration"], seed=_seed(p), objectives=o, **_ridge(p)
    ),
    "epsilon-greedy": lambda p, o: EpsilonGreedy(
        epsilon=p["epsilon"], seed=_seed(p), objectives=o, **_ridge(p)
    ),
    "random": lambda p, _: UniformRandom(_seed(p)),
    "round-robin": lambda _, __: RoundRobin(),
    "static": lambda _, __: Static(),
    "least-loaded": lambda _, __: LeastLoaded(),
}


def parameters(name: str, given: Mapping[str, float]) -> dict[str, float]:
    """The algorithm's parameters with defaults filled in; ValueError naming any bad one."""
    allowed = PARAMETERS.get(name)
    if allowed is None:
        raise ValueError(f"unknown algorithm {name!r}; known: {', '.join(sorted(PARAMETERS))}")
    unknown = sorted(set(given) - set(allowed))
    if unknown:
        raise ValueError(
            f"{name}: unknown parameter {unknown[0]!r}; "
            f"allowed: {', '.join(sorted(allowed)) or 'none'}"
        )
    checked = {key: spec.default for key, spec in allowed.items()}
    for key, value in given.items():
        checked[key] = allowed[key].check(name, key, float(value))
    return checked


def create(
    name: str,
    given: Mapping[str, float] | None = None,
    objectives: Sequence[str] = ("quality",),
) -> SelectionPolicy:
    """A fresh policy by name and parameters, learning the given objectives (one reward, called
    quality, unless told); ValueError for an unknown name or bad parameter."""
    checked = parameters(name, given or {})
    return FACTORIES[name](checked, objectives)


def build(algorithm: config_pb2.Algorithm) -> SelectionPolicy:
    """A fresh policy for a RouterConfig algorithm (least-loaded when unnamed), learning every
    objective a RoutingPolicy weighs."""
    return create(algorithm.name or "least-loaded", dict(algorithm.parameters), OBJECTIVES)
