"""slo-ttft-scorer: predicts each endpoint's time to first token and scores it against the SLO."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fleetroute_router.endpoints import params, signals
from fleetroute_router.endpoints.context import PluginContext
from fleetroute_router.endpoints.interfaces import Candidate, PickRequest

TYPE = "slo-ttft-scorer"


@dataclass(frozen=True)
class Parameters:
    default_slo_seconds: float = params.positive(1.0)
    smoothing: float = params.positive(0.2)
    prior_seconds: float = params.positive(0.05)


class TtftScorer:
    """predicted = unit(e) * (1 + load(e)); unit(e) is an exponentially weighted mean of
    observed ttft / (1 + load at pick) per endpoint (the mean over endpoints, or the prior,
    before the endpoint has any)."""

    type = TYPE

    def __init__(self, name: str = TYPE, parameters: Parameters | None = None) -> None:
        self.name, self.parameters = name, parameters or Parameters()
        self._unit: dict[str, float] = {}

    def predict(self, candidate: Candidate) -> float:
        unit = self._unit.get(candidate.address)
        if unit is None:
            known = list(self._unit.values())
            unit = sum(known) / len(known) if known else self.parameters.prior_seconds
        return unit * (1.0 + signals.load(candidate))

    def score(self, request: PickRequest, candidates: Sequence[Candidate]) -> Mapping[str, float]:
        slo = request.ttft_slo_s or self.parameters.default_slo_seconds
        return {c.address: max(0.0, 1.0 - self.predict(c) / (2.0 * slo)) for c in candidates}

    def observed(self, address: str, load_at_pick: float, ttft_s: float) -> None:
        sample = ttft_s / (1.0 + max(load_at_pick, 0.0))
        previous = self._unit.get(address)
        alpha = min(self.parameters.smoothing, 1.0)
        self._unit[address] = sample if previous is None else previous + alpha * (sample - previous)

    def forget(self, addresses: Collection[str]) -> None:
        """Drop the units of endpoints that left the fleet."""
        for address in addresses:
            self._unit.pop(address, None)


def factory(name: str, raw: Mapping[str, Any], context: PluginContext) -> TtftScorer:
    return TtftScorer(name, params.decode(Parameters, raw))
