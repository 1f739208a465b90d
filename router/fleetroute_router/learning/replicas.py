"""Share learning between router replicas: each publishes what it learned itself, all merge.

State-based rather than delta-based. Replica r publishes its own contribution C_r (the ridge
statistics of the requests it saw, prior excluded: Σ x xᵀ, Σ (y - m) x, counts) under a
sequence number that only grows. Every replica rebuilds each learning policy as
    A = λI + L + B + Σ_r C_r         (b, counts alike)
from its local start state L (a --learning-prior), the cluster's compacted base B (the last
contributions of replicas that are gone) and the latest C_r of every live replica, its own
included. A contribution replaces the one seen before it from the same replica (a higher
sequence number; lower ones are stale reads and ignored), so each replica's learning is counted
exactly once however many publishes were missed or read twice, and a replica that restarts
under the same name resumes from its published C_r. For discount = 1 the rebuilt statistics
equal one learner that saw every request (sums commute); see merge.py for the delta form.

Discounted policies (discount < 1) forget over each replica's own stream: C_r decays with r's
traffic, and between two rebuilds a replica's local updates also decay what its peers taught
it. The rebuild undoes that extra forgetting every period, so the merged state is "each replica's
discounted contribution, summed": exact at each rebuild when traffic is spread evenly, an
approximation otherwise (a learner that saw all requests would decay each by the requests of
every replica after it).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence

import numpy as np

from fleetroute.learning_fold import add_counts
from fleetroute.replica_learning import Published
from fleetroute.v1alpha1 import learning_pb2
from fleetroute_router.arm_stats import ArmStatistics as Counts
from fleetroute_router.learning.merge import Key, key
from fleetroute_router.learning.state import from_proto, to_proto
from fleetroute_router.policies.bandits import LinearBandit
from fleetroute_router.policies.base import SelectionPolicy
from fleetroute_router.policies.linear import ArmStatistics, LinearModel

log = logging.getLogger(__name__)
Totals = dict[Key, ArmStatistics]


def add_into(total: Totals, arms: Iterable[ArmStatistics]) -> None:
    """Add contributions (no prior) into `total`, arm and objective by arm and objective."""
    for arm in arms:
        held = total.get(key(arm))
        total[key(arm)] = (
            arm
            if held is None
            else ArmStatistics(
                arm.arm,
                held.gram + arm.gram,
                held.target + arm.target,
                held.observations + arm.observations,
                held.reward_sum + arm.reward_sum,
                arm.objective,
            )
        )


def contribution(model: LinearModel) -> list[ArmStatistics]:
    """A model's statistics without its prior λI: what its observations added."""
    found = []
    for stats in model.statistics():
        gram = stats.gram.copy()
        gram.flat[:: gram.shape[0] + 1] -= model.regularization
        found.append(
            ArmStatistics(
                stats.arm, gram, stats.target, stats.observations, stats.reward_sum, stats.objective
            )
        )
    return found


def fits(model: LinearModel, state: learning_pb2.LearnerState) -> bool:
    """Whether published statistics can be added to this model (same ridge parameters)."""
    return (
        model.dimension in (0, state.dimension)
        and state.regularization == model.regularization
        and state.discount == model.discount
        and (not state.HasField("prior_mean") or state.prior_mean == model.prior_mean)
        and set(state.objectives) <= set(model.objectives)
    )


