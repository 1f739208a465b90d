"""Replicas publishing through a store: merged views, restarts, and an API server that is down."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from fleetroute import replica_learning
from fleetroute.learning_fold import fold
from fleetroute.replica_learning import Owner
from fleetroute.v1alpha1 import learning_pb2
from fleetroute_router.arm_stats import ArmStatistics as Counts
from fleetroute_router.learning.publisher import Publisher
from fleetroute_router.learning.replicas import ReplicaLearning
from fleetroute_router.policies.bandits import LinUCB
from fleetroute_router.policies.base import Arm

from .fake_store import MemoryStore

OBJECTIVES = ("quality", "latency")
ARMS = [Arm(f"k{i}", 1, 0) for i in range(3)]


async def _now(fn: Callable[..., Any], *args: Any) -> Any:
    """Run the 'blocking' store calls inline: the tests need no threads."""
    return fn(*args)


class Replica:
    """One router replica: a bandit, its counts and a publisher on the shared store."""

    def __init__(self, name: str, store: MemoryStore, **publisher: Any) -> None:
        self.bandit = LinUCB(seed=1, objectives=OBJECTIVES)
        self.counts = Counts()
        self.registry = CollectorRegistry()
        self.sync = ReplicaLearning(name, lambda: {"p": self.bandit}, lambda: self.counts)
        self.publisher = Publisher(
            self.sync,
            store,
            namespace="ns",
            owner=Owner(f"{name}-pod", f"uid-{name}"),
            period_s=1.0,
            registry=self.registry,
            run_blocking=_now,
            **publisher,
        )

    def learn(self, rng: np.random.Generator, n: int, arm: str = "") -> None:
        for i in range(n):
            pool = arm or f"k{i % 3}"
            self.bandit.update(pool, rng.normal(size=3), {"quality": float(rng.random())})
            self.counts.chose("p", pool)
            self.counts.learned("p", pool, {"quality": 1.0})

    def metric(self, name: str, **labels: str) -> float:
        value = self.registry.get_sample_value(name, labels)
        return 0.0 if value is None else value


def _same_model(one: LinUCB, other: LinUCB) -> None:
    order = [other.model.arms.index(a) for a in one.model.arms]
    np.testing.assert_allclose(other.model.gram[:, order], one.model.gram)
    np.testing.assert_allclose(other.model.target[:, order], one.model.target)
    np.testing.assert_allclose(other.model.observations[:, order], one.model.observations)


def _choices(bandit: LinUCB, seed: int = 7) -> list[str]:
    rng = np.random.default_rng(seed)
    return [bandit.choose(rng.normal(size=3), ARMS).arm for _ in range(50)]


async def test_a_peer_learns_what_one_replica_saw_within_one_publish_each() -> None:
    store = MemoryStore()
    a, b = Replica("a", store), Replica("b", store)
    assert await a.publisher.load()
    assert await b.publisher.load()
    a.learn(np.random.default_rng(0), 120)
    assert _choices(a.bandit) != _choices(b.bandit)  # b knows nothing yet
    assert await a.publisher.publish()
    assert await b.publisher.publish()
    _same_model(a.bandit, b.bandit)
    assert _choices(a.bandit) == _choices(b.bandit)
    # Each replica's ConfigMap is owned by its Pod.
    head = store.objects[replica_learning.object_name("a")]
    assert head["metadata"]["ownerReferences"][0] == {
        "apiVersion": "v1",
        "kind": "Pod",
        "name": "a-pod",
        "uid": "uid-a",
    }
    assert b.sync.merged_counts()["p"].arms[0].decisions == 40
    assert a.metric("fleetroute_router_learning_publish_total", result="success") == 1.0
    assert b.metric("fleetroute_router_learning_peers") == 1.0


async def test_publishing_again_and_again_counts_every_replica_once() -> None:
    store = MemoryStore()
    a, b, one = Replica("a", store), Replica("b", store), LinUCB(seed=1, objectives=OBJECTIVES)
    rng = np.random.default_rng(1)
    for replica in (a, b):
        assert await replica.publisher.load()
    for round_ in range(4):
        for replica in (a, b):
            for i in range(30):
                x, score = rng.normal(size=3), {"quality": float(rng.random())}
                replica.bandit.update(f"k{(i + round_) % 3}", x, score)
                one.update(f"k{(i + round_) % 3}", x, score)
            assert await replica.publisher.publish()
            assert await replica.publisher.publish()  # read twice: no double counting
    assert await a.publisher.publish()
    _same_model(one, a.bandit)
    _same_model(one, b.bandit)


async def test_a_stale_read_of_an_older_publish_changes_nothing() -> None:
    store = MemoryStore()
    a, b = Replica("a", store), Replica("b", store)
    for replica in (a, b):
        assert await replica.publisher.load()
    rng = np.random.default_rng(2)
    a.learn(rng, 30)
    assert await a.publisher.publish()
    old = [o for o in store.list() if replica_learning.kind_of(o)]
    a.learn(rng, 30)
    assert await a.publisher.publish()
    assert await b.publisher.publish()
    merged = b.bandit.model.gram.copy()
    older, _ = replica_learning.replicas(old)  # e.g. a lagging watch cache, or reordering
    b.sync.absorb(older)
    np.testing.assert_allclose(b.bandit.model.gram, merged)
    _same_model(a.bandit, b.bandit)


async def test_an_api_server_that_is_down_backs_off_and_loses_nothing() -> None:
    store = MemoryStore()
    a, b = Replica("a", store, max_backoff_s=8.0), Replica("b", store)
    for replica in (a, b):
        assert await replica.publisher.load()
    rng = np.random.default_rng(3)
    a.learn(rng, 40)
    store.failing = True
    delays = []
    for _ in range(5):
        a.learn(rng, 10)
        assert not await a.publisher.publish()
        delays.append(a.publisher.delay())
        # Routing goes on with the local state.
        assert a.bandit.choose(rng.normal(size=3), ARMS).arm in {"k0", "k1", "k2"}
    assert delays == [2.0, 4.0, 8.0, 8.0, 8.0]
    assert a.metric("fleetroute_router_learning_publish_total", result="failure") == 5.0
    assert a.metric("fleetroute_router_learning_backoff_seconds") == 8.0
    assert a.metric("fleetroute_router_learning_last_publish_timestamp_seconds") == 0.0
    store.failing = False
    assert await a.publisher.publish()
    assert a.publisher.delay() == 1.0
    assert a.metric("fleetroute_router_learning_backoff_seconds") == 0.0
    assert await b.publisher.publish()
    _same_model(a.bandit, b.bandit)  # all 90 updates, those of the outage included
    assert b.bandit.model.observations.sum() == pytest.approx(90.0)


async def test_a_replica_that_cannot_read_the_cluster_at_start_never_publishes_over_it() -> None:
    store = MemoryStore()
    first = Replica("a", store)
    assert await first.publisher.load()
    first.learn(np.random.default_rng(4), 50)
    assert await first.publisher.publish()
    again = Replica("a", store)  # the same replica restarted
    store.failing = True
    assert not await again.publisher.load()
    assert not await again.publisher.publish()
    store.failing = False
    assert await again.publisher.publish()  # reads (and resumes) first, then writes
    _same_model(first.bandit, again.bandit)
    assert again.sync.sequence == 2


async def test_a_replica_started_from_nothing_loads_the_merged_state() -> None:
    store = MemoryStore()
    a, b = Replica("a", store), Replica("b", store)
    for replica in (a, b):
        assert await replica.publisher.load()
    rng = np.random.default_rng(5)
    a.learn(rng, 40)
    b.learn(rng, 25)
    assert await a.publisher.publish()
    assert await b.publisher.publish()
    assert await a.publisher.publish()
    c = Replica("c", store)
    assert await c.publisher.load()
    _same_model(a.bandit, c.bandit)
    assert c.bandit.model.observations.sum() == pytest.approx(65.0)
    assert _choices(a.bandit) == _choices(c.bandit)


async def test_a_folded_replica_counts_through_the_base_only() -> None:
    store = MemoryStore()
    a, b = Replica("a", store), Replica("b", store)
    for replica in (a, b):
        assert await replica.publisher.load()
    a.learn(np.random.default_rng(6), 40)
    assert await a.publisher.publish()
    gone, _ = replica_learning.replicas(store.list())
    base = fold(learning_pb2.RouterLearning(), gone[0].learning)
    for manifest in replica_learning.base_manifests("ns", 1, base, {"a": gone[0].sequence}):
        store.apply(manifest)
    # The replica's object is still there (its finalizer not yet removed): counted once.
    assert await b.publisher.publish()
    _same_model(a.bandit, b.bandit)
    del store.objects[replica_learning.object_name("a")]
    assert await b.publisher.publish()
    _same_model(a.bandit, b.bandit)
    c = Replica("c", store)
    assert await c.publisher.load()
    _same_model(a.bandit, c.bandit)


async def test_the_same_base_read_again_changes_nothing() -> None:
    store = MemoryStore()
    a = Replica("a", store)
    assert await a.publisher.load()
    a.learn(np.random.default_rng(7), 20)
    assert await a.publisher.publish()
    gone, _ = replica_learning.replicas(store.list())
    base = fold(learning_pb2.RouterLearning(), gone[0].learning)
    for manifest in replica_learning.base_manifests("ns", 3, base, {"a": gone[0].sequence}):
        store.apply(manifest)
    b = Replica("b", store)
    assert await b.publisher.load()
    shared = b.sync.shared_totals()
    read, _ = replica_learning.read_base(store.list())
    assert read is not None
    assert b.sync.select([], read.learning, read.folded, read.sequence) == []
    assert b.sync.shared_totals() is shared  # nothing summed again
    assert b.sync.select([], read.learning, read.folded, read.sequence + 1) == ["base"]
