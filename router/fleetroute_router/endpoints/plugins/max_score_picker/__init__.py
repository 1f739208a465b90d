"""max-score-picker: the candidate with the highest weighted score; ties at random."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fleetroute_router.endpoints import params
from fleetroute_router.endpoints.context import PluginContext
from fleetroute_router.endpoints.interfaces import Candidate, PickRequest

TYPE = "max-score-picker"


@dataclass(frozen=True)
class Parameters:
    seed: int = -1
    tolerance: float = params.non_negative(1e-9)


class MaxScorePicker:
    type = TYPE

    def __init__(self, name: str = TYPE, parameters: Parameters | None = None) -> None:
        self.name, self.parameters = name, parameters or Parameters()
        seed = self.parameters.seed
        self._rng = random.Random(None if seed < 0 else seed)  # noqa: S311 (tie-breaking)

    def pick(self, request: PickRequest, scored: Sequence[tuple[Candidate, float]]) -> Candidate:
        best = max(score for _, score in scored)
        tied = [c for c, score in scored if score >= best - self.parameters.tolerance]
        return tied[0] if len(tied) == 1 else self._rng.choice(tied)


def factory(name: str, raw: Mapping[str, Any], context: PluginContext) -> MaxScorePicker:
    return MaxScorePicker(name, params.decode(Parameters, raw))