class ReplicaLearning:
    """One replica's merged view: its own contribution, its peers' latest, the cluster's base.

    No I/O: `learning/publisher.py` reads and writes the cluster and calls `resume`, `absorb`
    and `publish` here, on the event loop.
    """

    def __init__(
        self,
        replica: str,
        selectors: Callable[[], Mapping[str, SelectionPolicy]],
        counts: Callable[[], Counts],
        feature_names: Sequence[str] = (),
    ) -> None:
        self.replica = replica
        self.sequence = 0
        self.resumed = False
        self._selectors, self._counts, self.feature_names = selectors, counts, feature_names
        self._peers: dict[str, Published] = {}
        self._base = learning_pb2.RouterLearning()
        # Per policy: the bandit being tracked and its local start state (prior excluded).
        self._local: dict[str, tuple[LinearBandit, Totals]] = {}
        self._refused: set[tuple[str, str]] = set()
        # The base's and the peers' statistics summed, per policy (see shared_totals).
        self._shared: dict[str, Totals] | None = None
        self._base_sequence: int | None = None

    def bandits(self) -> dict[str, LinearBandit]:
        """The learning policies by name; a policy seen for the first time (or rebuilt with a
        new algorithm) keeps what it holds now as its local start state."""
        found: dict[str, LinearBandit] = {}
        for name, selector in self._selectors().items():
            if not isinstance(selector, LinearBandit):
                continue
            tracked = self._local.get(name)
            if tracked is None or tracked[0] is not selector:
                local: Totals = {}
                add_into(local, contribution(selector.model))
                selector.track_own()
                self._local[name] = (selector, local)
                self._shared = None  # its parameters decide what fits
            found[name] = selector
        for gone in set(self._local) - set(found):
            del self._local[gone]
        return found

    @property
    def peers(self) -> Mapping[str, Published]:
        """The latest publish of every live peer taken in."""
        return self._peers

    def resume(self, own: Published | None) -> None:
        """Continue from this replica's own last publish (a restart under the same name)."""
        bandits = self.bandits()
        if own is not None:
            self.sequence = max(self.sequence, own.sequence)
            for name, state in own.learning.policies.items():
                bandit = bandits.get(name)
                if bandit is None or not fits(bandit.model, state):
                    continue
                model = bandit.track_own()
                for arm in from_proto(state, self.feature_names):
                    gram = arm.gram.copy()
                    gram.flat[:: gram.shape[0] + 1] += model.regularization
                    model.set_statistics(
                        ArmStatistics(
                            arm.arm,
                            gram,
                            arm.target,
                            arm.observations,
                            arm.reward_sum,
                            arm.objective,
                        )
                    )
            self._counts().restore(own.learning.counts, set(bandits))
            log.info("resumed replica %s at publish %d", self.replica, own.sequence)
        self.resumed = True

    def absorb(
        self,
        published: Sequence[Published],
        base: learning_pb2.RouterLearning | None = None,
        folded: Mapping[str, int] | None = None,
    ) -> list[str]:
        """`select`, then `rebuild` with the peers' statistics summed here (the publisher sums
        them in a worker thread instead)."""
        changed = self.select(published, base, folded)
        self.rebuild(self.shared_totals())
        return changed

    def select(
        self,
        published: Sequence[Published],
        base: learning_pb2.RouterLearning | None = None,
        folded: Mapping[str, int] | None = None,
        base_sequence: int | None = None,
    ) -> list[str]:
        """Take in the peers' latest publishes and the base (`base_sequence`: its sequence
        number, so that reading the same base again changes nothing); returns the peers whose
        contribution changed. A peer already folded into the base (at that sequence or later)
        is counted through the base only; a stale read (an older sequence) changes nothing."""
        folded = folded or {}
        latest: dict[str, Published] = {}
        changed = []
        for item in published:
            if item.replica == self.replica or item.sequence <= folded.get(item.replica, -1):
                continue
            held = self._peers.get(item.replica)
            if held is not None and held.sequence >= item.sequence:
                latest[item.replica] = held  # a stale read: keep the newer one
                continue
            latest[item.replica] = item
            changed.append(item.replica)
        changed += [r for r in self._peers if r not in latest]
        self._peers = latest
        if base is not None and (base_sequence is None or base_sequence != self._base_sequence):
            self._base, self._base_sequence = base, base_sequence
            changed.append("base")
        if changed:
            self._shared = None
        return changed

    def models(self) -> dict[str, LinearModel]:
        """The learning policies' models by name (on the loop, for `shared_totals`)."""
        return {name: bandit.model for name, bandit in self.bandits().items()}

    def shared_totals(self, models: Mapping[str, LinearModel] | None = None) -> dict[str, Totals]:
        """Per policy, the base's and every peer's statistics summed (no prior): pure over the
        messages selected, so it may run in a worker thread; kept until `select` changes them."""
        models = self.models() if models is None else models
        cached = self._shared
        if cached is not None and set(cached) == set(models):
            return cached
        sources = [("base", self._base)] + [(r, p.learning) for r, p in self._peers.items()]
        shared: dict[str, Totals] = {}
        for name, model in models.items():
            total = shared.setdefault(name, {})
            for source, learning in sources:
                state = learning.policies.get(name)
                if state is None:
                    continue
                try:
                    if not fits(model, state):
                        raise ValueError("other ridge parameters")
                    add_into(total, from_proto(state, self.feature_names))
                except ValueError as error:
                    if (source, name) not in self._refused:
                        self._refused.add((source, name))
                        log.warning("policy %s: not merging %s: %s", name, source, error)
        self._shared = shared
        return shared

    def rebuild(self, shared: Mapping[str, Totals]) -> None:
        """Set every policy to λI + local start state + own contribution + `shared` (the base's
        and the peers', from `shared_totals`)."""
        for name, bandit in self.bandits().items():
            model = bandit.model
            total: Totals = dict(self._local[name][1])
            if bandit.own is not None:
                add_into(total, contribution(bandit.own))
            add_into(total, shared.get(name, {}).values())
            for stats in total.values():
                if stats.objective not in model.objectives:
                    continue
                gram = stats.gram.copy()
                gram.flat[:: gram.shape[0] + 1] += model.regularization
                if model.discount < 1.0:
                    gram = _positive(gram, model.regularization)
                model.set_statistics(
                    ArmStatistics(
                        stats.arm,
                        gram,
                        stats.target,
                        max(stats.observations, 0.0),
                        stats.reward_sum,
                        stats.objective,
                    )
                )

    def publish(self) -> learning_pb2.RouterLearning:
        """This replica's own contribution under the next sequence number (call `resume` first:
        publishing before it would overwrite the contribution of an earlier run)."""
        return self.capture()()

    def capture(self) -> Callable[[], learning_pb2.RouterLearning]:
        """`publish` in two steps: the next sequence number and copies of the live statistics
        now (on the loop), and a function building the message from them (in a thread)."""
        if not self.resumed:
            raise RuntimeError("publish before resume would drop an earlier run's learning")
        self.sequence += 1
        taken = [
            (name, bandit, contribution(bandit.own))
            for name, bandit in self.bandits().items()
            if bandit.own is not None and bandit.own.dimension
        ]
        counts = self._counts().state()

        def build() -> learning_pb2.RouterLearning:
            learning = learning_pb2.RouterLearning(replica=self.replica)
            learning.taken_at.GetCurrentTime()
            for name, bandit, arms in taken:
                learning.policies[name].CopyFrom(
                    to_proto(bandit, self.feature_names, arms, delta=True)
                )
            for policy, message in counts.items():
                learning.counts[policy].CopyFrom(message)
            return learning

        return build

    def merged_counts(self) -> dict[str, learning_pb2.PolicyCounts]:
        """Decision and score counts per policy over the base, the peers and this replica."""
        merged: dict[str, learning_pb2.PolicyCounts] = {}
        sources = [self._base.counts, self._counts().state()]
        sources += [p.learning.counts for p in self._peers.values()]
        for counts in sources:
            for policy, message in counts.items():
                add_counts(merged.setdefault(policy, learning_pb2.PolicyCounts()), message)
        return merged


def _positive(gram: np.ndarray, floor: float) -> np.ndarray:
    """A symmetric matrix with eigenvalues raised to at least `floor` (a discounted merge can
    subtract a little more than a replica still holds). A Cholesky factorisation (microseconds)
    tells whether it already is; only a matrix that is not pays for the eigendecomposition."""
    symmetric = (gram + gram.T) / 2.0
    try:
        np.linalg.cholesky(symmetric - floor * (1.0 - 1e-9) * np.eye(gram.shape[0]))
    except np.linalg.LinAlgError:
        values, vectors = np.linalg.eigh(symmetric)
        result: np.ndarray = (vectors * np.maximum(values, floor)) @ vectors.T
        return result
    return gram
