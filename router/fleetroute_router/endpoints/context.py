"""What plugin factories may share: the router's circuit breakers and clock."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fleetroute_router.endpoints.breaker import CircuitBreakers
from fleetroute_router.endpoints.interfaces import Plugin


@dataclass(frozen=True)
class PluginContext:
    breakers: CircuitBreakers = field(default_factory=CircuitBreakers)
    clock: Callable[[], float] = time.monotonic


# (name, parameters, context) -> plugin; raises ValueError for bad parameters.
Factory = Callable[[str, Mapping[str, Any], PluginContext], Plugin]
