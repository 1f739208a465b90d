"""Fold the learning of router replicas whose Pods are gone into the compacted base ConfigMap.

Every pass (the periodic resync) lists the learning ConfigMaps of the routers' namespace. A
replica's objects carry our finalizer (added here when missing), so when its Pod is deleted
and the garbage collector deletes them, they wait: the pass adds the replica's last publish to
the base (`fleetroute.learning_fold.fold`), records its sequence number in the base's `folded`
map, writes the base, and only then removes the finalizers. Routers count a replica folded at
that sequence through the base only, so its learning is counted once and never lost. The pass
also returns the merged view (base + live replicas) for RoutingPolicy status.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from fleetroute import learning_fold, replica_learning
from fleetroute.replica_learning import Base, Published
from fleetroute.v1alpha1 import learning_pb2
from fleetroute_operator.kube import ApiError, Kube
from fleetroute_operator.router_stats import ArmSummary, PolicyLearned

log = logging.getLogger(__name__)
Manifest = dict[str, Any]


@dataclass(frozen=True)
class ReplicaSeen:
    """One replica as the operator last read it."""

    name: str
    sequence: int
    published_at: datetime | None
    stale: bool


@dataclass(frozen=True)
class LearningView:
    """The merged learning of every replica (the base included), read in one pass."""

    counts: Mapping[str, learning_pb2.PolicyCounts]
    replicas: tuple[ReplicaSeen, ...] = ()
    folded: tuple[str, ...] = field(default_factory=tuple)


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = obj.get("metadata") or {}
    return meta if isinstance(meta, Mapping) else {}


def _replica_of(obj: Mapping[str, Any]) -> str:
    meta = _meta(obj)
    annotations = meta.get("annotations") or {}
    head_name = str(meta.get("name", "")).rsplit("-part-", 1)[0]
    return str(annotations.get(replica_learning.REPLICA_ANNOTATION) or head_name)


class ReplicaFolder:
    """Finalizes, folds and summarises the learning ConfigMaps of one namespace."""

    def __init__(self, kube: Kube, namespace: str, stale_after_s: float = 60.0) -> None:
        self.kube, self.namespace, self.stale_after_s = kube, namespace, stale_after_s
        self.view: LearningView | None = None

    def sync(self, now: datetime | None = None) -> LearningView:
        """One pass: finalizers on, departed replicas folded, the merged view; ApiError when the
        API server fails (the next pass tries again)."""
        now = now or datetime.now(UTC)
        objects = self.kube.list(
            "v1", "ConfigMap", self.namespace, label_selector=replica_learning.KIND_LABEL
        )
        ours = [o for o in objects if replica_learning.kind_of(o) == replica_learning.REPLICA_KIND]
        published, problems = replica_learning.replicas(ours)
        base, more = replica_learning.read_base(objects)
        for problem in problems + more:
            log.warning("learning object not readable: %s", problem)
        self._hold(ours)
        folded = self._fold(ours, published, base)
        if folded:
            objects = self.kube.list(
                "v1", "ConfigMap", self.namespace, label_selector=replica_learning.KIND_LABEL
            )
            published, _ = replica_learning.replicas(
                [o for o in objects if replica_learning.kind_of(o) == replica_learning.REPLICA_KIND]
            )
            base, _ = replica_learning.read_base(objects)
        self.view = self._view(published, base, now, folded)
        return self.view

    def _hold(self, objects: Sequence[Mapping[str, Any]]) -> None:
        """Our finalizer on every replica object not yet being deleted."""
        for obj in objects:
            meta = _meta(obj)
            if meta.get("deletionTimestamp"):
                continue
            if replica_learning.FINALIZER in (meta.get("finalizers") or []):
                continue
            self._finalizers(obj, [replica_learning.FINALIZER])

    def _finalizers(self, obj: Mapping[str, Any], finalizers: list[str]) -> None:
        meta = _meta(obj)
        metadata: Manifest = {
            "name": meta["name"],
            "namespace": self.namespace,
            "finalizers": finalizers,
        }
        if not finalizers:  # only if nobody wrote it since we read it (its state was folded)
            metadata["resourceVersion"] = meta.get("resourceVersion")
        self.kube.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata})

    def _fold(
        self,
        objects: Sequence[Mapping[str, Any]],
        published: Sequence[Published],
        base: Base | None,
    ) -> list[str]:
        deleting = {
            _replica_of(o)
            for o in objects
            if _meta(o).get("deletionTimestamp")
            and replica_learning.FINALIZER in (_meta(o).get("finalizers") or [])
        }
        if not deleting:
            return []
        learning = base.learning if base is not None else learning_pb2.RouterLearning()
        folded = dict(base.folded) if base is not None else {}
        latest = {p.replica: p for p in published}
        added = []
        for replica in sorted(deleting):
            item = latest.get(replica)
            if item is None:
                log.warning("replica %s: its learning cannot be read; released unfolded", replica)
                continue
            held = folded.get(replica, -1)
            if held >= item.sequence:
                continue  # folded in an earlier pass whose release did not finish
            if held >= 0:
                # Published again after its fold (it was still running): adding all of it would
                # count the folded part twice; its last increment is dropped instead.
                log.warning(
                    "replica %s published %d after its fold at %d: not folded again",
                    replica,
                    item.sequence,
                    held,
                )
                continue
            try:
                learning = learning_fold.fold(learning, item.learning)
            except ValueError as error:
                log.warning("replica %s: not folded: %s", replica, error)
                continue
            folded[replica] = item.sequence
            added.append(replica)
        if added:
            present = {_replica_of(o) for o in objects}
            # Replicas whose objects are all gone need no entry: nothing can count them twice.
            folded = {r: s for r, s in folded.items() if r in present}
            sequence = (base.sequence if base is not None else 0) + 1
            for manifest in replica_learning.base_manifests(
                self.namespace, sequence, learning, folded
            ):
                self.kube.apply(manifest)
            log.info("folded the learning of %s into the base", ", ".join(added))
        for obj in objects:
            meta = _meta(obj)
            if not meta.get("deletionTimestamp"):
                continue
            replica = _replica_of(obj)
            if replica in deleting and (replica in folded or replica not in latest):
                kept = [f for f in meta.get("finalizers") or [] if f != replica_learning.FINALIZER]
                try:
                    self._finalizers(obj, kept)
                except ApiError as error:
                    log.warning("finalizer of %s not removed: %s", meta.get("name"), error)
        return added

    def _view(
        self,
        published: Sequence[Published],
        base: Base | None,
        now: datetime,
        folded: Sequence[str],
    ) -> LearningView:
        counted = dict(base.folded) if base is not None else {}
        live = [p for p in published if p.sequence > counted.get(p.replica, -1)]
        sources = [p.learning for p in live]
        if base is not None:
            sources.append(base.learning)
        seen = tuple(
            ReplicaSeen(
                p.replica,
                p.sequence,
                p.published_at,
                p.published_at is None
                or (now - p.published_at).total_seconds() > self.stale_after_s,
            )
            for p in live
            if not p.deleting
        )
        return LearningView(learning_fold.merged_counts(sources), seen, tuple(folded))


def policy_learned(
    view: LearningView, policy: str, weights: Mapping[str, float]
) -> PolicyLearned | None:
    """What every replica together learned of a policy ("namespace/name"): each arm's share of
    the decisions, and its mean reward, each objective's mean score combined with the policy's
    weights over the objectives measured; None when no replica counted the policy."""
    counts = view.counts.get(policy)
    if counts is None or not counts.arms:
        return None
    total = sum(a.decisions for a in counts.arms)
    arms = []
    for arm in counts.arms:
        means = {o: arm.score_sums.get(o, 0.0) / n for o, n in arm.observations.items() if n > 0}
        known = [(w, means[o]) for o, w in weights.items() if o in means and w > 0]
        weight = sum(w for w, _ in known)
        arms.append(
            ArmSummary(
                arm.arm,
                arm.decisions / total if total else 0.0,
                sum(w * m for w, m in known) / weight if weight > 0 else None,
                int(arm.decisions),
            )
        )
    quality = sum(a.observations.get("quality", 0.0) for a in counts.arms)
    return PolicyLearned(tuple(sorted(arms, key=lambda a: (-a.share, a.pool))), quality)


def replicas_status(view: LearningView) -> list[dict[str, Any]]:
    """RoutingPolicy status's replicas: each one's last publish, and whether it went silent."""
    return [
        {
            "name": r.name,
            "lastPublishTime": replica_learning.format_time(r.published_at)
            if r.published_at
            else None,
            "sequence": r.sequence,
            "stale": r.stale,
        }
        for r in sorted(view.replicas, key=lambda r: r.name)
    ]
