"""Ask the router what it has learned per policy, for RoutingPolicy status."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import grpc

from fleetroute.v1alpha1 import router_pb2, router_pb2_grpc

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ArmSummary:
    """One arm as RoutingPolicy status shows it."""

    pool: str
    share: float
    mean_reward: float | None
    # Over every router replica (the merged learning view); None from one router's GetStats.
    decisions: int | None = None


@dataclass(frozen=True)
class PolicyLearned:
    """What the router learned of one policy: its arms, most chosen first, and how many
    quality scores (feedback or prior) it has."""

    arms: tuple[ArmSummary, ...]
    quality_observations: float = 0.0


Stats = Mapping[str, PolicyLearned]
Fetch = Callable[[], Stats]


def summarise(reply: router_pb2.RouterStats) -> dict[str, PolicyLearned]:
    """What was learned per policy name."""
    return {
        policy.policy: PolicyLearned(
            tuple(
                sorted(
                    (
                        ArmSummary(a.pool, a.share, a.mean_reward if a.rewards else None)
                        for a in policy.arms
                    ),
                    key=lambda a: (-a.share, a.pool),
                )
            ),
            policy.quality_observations,
        )
        for policy in reply.policies
    }


def grpc_fetcher(address: str, timeout_s: float = 2.0) -> Fetch:
    """A fetch function calling GetStats on the router at address."""
    channel = grpc.insecure_channel(address)
    stub = router_pb2_grpc.RouterStub(channel)

    def fetch() -> Stats:
        return summarise(stub.GetStats(router_pb2.StatsRequest(), timeout=timeout_s))

    return fetch


class CachedStats:
    """Router stats fetched at most once per period; empty (and logged) when the router is away."""

    def __init__(
        self, fetch: Fetch, period_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._fetch, self._period, self._clock = fetch, period_s, clock
        self._lock = threading.Lock()
        self._value: Stats = {}
        self._at: float | None = None

    def get(self) -> Stats:
        with self._lock:
            if self._at is None or self._clock() - self._at >= self._period:
                self._at = self._clock()
                try:
                    self._value = self._fetch()
                except grpc.RpcError as error:
                    log.warning("router stats unavailable: %s", error.code())
                    self._value = {}
            return self._value
