"""Build the selection policy a RoutingPolicy names, with its parameters checked."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from fleetroute.v1alpha1 import config_pb2
from fleetroute_router.policies.base import SelectionPolicy
from fleetroute_router.policies.baseline import LeastLoaded, RoundRobin, Static, UniformRandom

log = logging.getLogger(__name__)

Factory = Callable[[Mapping[str, float]], SelectionPolicy]


def _seed(parameters: Mapping[str, float]) -> int | None:
    return int(parameters["seed"]) if "seed" in parameters else None


FACTORIES: Mapping[str, Factory] = {
    "least-loaded": lambda _: LeastLoaded(),
    "round-robin": lambda _: RoundRobin(),
    "random": lambda p: UniformRandom(_seed(p)),
    "static": lambda _: Static(),
}

# Learning algorithms the API accepts whose implementation is not in this build yet: they are
# served by the least-loaded baseline, and decisions say so in their `algorithm` field.
NOT_YET_LEARNING = frozenset({"linucb", "thompson", "epsilon-greedy"})


def build(algorithm: config_pb2.Algorithm) -> SelectionPolicy:
    """A fresh policy for an algorithm; ValueError for an unknown name."""
    name = algorithm.name or "least-loaded"
    if name in NOT_YET_LEARNING:
        log.warning("algorithm %s is served by the least-loaded baseline in this build", name)
        name = "least-loaded"
    factory = FACTORIES.get(name)
    if factory is None:
        raise ValueError(f"unknown algorithm {name!r}; known: {', '.join(sorted(FACTORIES))}")
    return factory(dict(algorithm.parameters))
