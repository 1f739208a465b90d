"""The routing core with a real bandit: learns from reports, expiries and the SLO guard."""

from __future__ import annotations

import pytest

from fleetroute.v1alpha1 import config_pb2
from fleetroute_router import reward
from fleetroute_router.core import RoutingCore
from fleetroute_router.features import DIMENSION, RequestInfo
from fleetroute_router.fleet import Fleet
from fleetroute_router.policies.bandits import LinearBandit, LinUCB

GOOD = "llm/qwen-14b-a10g"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _outcome(pool: str) -> reward.Outcome:
    return reward.Outcome(
        success=True,
        ttft_s=0.1,
        e2e_s=1.0,
        completion_tokens=100,
        quality=1.0 if pool == GOOD else 0.0,
    )


def test_the_core_learns_the_pool_with_the_best_reward(
    example_config: config_pb2.RouterConfig,
) -> None:
    example_config.policies[0].algorithm.parameters["alpha"] = 0.2
    example_config.policies[0].algorithm.parameters["seed"] = 1
    core = RoutingCore(Fleet.from_config(example_config))
    assert isinstance(core.selectors()["llm/chat"], LinUCB)
    countries = ["Peru", "France", "Kenya", "Japan", "Chile", "Norway", "Egypt", "Canada"]
    for step in range(80):
        prompt = f"What is the capital of {countries[step % 6]}?"
        decision = core.route(RequestInfo(model="fleet/chat", prompt=prompt))
        assert decision.algorithm == "linucb"
        assert len(decision.features) == DIMENSION
        core.report(decision.id, _outcome(decision.pool))
    chosen = []
    for country in countries[6:] * 5:  # prompts it has not seen
        decision = core.route(RequestInfo(model="fleet/chat", prompt=f"Capital of {country}?"))
        core.report(decision.id, _outcome(decision.pool))  # else the queue trips the SLO guard
        chosen.append(decision.pool)
    assert chosen.count(GOOD) >= 9


def test_expired_decisions_are_counted_and_learn_from_partial_outcomes(
    example_config: config_pb2.RouterConfig,
) -> None:
    clock = Clock()
    core = RoutingCore(Fleet.from_config(example_config), decision_ttl_s=10, clock=clock)
    measured = core.route(RequestInfo(model="fleet/chat", prompt="x"))
    silent = core.route(RequestInfo(model="fleet/chat", prompt="y"))
    core.record_partial(
        measured.id, reward.Outcome(success=True, ttft_s=0.1, e2e_s=1.0, completion_tokens=20)
    )
    core.record_partial("never-made", reward.Outcome(success=True, ttft_s=0.1))
    clock.now = 11
    core.route(RequestInfo(model="fleet/chat", prompt="z"))  # sweeps both
    assert core.expired_total == 2
    selector = core.selectors()["llm/chat"]
    assert isinstance(selector, LinearBandit)
    learned = dict(zip(selector.model.arms, selector.model.observations, strict=True))
    assert learned.get(measured.pool) == 1.0
    assert sum(learned.values()) == 1.0  # the silent one taught nothing
    assert silent.id != measured.id


def test_expire_learn_uses_latency_energy_and_cost_only(
    example_config: config_pb2.RouterConfig,
) -> None:
    core = RoutingCore(Fleet.from_config(example_config))
    decision = core.route(RequestInfo(model="fleet/chat", prompt="x"))
    value = core.expire_learn(
        decision, reward.Outcome(success=True, ttft_s=0.1, e2e_s=0.2, completion_tokens=10)
    )
    assert value is not None
    assert 0.0 < value <= 1.0
    assert core.expire_learn(decision, reward.Outcome(success=True)) is None


def test_the_slo_guard_steers_away_from_a_slow_pool(
    example_config: config_pb2.RouterConfig,
) -> None:
    example_config.policies[0].algorithm.name = "round-robin"
    example_config.policies[0].algorithm.ClearField("parameters")
    core = RoutingCore(Fleet.from_config(example_config))
    for _ in range(8):
        decision = core.route(RequestInfo(model="fleet/chat", prompt="x"))
        slow = decision.pool == "llm/llama-70b-decode"
        core.report(
            decision.id,
            reward.Outcome(
                success=True,
                ttft_s=3.0 if slow else 0.1,
                e2e_s=4.0 if slow else 1.1,
                completion_tokens=50,
            ),
        )
    pools = {core.route(RequestInfo(model="fleet/chat", prompt="x")).pool for _ in range(12)}
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
