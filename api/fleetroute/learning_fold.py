"""Arithmetic on published learning messages: fold a departed replica into the base, merge views.

Pure functions of RouterLearning messages, shared by the operator (which folds a replica whose
Pod is gone into the compacted base, and sums every replica's counts for RoutingPolicy status)
and the router. Ridge statistics are sums over observations, so a replica's contribution (its
statistics without the prior) adds into the base arm by arm and objective by objective. A
discounted policy (discount < 1) forgets as it would have: the base first decays by
discount^n, n the observations the departed replica adds, which keeps the base bounded.
"""

from __future__ import annotations

from collections.abc import Iterable

from fleetroute.v1alpha1 import learning_pb2

BASE_REPLICA = "base"


def _key(arm: learning_pb2.ArmStatistics) -> tuple[str, str]:
    return arm.arm, arm.objective


def _add(
    into: learning_pb2.ArmStatistics, more: learning_pb2.ArmStatistics, scale: float = 1.0
) -> None:
    """into = into * scale + more (the gram, target and counts alike)."""
    if len(into.gram) != len(more.gram) or len(into.target) != len(more.target):
        raise ValueError(f"arm {more.arm!r}: statistics of another dimension")
    into.gram[:] = [a * scale + b for a, b in zip(into.gram, more.gram, strict=True)]
    into.target[:] = [a * scale + b for a, b in zip(into.target, more.target, strict=True)]
    into.observations = into.observations * scale + more.observations
    into.reward_sum = into.reward_sum * scale + more.reward_sum


def fits(base: learning_pb2.LearnerState, state: learning_pb2.LearnerState) -> bool:
    """Whether two policies' statistics can be summed (same features and ridge parameters)."""
    return (
        base.dimension == state.dimension
        and base.regularization == state.regularization
        and base.discount == state.discount
        and list(base.feature_names) == list(state.feature_names)
        and base.prior_mean == state.prior_mean
    )


def fold_policy(held: learning_pb2.LearnerState, gone: learning_pb2.LearnerState) -> None:
    """Add a departed replica's contribution of one policy to the base's, in place."""
    adding = {_key(a): a for a in gone.arms}
    arms = {_key(a): a for a in held.arms}
    for key, arm in adding.items():
        scale = held.discount**arm.observations if held.discount < 1.0 else 1.0
        found = arms.get(key)
        if found is None:
            held.arms.add().CopyFrom(arm)
        else:
            _add(found, arm, scale)
    for objective in gone.objectives:
        if objective not in held.objectives:
            held.objectives.append(objective)


def add_counts(into: learning_pb2.PolicyCounts, more: learning_pb2.PolicyCounts) -> None:
    """Add one replica's decision and score counts of a policy to another's (they are sums)."""
    arms = {a.arm: a for a in into.arms}
    for arm in more.arms:
        held = arms.get(arm.arm)
        if held is None:
            held = into.arms.add(arm=arm.arm)
            arms[arm.arm] = held
        held.decisions += arm.decisions
        for objective, value in arm.observations.items():
            held.observations[objective] = held.observations.get(objective, 0.0) + value
        for objective, value in arm.score_sums.items():
            held.score_sums[objective] = held.score_sums.get(objective, 0.0) + value


def fold(
    base: learning_pb2.RouterLearning, gone: learning_pb2.RouterLearning
) -> learning_pb2.RouterLearning:
    """The base with a departed replica's last contribution added (a new message). A policy
    whose features or ridge parameters changed since the base was folded starts the base over
    with the replica's statistics."""
    merged = learning_pb2.RouterLearning()
    merged.CopyFrom(base)
    merged.replica = BASE_REPLICA
    merged.taken_at.GetCurrentTime()
    for name, state in gone.policies.items():
        if name not in merged.policies or not fits(merged.policies[name], state):
            merged.policies[name].CopyFrom(state)
            continue
        fold_policy(merged.policies[name], state)
    for name, counts in gone.counts.items():
        add_counts(merged.counts[name], counts)
    return merged


def merged_counts(
    learnings: Iterable[learning_pb2.RouterLearning],
) -> dict[str, learning_pb2.PolicyCounts]:
    """Decision and score counts per policy summed over several replicas (and the base)."""
    merged: dict[str, learning_pb2.PolicyCounts] = {}
    for learning in learnings:
        for policy, counts in learning.counts.items():
            add_counts(merged.setdefault(policy, learning_pb2.PolicyCounts()), counts)
    return merged
