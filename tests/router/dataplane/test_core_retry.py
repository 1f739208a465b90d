"""RoutingCore.retry: moving a decision to another endpoint, and keeping it when none is left."""

from __future__ import annotations

from typing import Any

import pytest

from fleetroute_router.core import RoutingCore
from fleetroute_router.dataplane import DataPlane
from fleetroute_router.features import RequestInfo
from fleetroute_router.load import EndpointPick

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
    core.release(moved)
    assert core.load.in_flight(moved.endpoint) == 0


def test_without_another_endpoint_the_decision_keeps_its_load(core: RoutingCore) -> None:
    request = RequestInfo(model="meta-llama/Llama-3.1-8B-Instruct", prompt="hi")
    decision = core.route(request)
    assert core.retry(decision, request, L4) is None
    assert core.load.in_flight(decision.endpoint) == 1
    core.release(decision)
    assert core.load.in_flight(decision.endpoint) == 0


def test_abandon_frees_the_endpoint_without_learning(dataplane: DataPlane) -> None:
    flight = dataplane.route(RequestInfo(model="fleet/chat", prompt="hi"))
    dataplane.abandoned(flight)
    assert dataplane.load.in_flight(flight.decision.endpoint) == 0
    assert all(a.rewards == 0 for a in dataplane.core.stats("llm/chat")["llm/chat"].arms)


def test_a_failed_request_opens_no_feedback_and_scores_zero(dataplane: DataPlane) -> None:
    flight = dataplane.route(RequestInfo(model="fleet/chat", prompt="hi"))
    dataplane.failed(flight)
    (arm,) = [a for a in dataplane.core.stats("llm/chat")["llm/chat"].arms if a.decisions]
    assert arm.means == {"quality": 0.0, "latency": 0.0, "energy": 0.0, "cost": 0.0}
    assert flight.decision.id not in [a.decision.id for a in dataplane.feedback_store.items()]


def test_the_policy_ttft_slo_reaches_the_endpoint_pick_on_route_and_retry(
    core: RoutingCore, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[float] = []
    choose = core.endpoints.choose

    def recording(*args: Any, slo_ttft_s: float = 0.0, **kwargs: Any) -> EndpointPick | None:
        asked.append(slo_ttft_s)
        return choose(*args, slo_ttft_s=slo_ttft_s, **kwargs)

    monkeypatch.setattr(core.endpoints, "choose", recording)
    request = RequestInfo(model="fleet/chat", prompt="hi")
    decision = core.route(request)
    assert asked == [0.5]  # llm/chat's slo.ttft
    moved = core.retry(decision, request, {decision.endpoint})
    assert moved is not None
    assert len(asked) > 1
    assert set(asked[1:]) == {0.5}
    core.release(moved)

    asked.clear()
    concrete = RequestInfo(model="meta-llama/Llama-3.1-8B-Instruct", prompt="hi")
    decision = core.route(concrete)
    assert core.retry(decision, concrete, {decision.endpoint}) is not None
    assert set(asked) == {0.0}  # a served model by name has no policy, so no SLO
