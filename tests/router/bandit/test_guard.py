"""SLO guard: pools predicted to break the TTFT/TPOT SLO are set aside, unless none is left."""

from __future__ import annotations

from google.protobuf.duration_pb2 import Duration

from fleetroute.v1alpha1 import config_pb2
from fleetroute_router.policies.base import Arm
from fleetroute_router.policies.guard import SloGuard

SLO = config_pb2.Slo(ttft=Duration(nanos=500_000_000), tpot=Duration(nanos=50_000_000))


def _guard() -> SloGuard:
    guard = SloGuard()
    guard.observe("fast", 0.0, 0.1, 0.02)
    guard.observe("slow", 1.0, 0.6, 0.02)  # 0.3 s unloaded
    return guard


def test_pools_predicted_late_are_set_aside() -> None:
    arms = [Arm("fast", 1, 0), Arm("slow", 1, 1), Arm("new", 1, 5)]
    kept = _guard().admissible(arms, SLO)
    assert [a.pool for a in kept] == ["fast", "new"]  # slow: 0.3 s x (1 + 1) > 0.5 s


def test_queue_per_endpoint_drives_the_prediction() -> None:
    guard = _guard()
    assert guard.predict(Arm("slow", 4, 2)) == (0.3 * 1.5, 0.02 * 1.05)
    assert [a.pool for a in guard.admissible([Arm("slow", 4, 2)], SLO)] == ["slow"]


def test_tpot_alone_can_set_a_pool_aside() -> None:
    guard = SloGuard()
    guard.observe("choppy", 0.0, None, 0.2)
    guard.observe("smooth", 0.0, None, 0.01)
    kept = guard.admissible([Arm("choppy", 1, 0), Arm("smooth", 1, 0)], SLO)
    assert [a.pool for a in kept] == ["smooth"]


def test_all_arms_stay_when_none_would_meet_the_slo() -> None:
    arms = [Arm("slow", 1, 3)]
    assert list(_guard().admissible(arms, SLO)) == arms


def test_no_slo_no_filtering() -> None:
    arms = [Arm("slow", 1, 30)]
    assert list(_guard().admissible(arms, config_pb2.Slo())) == arms
