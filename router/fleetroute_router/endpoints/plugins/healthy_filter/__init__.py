"""healthy-filter: drops endpoints whose circuit breaker is open."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fleetroute_router.endpoints import params
from fleetroute_router.endpoints.breaker import CircuitBreakers
from fleetroute_router.endpoints.context import PluginContext
from fleetroute_router.endpoints.interfaces import Candidate, PickRequest

TYPE = "healthy-filter"


@dataclass(frozen=True)
class Parameters:
    pass


class HealthyFilter:
    type = TYPE

    def __init__(self, breakers: CircuitBreakers, name: str = TYPE) -> None:
        self.name, self._breakers = name, breakers

    def filter(self, request: PickRequest, candidates: Sequence[Candidate]) -> list[Candidate]:
        return [c for c in candidates if not self._breakers.is_open(c.address)]


def factory(name: str, raw: Mapping[str, Any], context: PluginContext) -> HealthyFilter:
    params.decode(Parameters, raw)
    return HealthyFilter(context.breakers, name)
