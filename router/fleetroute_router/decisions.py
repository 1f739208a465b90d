"""Decisions awaiting feedback, keyed by id, expiring after a time-to-live."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class Decision:
    """Where one request was sent, and what is needed to learn from its outcome."""

    id: str
    request_id: str
    policy: str
    model: str
    pool: str
    endpoint: str
    algorithm: str
    scores: Mapping[str, float]
    prefill_pool: str = ""
    prefill_endpoint: str = ""
    features: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))
    # The request's share of its endpoint's concurrent requests at decision time.
    share: float = 1.0
    made_at: float = 0.0
    # The chosen endpoint's load signal at pick time (endpoints.signals.load).
    endpoint_load: float = 0.0
    # The policy chose an arm other than the one it currently believes best.
    explored: bool = False


class PendingDecisions:
    """A bounded map of decisions by id; the oldest expire first."""

    def __init__(
        self,
        ttl_s: float = 600.0,
        capacity: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl, self._capacity, self._clock = ttl_s, capacity, clock
        self._items: OrderedDict[str, Decision] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, decision_id: object) -> bool:
        return decision_id in self._items

    def add(self, decision: Decision) -> list[Decision]:
        """Hold a decision; returns the decisions that expired or were pushed out."""
        self._items[decision.id] = decision
        return self.expire(extra=max(len(self._items) - self._capacity, 0))

    def take(self, decision_id: str) -> Decision | None:
        """Remove and return a decision (None when unknown or expired)."""
        decision = self._items.pop(decision_id, None)
        if decision is not None and self._clock() - decision.made_at > self._ttl:
            return None
        return decision

    def expire(self, extra: int = 0) -> list[Decision]:
        """Drop expired decisions (and `extra` of the oldest); returns what was dropped."""
        dropped = []
        deadline = self._clock() - self._ttl
        while self._items:
            oldest = next(iter(self._items.values()))
            if oldest.made_at >= deadline and extra <= 0:
                break
            self._items.popitem(last=False)
            extra -= 1
            dropped.append(oldest)
        return dropped
