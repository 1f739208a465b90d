"""What an operator watches during a rollout, from two readings of the router."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from fleetroute.top.snapshot import FAILED, MEASURED, SERVED, Arm, Snapshot


@dataclass(frozen=True)
class ArmView:
    """One candidate pool of a policy."""

    pool: str
    decisions_per_s: float
    # Share of the policy's decisions in the last interval, and since the router started.
    split: float
    share: float
    mean_reward: float
    rewards: int
    watts: float  # joules per second of the requests served there
    joules_per_request: float | None
    measured: float | None  # share of that energy measured (DCGM), None without energy
    grams_per_hour: float
    errors_per_s: float


@dataclass(frozen=True)
class PolicyView:
    policy: str
    algorithm: str
    decisions_per_s: float
    arms: list[ArmView]


@dataclass(frozen=True)
class View:
    revision: str
    interval_s: float
    policies: list[PolicyView]


def _delta(
    now: Mapping[Arm, Mapping[str, float]],
    then: Mapping[Arm, Mapping[str, float]],
    arm: Arm,
    key: str,
) -> float:
    return max(now.get(arm, {}).get(key, 0.0) - then.get(arm, {}).get(key, 0.0), 0.0)


def compute(before: Snapshot, after: Snapshot) -> View:
    """Rates over the interval between two snapshots (counter resets read as zero)."""
    seconds = max(after.at - before.at, 1e-9)
    earlier = {(p.policy, a.pool): a.decisions for p in before.stats.policies for a in p.arms}
    policies = []
    for policy in after.stats.policies:
        deltas = {
            a.pool: max(a.decisions - earlier.get((policy.policy, a.pool), 0), 0)
            for a in policy.arms
        }
        total = sum(deltas.values())
        arms = []
        for arm in policy.arms:
            key = (policy.policy, arm.pool)
            joules = _delta(after.totals, before.totals, key, "joules")
            served = _delta(after.totals, before.totals, key, SERVED)
            arms.append(
                ArmView(
                    pool=arm.pool,
                    decisions_per_s=deltas[arm.pool] / seconds,
                    split=deltas[arm.pool] / total if total else 0.0,
                    share=arm.share,
                    mean_reward=arm.mean_reward,
                    rewards=arm.rewards,
                    watts=joules / seconds,
                    joules_per_request=joules / served if served else None,
                    measured=_delta(after.totals, before.totals, key, MEASURED) / joules
                    if joules
                    else None,
                    grams_per_hour=_delta(after.totals, before.totals, key, "grams")
                    / seconds
                    * 3600,
                    errors_per_s=_delta(after.totals, before.totals, key, FAILED) / seconds,
                )
            )
        policies.append(PolicyView(policy.policy, policy.algorithm, total / seconds, arms))
    return View(after.stats.config_revision, seconds, policies)
