"""Per-endpoint circuit breakers: open after consecutive failures, probe again after a cooldown."""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from dataclasses import dataclass


@dataclass
class _State:
    failures: int = 0
    open_until: float = 0.0
    cooldown_s: float = 0.0
    probing: bool = False


class CircuitBreakers:
    """closed -> (failure_threshold consecutive failures) -> open for a cooldown that doubles
    on each re-opening up to max_cooldown_s -> half-open: one probe request; its success closes
    the breaker, its failure opens it again."""

    def __init__(
        self,
        *,
        failure_threshold: int = 3,
        cooldown_s: float = 1.0,
        max_cooldown_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.failure_threshold, self.cooldown_s = failure_threshold, cooldown_s
        self.max_cooldown_s, self._clock = max_cooldown_s, clock
        self._states: dict[str, _State] = {}

    def is_open(self, address: str) -> bool:
        """True while the endpoint must not get requests (open, or half-open with a probe out)."""
        state = self._states.get(address)
        return (
            state is not None
            and state.failures >= self.failure_threshold
            and self._clock() < state.open_until
        )

    def attempt(self, address: str) -> None:
        """A request goes to the endpoint; when its breaker has tripped this is the half-open
        probe, and the others wait for it (for at most one cooldown)."""
        state = self._states.get(address)
        if state is not None and state.failures >= self.failure_threshold:
            state.probing = True
            state.open_until = self._clock() + state.cooldown_s

    def success(self, address: str) -> None:
        self._states.pop(address, None)

    def failure(self, address: str) -> None:
        state = self._states.setdefault(address, _State())
        state.failures += 1
        now = self._clock()
        if state.failures >= self.failure_threshold and (state.probing or now >= state.open_until):
            state.cooldown_s = min(max(state.cooldown_s * 2, self.cooldown_s), self.max_cooldown_s)
            if state.failures == self.failure_threshold:
                state.cooldown_s = self.cooldown_s
            state.open_until = now + state.cooldown_s
        state.probing = False

    def forget(self, addresses: Collection[str]) -> None:
        """Drop the state of endpoints that left the fleet."""
        for address in addresses:
            self._states.pop(address, None)

    def open_endpoints(self) -> list[str]:
        return sorted(a for a in self._states if self.is_open(a))
