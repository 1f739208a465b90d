"""Replicas sharing published contributions end up equal to one learner that saw everything."""

from __future__ import annotations

import numpy as np
import pytest

from fleetroute.replica_learning import Published, decode, encode
from fleetroute_router.arm_stats import ArmStatistics as Counts
from fleetroute_router.learning.replicas import ReplicaLearning
from fleetroute_router.policies.bandits import EpsilonGreedy, LinearBandit, LinearThompson, LinUCB

OBJECTIVES = ("quality", "latency")


def _publish(sync: ReplicaLearning) -> Published:
    learning = decode(encode(sync.publish()))  # through the wire format
    return Published(sync.replica, sync.sequence, None, learning)


@pytest.mark.parametrize("cls", [LinUCB, LinearThompson, EpsilonGreedy])
def test_two_replicas_equal_one_learner_and_absorb_each_publish_once(
    cls: type[LinearBandit],
) -> None:
    rng = np.random.default_rng(0)
    a, b, one = (cls(seed=1, objectives=OBJECTIVES) for _ in range(3))
    sync_a = ReplicaLearning("a", lambda: {"p": a}, Counts)
    sync_b = ReplicaLearning("b", lambda: {"p": b}, Counts)
    sync_a.resume(None)
    sync_b.resume(None)
    for i in range(200):
        x = rng.normal(size=3)
        scores = (
            {"quality": float(rng.random())}
            if i % 2
            else {"latency": float(rng.random()), "quality": 0.5}
        )
        (a if i % 3 else b).update(f"k{i % 3}", x, scores)
        one.update(f"k{i % 3}", x, scores)
    published = [_publish(sync_a), _publish(sync_b)]
    for _ in range(2):  # the same publishes read twice are counted once
        sync_a.absorb(published)
        sync_b.absorb(published)
    for model in (a.model, b.model):
        order = [model.arms.index(arm) for arm in one.model.arms]
        np.testing.assert_allclose(model.gram[:, order], one.model.gram)
        np.testing.assert_allclose(model.target[:, order], one.model.target)
        np.testing.assert_allclose(model.observations[:, order], one.model.observations)


@pytest.mark.parametrize("cls", [LinUCB, LinearThompson, EpsilonGreedy])
def test_publishes_redelivered_and_reordered_are_merged_exactly_once(
    cls: type[LinearBandit],
) -> None:
    rng = np.random.default_rng(3)
    a, b, c, one = (cls(seed=1, objectives=OBJECTIVES) for _ in range(4))
    syncs = {
        name: ReplicaLearning(name, lambda bandit=bandit: {"p": bandit}, Counts)
        for name, bandit in (("a", a), ("b", b), ("c", c))
    }
    for sync in syncs.values():
        sync.resume(None)
    history: list[Published] = []
    for round_ in range(5):
        for learner, name in ((a, "a"), (b, "b")):
            for i in range(20):
                x = rng.normal(size=3)
                scores = {"quality": float(rng.random()), "latency": float(rng.random())}
                if i % 4 == 0:
                    del scores["latency"]  # objectives are learned from what was measured
                learner.update(f"k{(i + round_) % 3}", x, scores)
                one.update(f"k{(i + round_) % 3}", x, scores)
            history.append(_publish(syncs[name]))
    # c hears every publish, several times and in any order: only the latest of each counts.
    for _ in range(3):
        order = rng.permutation(len(history))
        for start in range(0, len(order), 3):
            syncs["c"].absorb([history[i] for i in order[start : start + 3]])
    syncs["c"].absorb([history[-1], history[-2]])
    assert {r: p.sequence for r, p in syncs["c"].peers.items()} == {"a": 5, "b": 5}
    order = [c.model.arms.index(arm) for arm in one.model.arms]
    np.testing.assert_allclose(c.model.gram[:, order], one.model.gram)
    np.testing.assert_allclose(c.model.target[:, order], one.model.target)
    np.testing.assert_allclose(c.model.observations[:, order], one.model.observations)
    x = rng.normal(size=(20, 3))
    mean_c = [c.model.mean_and_variance(c.model.context(row))[0] for row in x]
    mean_one = [one.model.mean_and_variance(one.model.context(row))[0] for row in x]
    np.testing.assert_allclose(
        np.array(mean_c)[:, :, order], np.array(mean_one), rtol=1e-9, atol=1e-12
    )
