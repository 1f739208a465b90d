"""The routing core with a real bandit: quality from feedback, the rest from outcomes."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from fleetroute.v1alpha1 import config_pb2
from fleetroute_router.core import RoutingCore
from fleetroute_router.dataplane import DataPlane
from fleetroute_router.decisions import Decision
from fleetroute_router.features import DIMENSION, RequestInfo
from fleetroute_router.fleet import Fleet
from fleetroute_router.objectives import OBJECTIVES
from fleetroute_router.policies.bandits import LinearBandit, LinUCB
from tests.router.conftest import serve

GOOD = "llm/qwen-14b-a10g"
COUNTRIES = ["Peru", "France", "Kenya", "Japan", "Chile", "Norway", "Egypt", "Canada"]


def _quality_only(config: config_pb2.RouterConfig) -> DataPlane:
    config.policies[0].objective.CopyFrom(config_pb2.Objective(quality=1.0))
    config.policies[0].algorithm.parameters["alpha"] = 0.2
    config.policies[0].algorithm.parameters["seed"] = 1
    return DataPlane(Fleet.from_config(config), scrape=False)


def test_the_core_learns_the_pool_whose_answers_are_graded_best(
    example_config: config_pb2.RouterConfig,
) -> None:
    dataplane = _quality_only(example_config)
    assert isinstance(dataplane.core.selectors()["llm/chat"], LinUCB)
    for step in range(80):
        prompt = f"What is the capital of {COUNTRIES[step % 6]}?"
        decision = serve(dataplane, prompt, quality=None)
        assert decision.algorithm == "linucb"
        assert len(decision.features) == DIMENSION
        dataplane.receive_feedback(
            None, decision_id=decision.id, score=float(decision.pool == GOOD), source="judge"
        )
    chosen = [serve(dataplane, f"Capital of {c}?").pool for c in COUNTRIES[6:] * 5]
    assert chosen.count(GOOD) >= 9


def test_without_feedback_quality_is_neither_one_nor_zero(
    example_config: config_pb2.RouterConfig,
) -> None:
    dataplane = DataPlane(Fleet.from_config(example_config), scrape=False)
    for _ in range(20):
        serve(dataplane, "Hi")
    selector = dataplane.core.selectors()["llm/chat"]
    assert isinstance(selector, LinearBandit)
    observed = dict(zip(OBJECTIVES, selector.model.observations.sum(axis=1), strict=True))
    assert observed["quality"] == 0.0
    for name in ("latency", "energy", "cost"):  # the example policy discounts by 0.999
        assert observed[name] == pytest.approx(20.0, rel=0.01)
    assert dataplane.core.quality_unobserved("llm/chat")
    (summary,) = dataplane.core.stats("llm/chat").values()
    assert summary.quality_observations == 0.0
    assert all("quality" not in arm.means for arm in summary.arms)


def test_a_grade_is_learned_into_the_quality_estimate_only(
    example_config: config_pb2.RouterConfig,
) -> None:
    dataplane = DataPlane(Fleet.from_config(example_config), scrape=False)
    decision = serve(dataplane, "Hi", quality=0.25)
    selector = dataplane.core.selectors()["llm/chat"]
    assert isinstance(selector, LinearBandit)
    k = selector.model.arms.index(decision.pool)
    assert selector.model.observations[:, k].tolist() == [1.0, 1.0, 1.0, 1.0]
    assert selector.model.reward_sum[0, k] == pytest.approx(0.25)
    assert not dataplane.core.quality_unobserved("llm/chat")


def test_editing_the_weights_keeps_what_was_learned_and_changes_the_choice(
    example_config: config_pb2.RouterConfig,
) -> None:
    example_config.policies[0].algorithm.parameters["alpha"] = 0.0
    dataplane = DataPlane(Fleet.from_config(example_config), scrape=False)
    fast, good = "llm/llama-8b-l4", "llm/llama-70b-decode"
    for _ in range(60):
        for pool in (fast, good):
            decision = dataplane.core.route(RequestInfo(model="fleet/chat", prompt="Hi"))
            dataplane.core.release(decision)
            quality, latency = (0.3, 1.0) if pool == fast else (0.95, 0.2)
            dataplane.core.learn(
                _at(decision, pool), {"quality": quality, "latency": latency, "cost": 0.5}
            )
    before = dataplane.core.selectors()["llm/chat"]
    quality_first = config_pb2.Objective(quality=0.9, latency=0.1)
    latency_first = config_pb2.Objective(quality=0.1, latency=0.9)
    for objective, expected in ((quality_first, good), (latency_first, fast)):
        config = config_pb2.RouterConfig()
        config.CopyFrom(example_config)
        config.policies[0].objective.CopyFrom(objective)
        config.policies[0].candidates[:] = [fast, good]
        dataplane.set_fleet(Fleet.from_config(config))
        assert dataplane.core.selectors()["llm/chat"] is before  # nothing relearned
        picks = {_pick(dataplane.core) for _ in range(5)}
        assert picks == {expected}


def test_a_request_can_override_the_weights(example_config: config_pb2.RouterConfig) -> None:
    example_config.policies[0].algorithm.parameters["alpha"] = 0.0
    example_config.policies[0].candidates[:] = ["llm/llama-8b-l4", "llm/llama-70b-decode"]
    core = RoutingCore(Fleet.from_config(example_config))
    for _ in range(40):
        d = core.route(RequestInfo(model="fleet/chat", prompt="Hi"))
        core.release(d)
        core.learn(_at(d, "llm/llama-8b-l4"), {"quality": 0.2, "energy": 1.0})
        core.learn(_at(d, "llm/llama-70b-decode"), {"quality": 1.0, "energy": 0.1})
    energy = config_pb2.Objective(energy=1.0)
    decision = core.route(RequestInfo(model="fleet/chat", prompt="Hi"), objective=energy)
    assert decision.pool == "llm/llama-8b-l4"
    assert decision.weights is not None
    np.testing.assert_allclose(decision.weights, [0.0, 0.0, 1.0, 0.0])
    assert core.route(RequestInfo(model="fleet/chat", prompt="Hi")).pool == "llm/llama-70b-decode"


def test_the_slo_guard_steers_away_from_a_pool_load_makes_late(
    example_config: config_pb2.RouterConfig,
) -> None:
    example_config.policies[0].algorithm.name = "round-robin"
    example_config.policies[0].algorithm.ClearField("parameters")
    core = RoutingCore(Fleet.from_config(example_config))
    held = []
    for _ in range(12):
        decision = core.route(RequestInfo(model="fleet/chat", prompt="x"))
        held.append(decision)  # none finishes: queues build up on every pool
        if decision.pool == "llm/llama-70b-decode":
            core.guard.observe(decision.pool, 0.0, 0.4, 0.02)  # fast alone, 0.4 s of 0.5
        else:
            core.guard.observe(decision.pool, 0.0, 0.05, 0.01)
    # Two requests queued per 70B endpoint: 0.4 · 3 > 0.5 s; the others stay well in.
    pools = {core.route(RequestInfo(model="fleet/chat", prompt="x")).pool for _ in range(6)}
    assert "llm/llama-70b-decode" not in pools
    assert len(pools) == 3


def test_bad_parameters_in_a_policy_fail_with_a_clear_error(
    example_config: config_pb2.RouterConfig,
) -> None:
    example_config.policies[0].algorithm.parameters["alpha"] = -1
    with pytest.raises(
        ValueError, match=r"parameter alpha=-1.0 is out of range; allowed \[0, 100\]"
    ):
        RoutingCore(Fleet.from_config(example_config))


def _at(decision: Decision, pool: str) -> Decision:
    return dataclasses.replace(decision, pool=pool)


def _pick(core: RoutingCore) -> str:
    decision = core.route(RequestInfo(model="fleet/chat", prompt="Hi"))
    core.release(decision)
    return decision.pool
