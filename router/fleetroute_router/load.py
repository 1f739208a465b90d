"""Requests in flight per endpoint, as this router placed them."""

from __future__ import annotations

import itertools
from collections import Counter

from fleetroute.v1alpha1 import config_pb2


class LoadTracker:
    """Counts requests in flight per endpoint and picks the least loaded ready endpoint."""

    def __init__(self) -> None:
        self._in_flight: Counter[str] = Counter()
        self._turn = itertools.count()

    def in_flight(self, endpoint: str) -> int:
        return self._in_flight[endpoint]

    def pool_in_flight(self, pool: config_pb2.Pool) -> int:
        return sum(self._in_flight[e.address] for e in pool.endpoints)

    def start(self, endpoint: str) -> None:
        self._in_flight[endpoint] += 1

    def finish(self, endpoint: str) -> None:
        if self._in_flight[endpoint] > 0:
            self._in_flight[endpoint] -= 1
        if not self._in_flight[endpoint]:
            del self._in_flight[endpoint]

    def pick(self, pool: config_pb2.Pool, *, include_unready: bool = False) -> str | None:
        """The ready endpoint with the fewest requests in flight (ties in turn); None if none."""
        usable = [e.address for e in pool.endpoints if e.ready or include_unready]
        if not usable:
            return None
        fewest = min(self._in_flight[a] for a in usable)
        tied = [a for a in usable if self._in_flight[a] == fewest]
        return tied[next(self._turn) % len(tied)]
