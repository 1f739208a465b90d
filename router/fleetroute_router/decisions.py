"""Routing decisions, and a bounded map that lets held items expire after a time-to-live."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Generic, TypeVar

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
    # The objective weights the choice was made with (None: a concrete model, no policy).
    weights: npt.NDArray[np.float64] | None = None
    # The prompt's estimated tokens (features.estimate_tokens).
    prompt_tokens: int = 0


T = TypeVar("T")


class Expiring(Generic[T]):
    """Items by key, bounded; each expires `ttl_s` after it was put, the oldest go first, and
    `on_drop(item, reason)` hears of every item that expired or was pushed out."""

    def __init__(
        self,
        ttl_s: float = 600.0,
        capacity: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
        on_drop: Callable[[T, str], None] | None = None,
    ) -> None:
        self.ttl_s, self.capacity, self._clock = ttl_s, capacity, clock
        self._on_drop = on_drop
        self._items: OrderedDict[str, tuple[float, T]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def put(self, key: str, item: T) -> None:
        """Hold an item (expiring old ones, and pushing out the oldest when full)."""
        self._items[key] = (self._clock(), item)
        self._items.move_to_end(key)
        self.expire(extra=max(len(self._items) - self.capacity, 0))

    def take(self, key: str) -> T | None:
        """Remove and return an item (None when unknown or expired)."""
        self.expire()
        held = self._items.pop(key, None)
        return None if held is None else held[1]

    def expire(self, extra: int = 0) -> None:
        """Drop expired items (and `extra` of the oldest: pushed out)."""
        deadline = self._clock() - self.ttl_s
        while self._items:
            put_at, item = next(iter(self._items.values()))
            expired = put_at < deadline
            if not expired and extra <= 0:
                break
            self._items.popitem(last=False)
            extra -= 0 if expired else 1
            if self._on_drop is not None:
                self._on_drop(item, "expired" if expired else "capacity")
