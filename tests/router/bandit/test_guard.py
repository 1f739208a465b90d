"""SLO guard: pools that load would make break the SLO are set aside, probed, and forgotten."""

from __future__ import annotations

import pytest
from google.protobuf.duration_pb2 import Duration

from fleetroute.v1alpha1 import config_pb2
from fleetroute_router.policies import guard as guard_module
from fleetroute_router.policies.base import Arm
from fleetroute_router.policies.guard import SloGuard

SLO = config_pb2.Slo(ttft=Duration(nanos=500_000_000), tpot=Duration(nanos=50_000_000))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _guard(clock: Clock | None = None) -> SloGuard:
    guard = SloGuard(clock or Clock())
    guard.observe("fast", 0.0, 0.1, 0.02)
    guard.observe("slow", 1.0, 0.6, 0.02)  # 0.3 s unloaded
    return guard


def test_pools_load_makes_late_are_set_aside() -> None:
    arms = [Arm("fast", 1, 0), Arm("slow", 1, 1), Arm("new", 1, 5)]
    kept = _guard().admissible(arms, SLO)
    assert [a.pool for a in kept] == ["fast", "new"]  # slow: 0.3 s x (1 + 1) > 0.5 s


def test_queue_per_endpoint_drives_the_prediction() -> None:
    guard = _guard()
    assert guard.predict(Arm("slow", 4, 2)) == (0.3 * 1.5, 0.02 * 1.05)
    assert [a.pool for a in guard.admissible([Arm("slow", 4, 2)], SLO)] == ["slow"]


def test_tpot_under_load_can_set_a_pool_aside() -> None:
    guard = SloGuard(Clock())
    guard.observe("choppy", 0.0, None, 0.04)
    guard.observe("smooth", 0.0, None, 0.01)
    kept = guard.admissible([Arm("choppy", 1, 4), Arm("smooth", 1, 4)], SLO)
    assert [a.pool for a in kept] == ["smooth"]  # 0.04 x (1 + 0.1 x 4) > 0.05


def test_a_pool_slower_than_the_slo_even_when_idle_stays_a_candidate() -> None:
    """Its lateness is not load's doing: the latency objective weighs it against quality."""
    guard = SloGuard(Clock())
    guard.observe("l4", 0.0, 0.1, 0.09)
    guard.observe("h100", 0.0, 0.1, 0.01)
    kept = guard.admissible([Arm("l4", 1, 0), Arm("h100", 1, 0)], SLO)
    assert [a.pool for a in kept] == ["l4", "h100"]


def test_a_set_aside_pool_is_probed_at_a_bounded_rate() -> None:
    clock = Clock()
    guard = _guard(clock)
    arms = [Arm("fast", 1, 0), Arm("slow", 1, 1)]
    admitted = []
    for _ in range(100):  # 100 decisions over 20 s
        clock.now += 0.2
        admitted.append("slow" in [a.pool for a in guard.admissible(arms, SLO)])
    probes = sum(admitted)
    assert probes == pytest.approx(20 / guard_module.PROBE_INTERVAL_S, abs=1)


def test_estimates_age_and_are_forgotten() -> None:
    clock = Clock()
    guard = _guard(clock)
    clock.now += 3 * guard_module.HALF_LIFE_S
    guard.observe("slow", 0.0, 0.1, 0.02)  # one fast probe after a quiet spell
    ttft, _ = guard.predict(Arm("slow", 1, 0))
    assert ttft is not None
    assert ttft < 0.1 + (0.3 - 0.1) / 8 + 1e-9  # the old 0.3 s is mostly forgotten
    clock.now += guard_module.FORGET_AFTER_S + 1
    assert guard.predict(Arm("slow", 1, 0)) == (None, None)


def test_a_non_streamed_request_teaches_both_figures() -> None:
    guard = SloGuard(Clock())
    # No TTFT seen: 0.5 + 0.05 x 99 = 5.45 s allowed, 10.9 s taken: twice the SLO's figures.
    guard.observe("p", 0.0, None, None, e2e_s=10.9, tokens=100, slo=SLO)
    ttft, tpot = guard.predict(Arm("p", 1, 0))
    assert ttft == pytest.approx(1.0)
    assert tpot == pytest.approx(0.1)


def test_what_the_guard_learned_survives_a_snapshot() -> None:
    guard = _guard()
    restored = SloGuard(Clock())
    restored.restore(guard.state())
    assert restored.predict(Arm("slow", 1, 1)) == guard.predict(Arm("slow", 1, 1))


def test_all_arms_stay_when_none_would_meet_the_slo() -> None:
    arms = [Arm("slow", 1, 3)]
    assert list(_guard().admissible(arms, SLO)) == arms


def test_no_slo_no_filtering() -> None:
    arms = [Arm("slow", 1, 30)]
    assert list(_guard().admissible(arms, config_pb2.Slo())) == arms
