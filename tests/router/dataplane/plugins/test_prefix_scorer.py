"""prefix-cache-scorer: affinity to the endpoint that last got the prompt's leading blocks."""

from __future__ import annotations

from fleetroute_router.endpoints.context import PluginContext
from fleetroute_router.endpoints.interfaces import Candidate, PickRequest
from fleetroute_router.endpoints.plugins.prefix_scorer import factory

SYSTEM = "You are a helpful assistant for the fleet. " * 10


def test_the_endpoint_that_saw_the_prefix_scores_by_matched_blocks() -> None:
    scorer = factory("prefix", {"blockChars": 64}, PluginContext())
    a, b = Candidate("a", "p"), Candidate("b", "p")
    first = PickRequest(SYSTEM + "first question", 100)
    assert scorer.score(first, [a, b]) == {"a": 0.0, "b": 0.0}
    scorer.picked(first, a)
    second = PickRequest(SYSTEM + "another question entirely, longer than the first", 100)
    scores = scorer.score(second, [a, b])
    assert scores["b"] == 0.0
    assert 0.5 < scores["a"] < 1.0  # the shared system prompt, not the new question
    assert scorer.cached_tokens(second, "a") > 0
    assert scorer.cached_tokens(second, "b") == 0


def test_the_index_is_bounded() -> None:
    scorer = factory("prefix", {"capacityBlocks": 4}, PluginContext())
    request = PickRequest("y" * 64 * 10, 160)
    scorer.picked(request, Candidate("a", "p"))
    assert scorer.matched_blocks(request, "a") == 0  # the leading blocks were evicted
