"""The operator folds a departed router replica's learning into the base, exactly once."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from fleetroute import learning_fold, replica_learning
from fleetroute.crds.routingpolicy import RoutingPolicyStatus
from fleetroute.v1alpha1 import learning_pb2
from fleetroute_operator import conditions, reconcile, replica_fold
from fleetroute_operator.kube import ApiError
from fleetroute_operator.replica_fold import ReplicaFolder

Manifest = dict[str, Any]
NAMESPACE = "routers"
POLICY = "fleet/chat"
NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


class LearningKube:
    """ConfigMaps with what the tests need of the API server: server-side apply merging metadata
    (finalizers kept unless given), resourceVersion preconditions, deletion held by finalizers."""

    def __init__(self) -> None:
        self.objects: dict[str, Manifest] = {}
        self._version = 0

    def apply(self, manifest: Manifest) -> Manifest:
        meta = manifest["metadata"]
        name = meta["name"]
        live = self.objects.get(name)
        if "resourceVersion" in meta and (
            live is None or live["metadata"]["resourceVersion"] != meta["resourceVersion"]
        ):
            raise ApiError(f"apply ConfigMap {name}: 409 Conflict", status=409, retriable=True)
        merged = copy.deepcopy(live) if live is not None else {"metadata": {}}
        for key, value in manifest.items():
            if key != "metadata":
                merged[key] = copy.deepcopy(value)
        for key, value in meta.items():
            if key != "resourceVersion":
                merged["metadata"][key] = copy.deepcopy(value)
        self._version += 1
        merged["metadata"]["resourceVersion"] = str(self._version)
        if merged["metadata"].get("deletionTimestamp") and not merged["metadata"].get("finalizers"):
            del self.objects[name]
        else:
            self.objects[name] = merged
        return merged

    def delete(self, name: str) -> None:
        """What the garbage collector does once the owner Pod is gone."""
        meta = self.objects[name]["metadata"]
        if meta.get("finalizers"):
            meta["deletionTimestamp"] = "2026-12-03T12:00:00Z"
        else:
            del self.objects[name]

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> Any:
        return self.objects.get(name)

    def list(
        self,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        label_selector: str | None = None,
    ) -> list[Manifest]:
        assert label_selector == replica_learning.KIND_LABEL
        return [
            copy.deepcopy(o)
            for o in self.objects.values()
            if replica_learning.KIND_LABEL in o["metadata"].get("labels", {})
        ]

    def patch_status(self, *args: Any) -> None:
        raise AssertionError("the folder writes no status")


def learning(
    replica: str, rng: np.random.Generator, n: int, discount: float = 1.0
) -> learning_pb2.RouterLearning:
    """A replica's contribution: ridge sums of n observations over 2 features, and counts."""
    message = learning_pb2.RouterLearning(replica=replica)
    state = message.policies[POLICY]
    state.CopyFrom(
        learning_pb2.LearnerState(
            algorithm="linucb",
            dimension=2,
            regularization=1.0,
            discount=discount,
            objectives=["quality"],
            delta=True,
        )
    )
    for arm in ("a", "b"):
        x = rng.normal(size=(n, 2))
        y = rng.random(n)
        state.arms.add(
            arm=arm,
            objective="quality",
            gram=(x.T @ x).ravel().tolist(),
            target=(x.T @ y).tolist(),
            observations=float(n),
            reward_sum=float(y.sum()),
        )
        message.counts[POLICY].arms.add(
            arm=arm, decisions=n, observations={"quality": n}, score_sums={"quality": y.sum()}
        )
    return message


def publish(
    kube: LearningKube, replica: str, sequence: int, message: learning_pb2.RouterLearning
) -> None:
    for manifest in replica_learning.manifests(
        NAMESPACE,
        replica,
        sequence,
        message,
        replica_learning.Owner(replica, f"uid-{replica}"),
        published_at=NOW,
    ):
        kube.apply(manifest)


def delete_replica(kube: LearningKube, replica: str) -> None:
    head = replica_learning.object_name(replica)
    for name in [n for n in kube.objects if n == head or n.startswith(f"{head}-part-")]:
        kube.delete(name)


