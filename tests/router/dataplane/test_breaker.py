"""Circuit breakers: open after consecutive failures, one probe after the cooldown."""

from __future__ import annotations

from fleetroute_router.endpoints.breaker import CircuitBreakers


def test_open_probe_and_close() -> None:
    now = [0.0]
    breakers = CircuitBreakers(failure_threshold=3, cooldown_s=1.0, clock=lambda: now[0])
    for _ in range(2):
        breakers.failure("a")
    assert not breakers.is_open("a")
    breakers.failure("a")
    assert breakers.is_open("a")
    assert breakers.open_endpoints() == ["a"]
    now[0] = 1.5
    assert not breakers.is_open("a")  # half-open: one probe may go
    breakers.attempt("a")
    assert breakers.is_open("a")  # the others wait for the probe
    breakers.success("a")
    assert not breakers.is_open("a")


def test_a_failed_probe_doubles_the_cooldown() -> None:
    now = [0.0]
    breakers = CircuitBreakers(failure_threshold=1, cooldown_s=1.0, clock=lambda: now[0])
    breakers.failure("a")
    now[0] = 1.1
    breakers.attempt("a")
    breakers.failure("a")
    now[0] = 2.5
    assert breakers.is_open("a")  # reopened for 2 s from 1.1
    now[0] = 3.2
    assert not breakers.is_open("a")


def test_a_success_resets_the_count() -> None:
    breakers = CircuitBreakers(failure_threshold=2)
    breakers.failure("a")
    breakers.success("a")
    breakers.failure("a")
    assert not breakers.is_open("a")
