"""queue-scorer: min-max normalised waiting queue, falling back to the router's own counts."""

from __future__ import annotations

import pytest

from fleetroute_router.endpoints.context import PluginContext
from fleetroute_router.endpoints.interfaces import Candidate, EndpointMetrics, PickRequest
from fleetroute_router.endpoints.plugins.queue_scorer import QueueScorer, factory


def test_fewer_waiting_scores_higher() -> None:
    scorer = QueueScorer()
    candidates = [
        Candidate("a", "p", EndpointMetrics(waiting=0, running=4)),
        Candidate("b", "p", EndpointMetrics(waiting=5, running=4)),
        Candidate("c", "p", EndpointMetrics(waiting=10, running=4)),
    ]
    assert scorer.score(PickRequest("x", 1), candidates) == {"a": 1.0, "b": 0.5, "c": 0.0}


def test_equal_queues_all_score_one_and_missing_metrics_use_in_flight() -> None:
    scorer = QueueScorer()
    same = [Candidate("a", "p"), Candidate("b", "p")]
    assert scorer.score(PickRequest("x", 1), same) == {"a": 1.0, "b": 1.0}
    stale = [Candidate("a", "p", None, in_flight=3), Candidate("b", "p", None, in_flight=1)]
    assert scorer.score(PickRequest("x", 1), stale) == {"a": 0.0, "b": 1.0}


def test_requests_not_yet_scraped_count_as_waiting() -> None:
    scorer = QueueScorer()
    candidates = [
        Candidate("a", "p", EndpointMetrics(waiting=0, running=1), in_flight=5),
        Candidate("b", "p", EndpointMetrics(waiting=1, running=1), in_flight=2),
    ]
    assert scorer.score(PickRequest("x", 1), candidates) == {"a": 0.0, "b": 1.0}


def test_parameters_are_checked() -> None:
    with pytest.raises(ValueError, match="unknown parameter"):
        factory("q", {"bogus": 1}, PluginContext())
