"""healthy-filter drops endpoints whose breaker is open."""

from __future__ import annotations

from fleetroute_router.endpoints.breaker import CircuitBreakers
from fleetroute_router.endpoints.context import PluginContext
from fleetroute_router.endpoints.interfaces import Candidate, PickRequest
from fleetroute_router.endpoints.plugins import healthy_filter


def test_open_breakers_are_filtered_out() -> None:
    breakers = CircuitBreakers(failure_threshold=1)
    plugin = healthy_filter.factory("healthy", {}, PluginContext(breakers=breakers))
    candidates = [Candidate("a:1", "p"), Candidate("b:1", "p")]
    request = PickRequest("x", 1)
    assert plugin.filter(request, candidates) == candidates
    breakers.failure("a:1")
    assert [c.address for c in plugin.filter(request, candidates)] == ["b:1"]
    assert plugin.type == healthy_filter.TYPE
