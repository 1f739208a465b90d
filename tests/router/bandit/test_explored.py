"""Policies say when a choice explores: an arm other than the one they believe best."""

from __future__ import annotations

import numpy as np

from fleetroute_router.policies.bandits import EpsilonGreedy, LinUCB
from fleetroute_router.policies.base import Arm

ARMS = [Arm("known", 1, 0), Arm("new", 1, 0)]
X = np.array([1.0, 0.5])


def _taught(policy: LinUCB | EpsilonGreedy) -> LinUCB | EpsilonGreedy:
    for _ in range(50):
        policy.update("known", X, {"quality": 0.9})
    return policy


def test_linucb_tries_an_untried_arm_and_calls_it_exploring() -> None:
    policy = _taught(LinUCB(alpha=2.0, seed=1))
    policy.update("new", X, {"quality": 0.1})  # believed worse, but still very uncertain
    choice = policy.choose(X, ARMS)
    assert choice.arm == "new"
    assert choice.explored


def test_greedy_choices_are_exploiting() -> None:
    policy = _taught(EpsilonGreedy(epsilon=0.0, seed=1))
    policy.update("new", X, {"quality": 0.1})
    choice = policy.choose(X, ARMS)
    assert choice.arm == "known"
    assert not choice.explored


def test_epsilon_greedy_random_picks_of_worse_arms_are_exploring() -> None:
    policy = _taught(EpsilonGreedy(epsilon=1.0, seed=3))
    policy.update("new", X, {"quality": 0.1})
    choices = [policy.choose(X, ARMS) for _ in range(40)]
    assert {c.explored for c in choices if c.arm == "new"} == {True}
    assert {c.explored for c in choices if c.arm == "known"} == {False}
