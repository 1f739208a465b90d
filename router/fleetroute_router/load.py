"""Requests in flight per endpoint, and the endpoint-chooser interface the routing core uses."""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass
from typing import Protocol

from fleetroute.v1alpha1 import config_pb2
from fleetroute_router.features import RequestInfo


@dataclass(frozen=True)
class EndpointPick:
    """An endpoint chosen in a pool, with what the chooser knew about it."""

    address: str
    # Prompt tokens the endpoint likely holds in its prefix cache.
    cached_tokens: int = 0
    # The endpoint's load signal at pick time (what TTFT predictions learn against).
    load: float = 0.0


class EndpointChooser(Protocol):
    """Chooses the endpoint inside a pool (endpoints.scheduler.EndpointPicker in serving)."""

    def choose(
        self,
        pool: config_pb2.Pool,
        request: RequestInfo,
        *,
        slo_ttft_s: float = 0.0,
        exclude: Collection[str] = (),
        include_unready: bool = False,
    ) -> EndpointPick | None: ...


class LoadTracker:
    """Counts requests in flight per endpoint and per pool, and picks the least loaded ready
    endpoint."""

    def __init__(self) -> None:
        self._in_flight: Counter[str] = Counter()
        # By pool name: what a pool has in flight is read for every candidate of every
        # decision, so it is counted as requests start and finish, not summed over endpoints.
        self.by_pool: dict[str, int] = {}
        self._turn = itertools.count()

    def in_flight(self, endpoint: str) -> int:
        return self._in_flight[endpoint]

    def pool_in_flight(self, pool: config_pb2.Pool) -> int:
        """Requests in flight that were sent to this pool."""
        return self.by_pool.get(pool.name, 0)

    def start(self, endpoint: str, pool: str) -> None:
        """A request went to `endpoint` of `pool`."""
        self._in_flight[endpoint] += 1
        self.by_pool[pool] = self.by_pool.get(pool, 0) + 1

    def finish(self, endpoint: str, pool: str) -> None:
        """A request `start` counted is over."""
        if self._in_flight[endpoint] > 0:
            self._in_flight[endpoint] -= 1
        if not self._in_flight[endpoint]:
            del self._in_flight[endpoint]
        left = self.by_pool.get(pool, 0) - 1
        if left > 0:
            self.by_pool[pool] = left
        else:
            self.by_pool.pop(pool, None)

    def pick(
        self,
        pool: config_pb2.Pool,
        *,
        include_unready: bool = False,
        exclude: Collection[str] = (),
    ) -> str | None:
        """The ready endpoint with the fewest requests in flight (ties in turn); None if none."""
        usable = [
            e.address
            for e in pool.endpoints
            if (e.ready or include_unready) and e.address not in exclude
        ]
        if not usable:
            return None
        fewest = min(self._in_flight[a] for a in usable)
        tied = [a for a in usable if self._in_flight[a] == fewest]
        return tied[next(self._turn) % len(tied)]


class LeastInFlight:
    """The default chooser: LoadTracker.pick, skipping excluded endpoints."""

    def __init__(self, load: LoadTracker) -> None:
        self._load = load

    def choose(
        self,
        pool: config_pb2.Pool,
        request: RequestInfo,
        *,
        slo_ttft_s: float = 0.0,
        exclude: Collection[str] = (),
        include_unready: bool = False,
    ) -> EndpointPick | None:
        address = self._load.pick(pool, include_unready=include_unready, exclude=exclude)
        return None if address is None else EndpointPick(address, 0, self._load.in_flight(address))
