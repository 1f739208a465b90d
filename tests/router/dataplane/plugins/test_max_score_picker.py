"""max-score-picker: the best candidate; ties at random among the best."""

from __future__ import annotations

from fleetroute_router.endpoints.context import PluginContext
from fleetroute_router.endpoints.interfaces import Candidate, PickRequest
from fleetroute_router.endpoints.plugins.max_score_picker import factory


def test_the_highest_score_wins_and_ties_spread() -> None:
    picker = factory("picker", {"seed": 7}, PluginContext())
    a, b, c = Candidate("a", "p"), Candidate("b", "p"), Candidate("c", "p")
    request = PickRequest("x", 1)
    assert picker.pick(request, [(a, 0.2), (b, 0.9), (c, 0.5)]) is b
    picks = {picker.pick(request, [(a, 0.7), (b, 0.7), (c, 0.1)]).address for _ in range(50)}
    assert picks == {"a", "b"}
