"""Scores per objective, only for what was measured, and the reward the weights make of them."""

from __future__ import annotations

import numpy as np
import pytest
from google.protobuf.duration_pb2 import Duration

from fleetroute.v1alpha1 import config_pb2
from fleetroute_router import energy, errors, objectives, reward

POOL = config_pb2.Pool(
    name="p", gpus_per_replica=1, gpu=config_pb2.GpuFigures(max_watts=100, cost_per_gpu_hour=0.036)
)
SLO = config_pb2.Slo(ttft=Duration(nanos=500_000_000), tpot=Duration(nanos=50_000_000))


def _policy(**weights: float) -> config_pb2.Policy:
    return config_pb2.Policy(name="x", objective=config_pb2.Objective(**weights), slo=SLO)


def test_each_score_is_normalised_and_quality_never_comes_from_an_outcome() -> None:
    outcome = reward.Outcome(success=True, ttft_s=1.0, e2e_s=2.0, completion_tokens=21)
    scores = reward.score(_policy(quality=1, latency=1, energy=1, cost=1), POOL, outcome)
    assert scores.quality is None
    assert scores.latency == pytest.approx((0.5 / 1.0 + 1.0) / 2)  # TTFT late, TPOT 0.05 met
    joules = energy.modelled_watts(POOL, running=1.0) * 2.0  # the energy module's model, alone
    assert scores.joules == pytest.approx(joules)
    assert scores.energy == pytest.approx(1 - (joules / 21) / reward.REFERENCE_JOULES_PER_TOKEN)
    dollars_per_1k = 0.036 * 2.0 / 3600 / 21 * 1000
    assert scores.cost == pytest.approx(1 - dollars_per_1k / reward.REFERENCE_DOLLARS_PER_1K_TOKENS)
    assert set(scores.measured()) == {"latency", "energy", "cost"}


def test_the_reward_weighs_only_what_was_measured() -> None:
    scores = reward.Scores(latency=0.4, energy=0.8)
    weights = objectives.weights(config_pb2.Objective(quality=0.5, latency=0.25, energy=0.25))
    assert scores.reward(weights) == pytest.approx(0.6)  # quality unknown: not a 1, not a 0
    graded = reward.Scores(quality=0.0, latency=0.4, energy=0.8)
    assert graded.reward(weights) == pytest.approx(0.5 * 0.0 + 0.25 * 0.4 + 0.25 * 0.8)
    assert reward.Scores(cost=1.0).reward(weights) is None  # cost has no weight here


def test_a_non_streamed_request_is_scored_against_the_slos_not_its_length() -> None:
    on_time = reward.Outcome(success=True, e2e_s=0.5 + 0.05 * 99, completion_tokens=100)
    assert reward.latency_score(SLO, on_time) == pytest.approx(1.0)
    twice = reward.Outcome(success=True, e2e_s=2 * (0.5 + 0.05 * 99), completion_tokens=100)
    assert reward.latency_score(SLO, twice) == pytest.approx(0.5)
    assert reward.latency_score(config_pb2.Slo(), twice) == pytest.approx(1 / (1 + twice.e2e_s))


def test_failure_scores_zero_everywhere_and_nothing_measured_scores_nothing() -> None:
    failed = reward.score(_policy(quality=1), POOL, reward.Outcome(success=False))
    assert failed.measured() == {"quality": 0.0, "latency": 0.0, "energy": 0.0, "cost": 0.0}
    assert reward.score(_policy(latency=1), POOL, reward.Outcome(success=True)).measured() == {}
    first_token = reward.Outcome(success=True, ttft_s=0.25)
    assert reward.score(_policy(latency=1), POOL, first_token).measured() == {"latency": 1.0}


def test_measured_joules_are_used_as_given() -> None:
    scores = reward.score(
        _policy(energy=1),
        POOL,
        reward.Outcome(success=True, energy_joules=50.0, completion_tokens=10),
    )
    assert scores.energy == pytest.approx(1 - 5.0 / reward.REFERENCE_JOULES_PER_TOKEN)
    assert scores.cost is None  # no duration, no price


def test_objective_overrides_parse_strictly() -> None:
    parsed = objectives.parse("quality=0.8, energy=0.2")
    np.testing.assert_allclose(objectives.weights(parsed), [0.8, 0.0, 0.2, 0.0])
    for bad, message in (
        ("speed=1", "not NAME=WEIGHT"),
        ("quality", "not NAME=WEIGHT"),
        ("quality=x", "not a number"),
        ("quality=1.5", r"not in \[0, 1\]"),
        ("quality=0", "must not all be zero"),
        ("quality=0.5,quality=0.5", "given twice"),
    ):
        with pytest.raises(errors.InvalidRequest, match=message):
            objectives.parse(bad)
