"""Reward: weighted normalised scores, and partial rewards for feedback that never arrived."""

from __future__ import annotations

import pytest
from google.protobuf.duration_pb2 import Duration

from fleetroute.v1alpha1 import config_pb2
from fleetroute_router import energy, reward

POOL = config_pb2.Pool(
    name="p", gpus_per_replica=1, gpu=config_pb2.GpuFigures(max_watts=100, cost_per_gpu_hour=0.036)
)


def _policy(**weights: float) -> config_pb2.Policy:
    return config_pb2.Policy(
        name="x",
        objective=config_pb2.Objective(**weights),
        slo=config_pb2.Slo(ttft=Duration(nanos=500_000_000), tpot=Duration(nanos=50_000_000)),
    )


def test_each_score_is_normalised_and_weighted() -> None:
    outcome = reward.Outcome(success=True, ttft_s=1.0, e2e_s=2.0, completion_tokens=21, quality=0.8)
    scores = reward.score(_policy(quality=1, latency=1, energy=1, cost=1), POOL, outcome)
    assert scores.quality == 0.8
    assert scores.latency == pytest.approx((0.5 / 1.0 + 1.0) / 2)  # TTFT late, TPOT 0.05 met
    joules = energy.modelled_watts(POOL, running=1.0) * 2.0  # the energy module's model, alone
    assert scores.energy == pytest.approx(1 - (joules / 21) / reward.REFERENCE_JOULES_PER_TOKEN)
    dollars_per_1k = 0.036 * 2.0 / 3600 / 21 * 1000
    assert scores.cost == pytest.approx(1 - dollars_per_1k / reward.REFERENCE_DOLLARS_PER_1K_TOKENS)
    mean = (scores.quality + scores.latency + scores.energy + scores.cost) / 4
    assert scores.reward == pytest.approx(mean)
    for value in (scores.quality, scores.latency, scores.energy, scores.cost):
        assert 0.0 <= value <= 1.0


def test_failure_earns_nothing_and_zero_weights_do_not_crash() -> None:
    assert reward.score(_policy(quality=1), POOL, reward.Outcome(success=False)).reward == 0.0
    assert reward.score(_policy(), POOL, reward.Outcome(success=True)).reward == 0.0


def test_partial_score_uses_only_what_was_measured() -> None:
    policy = _policy(quality=0.5, latency=0.5)
    measured = reward.Outcome(success=True, ttft_s=0.25, e2e_s=1.0, completion_tokens=100)
    assert reward.partial_score(policy, POOL, measured) == pytest.approx(1.0)  # latency alone
    assert reward.partial_score(policy, POOL, reward.Outcome(success=True)) is None
    energy_only = reward.partial_score(
        _policy(quality=1, energy=1),
        POOL,
        reward.Outcome(success=True, energy_joules=50.0, completion_tokens=10),
    )
    assert energy_only == pytest.approx(1 - 5.0 / reward.REFERENCE_JOULES_PER_TOKEN)
