"""RoutingCore.retry: moving a decision to another endpoint, and keeping it when none is left."""

from __future__ import annotations

from fleetroute_router import reward
from fleetroute_router.core import RoutingCore
from fleetroute_router.features import RequestInfo

L4 = {"127.0.0.1:8201", "127.0.0.1:8202", "127.0.0.1:8203"}


def test_retry_moves_the_decision_and_its_load(core: RoutingCore) -> None:
    request = RequestInfo(model="meta-llama/Llama-3.1-8B-Instruct", prompt="hi")
    decision = core.route(request)
    moved = core.retry(decision, request, {decision.endpoint})
    assert moved is not None
    assert moved.id == decision.id
    assert moved.endpoint in L4 - {decision.endpoint}
    assert core.load.in_flight(decision.endpoint) == 0
    assert core.load.in_flight(moved.endpoint) == 1
    core.report(moved.id, reward.Outcome(success=True, e2e_s=0.1))
    assert core.load.in_flight(moved.endpoint) == 0


def test_without_another_endpoint_the_decision_stays_pending(core: RoutingCore) -> None:
    request = RequestInfo(model="meta-llama/Llama-3.1-8B-Instruct", prompt="hi")
    decision = core.route(request)
    assert core.retry(decision, request, L4) is None
    assert core.load.in_flight(decision.endpoint) == 1
    core.report(decision.id, reward.Outcome(success=False))  # still known: no error
    assert core.load.in_flight(decision.endpoint) == 0


def test_abandon_frees_the_endpoint_without_learning(core: RoutingCore) -> None:
    decision = core.route(RequestInfo(model="fleet/chat", prompt="hi"))
    core.abandon(decision.id)
    assert core.load.in_flight(decision.endpoint) == 0
