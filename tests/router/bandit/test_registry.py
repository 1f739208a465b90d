"""The policy registry: real implementations, defaults, and clear errors for bad parameters."""

from __future__ import annotations

import math

import pytest

from fleetroute.v1alpha1 import config_pb2
from fleetroute_router.policies import registry
from fleetroute_router.policies.bandits import EpsilonGreedy, LinearThompson, LinUCB
from fleetroute_router.policies.baseline import LeastLoaded, UniformRandom


@pytest.mark.parametrize(
    ("name", "kind"),
    [("linucb", LinUCB), ("thompson", LinearThompson), ("epsilon-greedy", EpsilonGreedy)],
)
def test_learning_algorithms_are_the_real_implementations(name: str, kind: type) -> None:
    policy = registry.build(config_pb2.Algorithm(name=name))
    assert isinstance(policy, kind)
    assert policy.name == name


def test_unnamed_algorithm_is_least_loaded() -> None:
    assert isinstance(registry.build(config_pb2.Algorithm()), LeastLoaded)


def test_parameters_reach_the_policy() -> None:
    policy = registry.build(
        config_pb2.Algorithm(
            name="linucb",
            parameters={"alpha": 0.25, "regularization": 4.0, "discount": 0.9, "seed": 3},
        )
    )
    assert isinstance(policy, LinUCB)
    assert (policy.alpha, policy.model.regularization, policy.model.discount) == (0.25, 4.0, 0.9)


def test_defaults_fill_in_missing_parameters() -> None:
    assert registry.parameters("thompson", {}) == {
        "exploration": 0.5,
        "regularization": 1.0,
        "discount": 1.0,
        "seed": -1,
    }
    assert isinstance(registry.create("random", {"seed": 4}), UniformRandom)


def test_unknown_algorithm_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown algorithm 'ucb2'; known: epsilon-greedy, "):
        registry.build(config_pb2.Algorithm(name="ucb2"))


@pytest.mark.parametrize(
    ("name", "parameters", "message"),
    [
        (
            "linucb",
            {"alpha": -0.1},
            r"linucb: parameter alpha=-0.1 is out of range; allowed \[0, 100\]",
        ),
        ("linucb", {"alpha": 101}, r"parameter alpha=101.0 is out of range; allowed \[0, 100\]"),
        ("epsilon-greedy", {"epsilon": 1.5}, r"parameter epsilon=1.5 .* allowed \[0, 1\]"),
        ("thompson", {"exploration": math.inf}, r"parameter exploration=inf .* allowed \[0, 100\]"),
        ("thompson", {"regularization": 0}, r"parameter regularization=0.0 .* allowed \(0, 1000\]"),
        ("linucb", {"discount": 0}, r"parameter discount=0.0 .* allowed \(0, 1\]"),
        ("linucb", {"discount": math.nan}, r"parameter discount=nan is out of range"),
        ("random", {"seed": -1}, r"parameter seed=-1.0 .* allowed \[0, 2.147"),
        ("linucb", {"seed": 1.5}, r"parameter seed=1.5 must be a whole number"),
        ("linucb", {"epsilon": 0.1}, r"linucb: unknown parameter 'epsilon'; allowed: alpha, "),
        ("round-robin", {"seed": 1}, r"round-robin: unknown parameter 'seed'; allowed: none"),
    ],
)
def test_bad_parameters_name_the_parameter_and_the_range(
    name: str, parameters: dict[str, float], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        registry.build(config_pb2.Algorithm(name=name, parameters=parameters))


def test_every_crd_algorithm_has_a_factory() -> None:
    from typing import get_args

    from fleetroute.crds.routingpolicy import AlgorithmName

    assert set(get_args(AlgorithmName)) == set(registry.FACTORIES) == set(registry.PARAMETERS)
