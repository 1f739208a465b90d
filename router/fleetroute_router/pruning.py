"""Endpoints gone from the catalog: after a grace period, whatever was kept per endpoint
(breaker state, learned TTFT units, prefix holders, endpoint-labelled series) is forgotten, so
a router that sees pods come and go for weeks does not grow."""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterable

# Long enough for a pod that restarts under the same address to keep what was learned of it.
DEFAULT_GRACE_S = 300.0
Forget = Callable[[Collection[str]], None]


class EndpointPruner:
    """Tracks when each endpoint left the fleet; `sweep()` hands those gone for longer than
    `grace_s` to every forgetter, at most once per `every_s`."""

    def __init__(
        self,
        forgetters: Iterable[Forget],
        *,
        grace_s: float = DEFAULT_GRACE_S,
        every_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._forgetters = list(forgetters)
        self.grace_s, self._clock = grace_s, clock
        self.every_s = every_s if every_s is not None else max(grace_s / 10, 0.001)
        self._current: frozenset[str] = frozenset()
        self._gone: dict[str, float] = {}
        self._next_sweep = clock() + self.every_s
        self.forgotten = 0

    @property
    def leaving(self) -> Collection[str]:
        """Endpoints gone from the fleet, still within their grace period."""
        return self._gone.keys()

    def set_endpoints(self, addresses: Iterable[str]) -> None:
        """The fleet's endpoints now: ones that left start their grace, ones back stop it."""
        current = frozenset(addresses)
        now = self._clock()
        for address in self._current - current:
            self._gone.setdefault(address, now)
        for address in current:
            self._gone.pop(address, None)
        self._current = current

    def sweep(self) -> list[str]:
        """Forget the endpoints past their grace (cheap when it is not yet time); returns them."""
        now = self._clock()
        if now < self._next_sweep:
            return []
        self._next_sweep = now + self.every_s
        due = [a for a, left in self._gone.items() if now - left >= self.grace_s]
        if not due:
            return []
        for address in due:
            del self._gone[address]
        for forget in self._forgetters:
            forget(due)
        self.forgotten += len(due)
        return due
