"""kv-cache-utilization-scorer: 1 - usage, a configured score when unknown."""

from __future__ import annotations

import pytest

from fleetroute_router.endpoints.context import PluginContext
from fleetroute_router.endpoints.interfaces import Candidate, EndpointMetrics, PickRequest
from fleetroute_router.endpoints.plugins.kv_cache_scorer import factory


def test_free_cache_scores_higher_and_unknown_gets_the_default() -> None:
    scorer = factory("kv", {"missingScore": 0.25}, PluginContext())
    candidates = [
        Candidate("a", "p", EndpointMetrics(kv_cache_usage=0.2)),
        Candidate("b", "p", EndpointMetrics()),
        Candidate("c", "p", None),
    ]
    assert scorer.score(PickRequest("x", 1), candidates) == pytest.approx(
        {"a": 0.8, "b": 0.25, "c": 0.25}
    )


@pytest.mark.parametrize("raw", [{"missingScore": 2.0}, {"missingScore": "high"}])
def test_bad_parameters_are_rejected(raw: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="missingScore"):
        factory("kv", raw, PluginContext())
