"""kv-cache-utilization-scorer: prefers endpoints with more free KV cache."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fleetroute_router.endpoints import params
from fleetroute_router.endpoints.context import PluginContext
from fleetroute_router.endpoints.interfaces import Candidate, PickRequest

TYPE = "kv-cache-utilization-scorer"


def _unit(value: float) -> bool:
    return 0.0 <= value <= 1.0


@dataclass(frozen=True)
class Parameters:
    missing_score: float = 0.5

    def __post_init__(self) -> None:
        if not _unit(self.missing_score):
            raise ValueError(f"missingScore must be in [0, 1], got {self.missing_score}")


class KvCacheScorer:
    type = TYPE

    def __init__(self, name: str = TYPE, parameters: Parameters | None = None) -> None:
        self.name, self.parameters = name, parameters or Parameters()

    def score(self, request: PickRequest, candidates: Sequence[Candidate]) -> Mapping[str, float]:
        scores = {}
        for c in candidates:
            usage = c.metrics.kv_cache_usage if c.metrics is not None else None
            scores[c.address] = self.parameters.missing_score if usage is None else 1.0 - usage
        return scores


def factory(name: str, raw: Mapping[str, Any], context: PluginContext) -> KvCacheScorer:
    return KvCacheScorer(name, params.decode(Parameters, raw))
