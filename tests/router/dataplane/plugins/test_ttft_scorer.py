"""slo-ttft-scorer: learns per-endpoint TTFT per unit of load and scores against the SLO."""

from __future__ import annotations

import pytest

from fleetroute_router.endpoints.context import PluginContext
from fleetroute_router.endpoints.interfaces import Candidate, EndpointMetrics, PickRequest
from fleetroute_router.endpoints.plugins.ttft_scorer import factory


def test_slow_endpoints_score_lower_against_the_slo() -> None:
    scorer = factory("ttft", {"smoothing": 1.0}, PluginContext())
    fast, slow = Candidate("fast", "p"), Candidate("slow", "p")
    scorer.observed("fast", 0.0, 0.1)
    scorer.observed("slow", 0.0, 0.9)
    scores = scorer.score(PickRequest("x", 1, ttft_slo_s=0.5), [fast, slow])
    assert scores == pytest.approx({"fast": 0.9, "slow": 0.1})


def test_load_raises_the_prediction_and_unknown_endpoints_get_the_mean() -> None:
    scorer = factory("ttft", {"smoothing": 1.0}, PluginContext())
    scorer.observed("a", 1.0, 0.2)  # 0.1 s per unit of load
    busy = Candidate("a", "p", EndpointMetrics(waiting=3, running=0))
    assert scorer.predict(busy) == pytest.approx(0.4)
    assert scorer.predict(Candidate("new", "p")) == pytest.approx(0.1)


def test_parameters_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        factory("ttft", {"defaultSloSeconds": 0}, PluginContext())
