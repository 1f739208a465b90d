"""Convert a linear bandit's statistics to and from the LearnerState protobuf message."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from fleetroute.v1alpha1 import learning_pb2
from fleetroute_router.policies.bandits import LinearBandit
from fleetroute_router.policies.linear import ArmStatistics


def arm_to_proto(stats: ArmStatistics) -> learning_pb2.ArmStatistics:
    return learning_pb2.ArmStatistics(
        arm=stats.arm,
        objective=stats.objective,
        gram=stats.gram.ravel().tolist(),
        target=stats.target.tolist(),
        observations=stats.observations,
        reward_sum=stats.reward_sum,
    )


def arm_from_proto(message: learning_pb2.ArmStatistics, dimension: int) -> ArmStatistics:
    if len(message.gram) != dimension * dimension or len(message.target) != dimension:
        raise ValueError(f"arm {message.arm!r}: statistics are not of dimension {dimension}")
    if not message.objective:
        raise ValueError(
            f"arm {message.arm!r}: statistics of one combined reward (a snapshot older than "
            "per-objective learning) cannot be split into objectives"
        )
    return ArmStatistics(
        objective=message.objective,
        arm=message.arm,
        gram=np.array(message.gram, dtype=np.float64).reshape(dimension, dimension),
        target=np.array(message.target, dtype=np.float64),
        observations=message.observations,
        reward_sum=message.reward_sum,
    )


def to_proto(
    bandit: LinearBandit,
    feature_names: Sequence[str] = (),
    arms: Sequence[ArmStatistics] | None = None,
    *,
    delta: bool = False,
) -> learning_pb2.LearnerState:
    """A bandit's statistics (or the given arm statistics, e.g. a delta) as a LearnerState."""
    model = bandit.model
    return learning_pb2.LearnerState(
        algorithm=bandit.name,
        dimension=model.dimension,
        feature_names=list(feature_names),
        regularization=model.regularization,
        discount=model.discount,
        prior_mean=model.prior_mean,
        objectives=list(model.objectives),
        arms=[arm_to_proto(a) for a in (model.statistics() if arms is None else arms)],
        delta=delta,
    )


def from_proto(
    state: learning_pb2.LearnerState, feature_names: Sequence[str] = ()
) -> list[ArmStatistics]:
    """The arm statistics in a LearnerState; ValueError when they do not fit these features."""
    if feature_names and state.feature_names and list(state.feature_names) != list(feature_names):
        raise ValueError("learned statistics come from a different feature extractor")
    return [arm_from_proto(a, state.dimension) for a in state.arms]


def restore_into(
    bandit: LinearBandit, state: learning_pb2.LearnerState, feature_names: Sequence[str] = ()
) -> int:
    """Load saved totals (not a delta) into a bandit; returns how many arms were restored."""
    if state.delta:
        raise ValueError("a delta cannot be restored on its own; merge it instead")
    if bandit.model.dimension not in (0, state.dimension):
        raise ValueError(
            f"saved statistics have {state.dimension} features, the policy {bandit.model.dimension}"
        )
    if state.HasField("prior_mean") and state.prior_mean != bandit.model.prior_mean:
        raise ValueError(
            f"saved statistics are relative to prior mean {state.prior_mean}, "
            f"the policy's is {bandit.model.prior_mean}"
        )
    arms = from_proto(state, feature_names)
    unknown = {a.objective for a in arms} - set(bandit.model.objectives)
    if unknown:
        raise ValueError(
            f"saved statistics are for objectives the policy does not learn: {unknown}"
        )
    bandit.restore(arms)
    return len(arms)
