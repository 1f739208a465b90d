"""The four objectives a policy weighs, and the weight vectors that combine their estimates.

The router learns one estimate per objective per arm (quality, latency, energy, cost), each from
the requests that measured it; a policy's weights — or a request's override, the header
`x-fleetroute-objective: quality=0.8,energy=0.2` — combine them only when choosing. So editing
the weights needs no relearning, and an objective never measured is never counted as 0 or 1.
"""

from __future__ import annotations

import math
from typing import Final

import numpy as np
import numpy.typing as npt

from fleetroute.v1alpha1 import config_pb2
from fleetroute_router import errors

OBJECTIVES: Final = ("quality", "latency", "energy", "cost")
QUALITY: Final = 0
OBJECTIVE_HEADER: Final = "x-fleetroute-objective"
Weights = npt.NDArray[np.float64]


def weights(objective: config_pb2.Objective) -> Weights:
    """The objective's weights in OBJECTIVES order, summing to 1 (all zero: equal weights)."""
    raw = np.array([objective.quality, objective.latency, objective.energy, objective.cost])
    total = float(raw.sum())
    if total <= 0 or not math.isfinite(total):
        return np.full(len(OBJECTIVES), 1.0 / len(OBJECTIVES))
    normalised: Weights = raw / total
    return normalised


def is_set(objective: config_pb2.Objective) -> bool:
    """Whether any weight of the message is set (a RouteRequest's override is optional)."""
    return any((objective.quality, objective.latency, objective.energy, objective.cost))


def checked(objective: config_pb2.Objective) -> config_pb2.Objective:
    """The objective if every weight is finite and in [0, 1] and not all are zero; else
    InvalidRequest naming the problem."""
    for name in OBJECTIVES:
        value = getattr(objective, name)
        if not math.isfinite(value) or not 0.0 <= value <= 1.0:
            raise errors.InvalidRequest(f"objective weight {name}={value} is not in [0, 1]")
    if not is_set(objective):
        raise errors.InvalidRequest("objective weights must not all be zero")
    return objective


def parse(text: str) -> config_pb2.Objective:
    """`quality=0.8,energy=0.2` as an Objective (unnamed weights 0); InvalidRequest when bad."""
    objective = config_pb2.Objective()
    seen: set[str] = set()
    for item in text.split(","):
        name, sep, value = item.partition("=")
        name = name.strip().lower()
        if not sep or name not in OBJECTIVES:
            raise errors.InvalidRequest(
                f"{OBJECTIVE_HEADER}: {item.strip()!r} is not NAME=WEIGHT with NAME one of "
                f"{', '.join(OBJECTIVES)}"
            )
        if name in seen:
            raise errors.InvalidRequest(f"{OBJECTIVE_HEADER}: {name} is given twice")
        seen.add(name)
        try:
            setattr(objective, name, float(value))
        except ValueError:
            raise errors.InvalidRequest(
                f"{OBJECTIVE_HEADER}: weight of {name} is not a number: {value.strip()!r}"
            ) from None
    return checked(objective)