def base(kube: LearningKube) -> replica_learning.Base:
    found, problems = replica_learning.read_base(list(kube.objects.values()))
    assert problems == []
    assert found is not None
    return found


def arms(message: learning_pb2.RouterLearning) -> dict[str, np.ndarray]:
    return {
        a.arm: np.array([*a.gram, *a.target, a.observations, a.reward_sum])
        for a in message.policies[POLICY].arms
    }


def test_replica_objects_get_the_finalizer_and_a_departed_replica_is_folded_once() -> None:
    kube, rng = LearningKube(), np.random.default_rng(0)
    one, two = learning("r1", rng, 20), learning("r2", rng, 30)
    publish(kube, "r1", 3, one)
    publish(kube, "r2", 5, two)
    folder = ReplicaFolder(kube, NAMESPACE)
    folder.sync(NOW)
    for obj in kube.objects.values():
        assert obj["metadata"]["finalizers"] == [replica_learning.FINALIZER]
    delete_replica(kube, "r1")
    assert replica_learning.object_name("r1") in kube.objects  # held by the finalizer
    view = folder.sync(NOW)
    assert view.folded == ("r1",)
    assert replica_learning.object_name("r1") not in kube.objects
    folded = base(kube)
    assert folded.folded == {"r1": 3}
    for arm, value in arms(one).items():
        np.testing.assert_allclose(arms(folded.learning)[arm], value)
    folder.sync(NOW)  # nothing more to fold: the base is unchanged
    assert base(kube).sequence == folded.sequence
    delete_replica(kube, "r2")
    folder.sync(NOW)
    both = base(kube)
    assert both.folded == {"r2": 5}  # r1's objects are gone: its entry is no longer needed
    for arm, value in arms(one).items():
        np.testing.assert_allclose(arms(both.learning)[arm], value + arms(two)[arm])
    assert kube.objects.keys() == {replica_learning.BASE_NAME}


def test_merged_view_counts_every_replica_once_and_flags_a_silent_one() -> None:
    kube, rng = LearningKube(), np.random.default_rng(1)
    one, two = learning("r1", rng, 20), learning("r2", rng, 30)
    publish(kube, "r1", 1, one)
    folder = ReplicaFolder(kube, NAMESPACE, stale_after_s=30.0)
    folder.sync(NOW)
    delete_replica(kube, "r1")
    folder.sync(NOW)
    publish(kube, "r2", 1, two)
    view = folder.sync(NOW + timedelta(seconds=45))
    decisions = {a.arm: a.decisions for a in view.counts[POLICY].arms}
    assert decisions == {"a": 50, "b": 50}
    assert [(r.name, r.sequence, r.stale) for r in view.replicas] == [("r2", 1, True)]
    assert not folder.sync(NOW + timedelta(seconds=5)).replicas[0].stale


def test_a_publish_in_parts_is_held_and_folded_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(replica_learning, "CHUNK_BYTES", 64)
    monkeypatch.setattr(replica_learning, "OBJECT_BYTES", 128)
    kube, rng = LearningKube(), np.random.default_rng(2)
    one = learning("r1", rng, 40)
    publish(kube, "r1", 2, one)
    assert len(kube.objects) >= 2  # a head and its parts
    folder = ReplicaFolder(kube, NAMESPACE)
    folder.sync(NOW)
    delete_replica(kube, "r1")
    folder.sync(NOW)
    assert [n for n in kube.objects if not n.startswith(replica_learning.BASE_NAME)] == []
    for arm, value in arms(one).items():
        np.testing.assert_allclose(arms(base(kube).learning)[arm], value)


def test_a_discounted_policy_decays_the_base_as_it_folds() -> None:
    rng = np.random.default_rng(3)
    one, two = learning("r1", rng, 20, discount=0.99), learning("r2", rng, 30, discount=0.99)
    folded = learning_fold.fold(learning_fold.fold(learning_pb2.RouterLearning(), one), two)
    for arm, value in arms(one).items():
        expected = value * 0.99**30 + arms(two)[arm]
        np.testing.assert_allclose(arms(folded)[arm], expected)


