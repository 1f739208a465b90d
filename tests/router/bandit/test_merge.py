"""Replicas that exchange statistic deltas match one learner that saw all the data."""

from __future__ import annotations

import numpy as np
import pytest

from fleetroute_router import learning
from fleetroute_router.objectives import OBJECTIVES
from fleetroute_router.policies import registry
from fleetroute_router.policies.bandits import LinearBandit
from fleetroute_router.policies.base import Arm


def _bandit(name: str = "linucb", seed: int = 0) -> LinearBandit:
    policy = registry.create(name, {"seed": seed, "regularization": 2.0}, OBJECTIVES)
    assert isinstance(policy, LinearBandit)
    return policy


def _assert_same(a: LinearBandit, b: LinearBandit) -> None:
    assert sorted(a.model.arms) == sorted(b.model.arms)
    for arm in a.model.arms:
        i, j = a.model.arms.index(arm), b.model.arms.index(arm)
        np.testing.assert_allclose(a.model.gram[:, i], b.model.gram[:, j], atol=1e-9)
        np.testing.assert_allclose(a.model.target[:, i], b.model.target[:, j], atol=1e-9)
        np.testing.assert_allclose(a.model.theta[:, i], b.model.theta[:, j], atol=1e-9)
        np.testing.assert_allclose(a.model.observations[:, i], b.model.observations[:, j])


@pytest.mark.parametrize("name", ["linucb", "thompson", "epsilon-greedy"])
def test_merged_replicas_match_a_single_learner(name: str) -> None:
    rng = np.random.default_rng(0)
    single = _bandit(name)
    replicas = [_bandit(name, seed) for seed in (1, 2, 3)]
    syncs = [learning.ReplicaSync(r) for r in replicas]
    arms = ["x", "y", "z", "w"]
    for round_ in range(4):
        for step in range(120):
            x, arm = rng.random(5), arms[(step + round_) % (2 + round_ % 3)]
            # Latency, energy and cost for every request; quality for one in three, later.
            scores = dict(zip(OBJECTIVES[1:], rng.random(3).tolist(), strict=True))
            if step % 3 == 0:
                scores["quality"] = float(rng.random())
            replicas[step % 3].update(arm, x, scores)  # each replica sees a third
            single.update(arm, x, scores)
        deltas = [s.delta() for s in syncs]
        for i, sync in enumerate(syncs):
            sync.absorb([d for j, d in enumerate(deltas) if j != i])
    for replica in replicas:
        _assert_same(replica, single)
    x = rng.random(5)
    candidates = [Arm(a, 1, 0) for a in arms]
    if name == "linucb":
        assert replicas[0].choose(x, candidates).scores == pytest.approx(
            single.choose(x, candidates).scores
        )


def test_learning_during_an_exchange_is_sent_next_time() -> None:
    a, b, single = _bandit(), _bandit(), _bandit()
    sync_a, sync_b = learning.ReplicaSync(a), learning.ReplicaSync(b)
    a.update("x", np.ones(2), {"quality": 1.0})
    single.update("x", np.ones(2), {"quality": 1.0})
    sent_a, sent_b = sync_a.delta(), sync_b.delta()
    a.update("y", np.array([1.0, 0.0]), {"quality": 0.5})  # learned while the exchange is in flight
    single.update("y", np.array([1.0, 0.0]), {"quality": 0.5})
    sync_a.absorb([sent_b])
    sync_b.absorb([sent_a])
    sent_a, sent_b = sync_a.delta(), sync_b.delta()
    sync_a.absorb([sent_b])
    sync_b.absorb([sent_a])
    _assert_same(a, single)
    _assert_same(b, single)


def test_a_hub_can_sum_deltas_before_forwarding() -> None:
    a, b, c = _bandit(), _bandit(), _bandit()
    syncs = [learning.ReplicaSync(p) for p in (a, b, c)]
    a.update("x", np.ones(3), {"quality": 1.0})
    b.update("x", np.ones(3), {"quality": 0.0})
    b.update("y", np.ones(3), {"quality": 0.5})
    deltas = [s.delta() for s in syncs]
    total = learning.merge_deltas(deltas[:2])
    syncs[2].absorb([total])
    single = _bandit()
    for arm, reward in (("x", 1.0), ("x", 0.0), ("y", 0.5)):
        single.update(arm, np.ones(3), {"quality": reward})
    _assert_same(c, single)


def test_deltas_travel_as_protobuf() -> None:
    a, b = _bandit(), _bandit()
    sync_a, sync_b = learning.ReplicaSync(a), learning.ReplicaSync(b)
    a.update("x", np.ones(2), {"quality": 1.0})
    wire = learning.to_proto(a, arms=sync_a.delta(), delta=True).SerializeToString()
    from fleetroute.v1alpha1 import learning_pb2

    sync_b.delta()
    sync_b.absorb([learning.from_proto(learning_pb2.LearnerState.FromString(wire))])
    _assert_same(a, b)
