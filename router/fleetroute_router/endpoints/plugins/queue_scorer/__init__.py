"""queue-scorer: prefers endpoints with fewer waiting requests (min-max normalised)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fleetroute_router.endpoints import params, signals
from fleetroute_router.endpoints.context import PluginContext
from fleetroute_router.endpoints.interfaces import Candidate, PickRequest

TYPE = "queue-scorer"


@dataclass(frozen=True)
class Parameters:
    pass


class QueueScorer:
    type = TYPE

    def __init__(self, name: str = TYPE) -> None:
        self.name = name

    def score(self, request: PickRequest, candidates: Sequence[Candidate]) -> Mapping[str, float]:
        depths = {c.address: signals.queue_depth(c) for c in candidates}
        low, high = min(depths.values(), default=0.0), max(depths.values(), default=0.0)
        if high == low:
            return dict.fromkeys(depths, 1.0)
        return {a: (high - q) / (high - low) for a, q in depths.items()}


def factory(name: str, raw: Mapping[str, Any], context: PluginContext) -> QueueScorer:
    params.decode(Parameters, raw)
    return QueueScorer(name)