def test_a_replica_that_wrote_after_it_was_read_is_not_released_in_that_pass() -> None:
    kube, rng = LearningKube(), np.random.default_rng(4)
    publish(kube, "r1", 1, learning("r1", rng, 10))
    folder = ReplicaFolder(kube, NAMESPACE)
    folder.sync(NOW)
    delete_replica(kube, "r1")

    applied = kube.apply

    def apply_racing(manifest: Manifest) -> Manifest:
        if manifest["metadata"].get("finalizers") == []:  # the router writes just before
            head = kube.objects[replica_learning.object_name("r1")]
            head["metadata"]["resourceVersion"] += "0"
        return applied(manifest)

    kube.apply = apply_racing  # type: ignore[method-assign]
    folder.sync(NOW)
    assert replica_learning.object_name("r1") in kube.objects  # conflict: kept for now
    assert base(kube).folded == {"r1": 1}
    kube.apply = applied  # type: ignore[method-assign]
    folder.sync(NOW)  # folded already at that sequence: only released
    assert replica_learning.object_name("r1") not in kube.objects
    assert base(kube).sequence == 1


def _chat(example_objects: list[dict[str, Any]]) -> dict[str, Any]:
    (body,) = [o for o in example_objects if o["kind"] == "RoutingPolicy"]
    return copy.deepcopy(body)


def test_policy_status_shows_the_merged_view_and_flags_a_silent_replica(
    example_objects: list[dict[str, Any]],
) -> None:
    kube, rng = LearningKube(), np.random.default_rng(5)
    one, two = learning("r1", rng, 20), learning("r2", rng, 60)
    publish(kube, "r1", 1, one)
    publish(kube, "r2", 4, two)
    folder = ReplicaFolder(kube, NAMESPACE, stale_after_s=30.0)
    folder.sync(NOW)
    delete_replica(kube, "r1")
    folder.sync(NOW)  # r1 folded: counted through the base
    one_arm = {a.arm: a for a in one.counts[POLICY].arms}
    two_arm = {a.arm: a for a in two.counts[POLICY].arms}
    learned = replica_fold.policy_learned(folder.view, POLICY, {"quality": 0.5, "latency": 0.2})
    assert learned is not None
    by_pool = {a.pool: a for a in learned.arms}
    assert by_pool["a"].decisions == 80
    assert by_pool["a"].share == pytest.approx(0.5)
    expected = (one_arm["a"].score_sums["quality"] + two_arm["a"].score_sums["quality"]) / 80
    assert by_pool["a"].mean_reward == pytest.approx(expected)  # only quality was measured
    assert learned.quality_observations == pytest.approx(160.0)
    assert replica_fold.policy_learned(folder.view, "other/policy", {"quality": 1.0}) is None

    body = _chat(example_objects)
    view = folder.sync(NOW + timedelta(seconds=31))
    status = reconcile.routingpolicy_status(body, {}, learned, replica_fold.replicas_status(view))
    assert status["replicas"] == [
        {
            "name": "r2",
            "lastPublishTime": "2026-12-03T12:00:00.000000Z",
            "sequence": 4,
            "stale": True,
        }
    ]
    assert status["arms"][0]["decisions"] == 80
    publishing = conditions.find(status["conditions"], reconcile.REPLICAS_PUBLISHING)
    assert publishing is not None
    assert (publishing["status"], publishing["reason"]) == ("False", "StaleReplica")
    assert "r2" in publishing["message"]
    fresh = replica_fold.replicas_status(folder.sync(NOW + timedelta(seconds=1)))
    status = reconcile.routingpolicy_status(body, {}, learned, fresh)
    publishing = conditions.find(status["conditions"], reconcile.REPLICAS_PUBLISHING)
    assert publishing is not None
    assert publishing["status"] == "True"
    RoutingPolicyStatus.model_validate(status)  # the CRD's status schema takes it
