"""gRPC Routes awaiting their Report: held briefly (a time-to-live from the policy's SLO), and
bounded per peer and in all, so unreported Routes cannot pile load onto healthy endpoints."""

from __future__ import annotations

import heapq
import itertools
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from fleetroute.v1alpha1 import config_pb2
from fleetroute_router import errors

T = TypeVar("T")
# Tokens assumed for the SLO budget when a request does not say how many it wants.
DEFAULT_MAX_TOKENS = 256


@dataclass(frozen=True)
class Limits:
    """How long an unreported Route holds its endpoint's load, and how many may be held."""

    # The longest hold (and the hold of a request whose policy has no SLO).
    ttl_s: float = 30.0
    # The shortest hold, whatever the SLO says.
    floor_s: float = 2.0
    # The SLO's whole-request budget (ttft + tpot x tokens) times this is the hold.
    slo_factor: float = 2.0
    max_total: int = 4096
    max_per_peer: int = 512

    def __post_init__(self) -> None:
        if not 0 < self.floor_s <= self.ttl_s:
            raise ValueError("unreported routes: need 0 < floor <= ttl")
        if self.max_total < 1 or self.max_per_peer < 1:
            raise ValueError("unreported routes: limits must be at least 1")

    def ttl_for(self, policy: config_pb2.Policy | None, max_tokens: int = 0) -> float:
        """The hold of a request of `policy`: its SLO budget times slo_factor, in
        [floor_s, ttl_s]; ttl_s without an SLO."""
        if policy is None or not (policy.slo.HasField("ttft") or policy.slo.HasField("tpot")):
            return self.ttl_s
        ttft = policy.slo.ttft.ToTimedelta().total_seconds()
        tpot = policy.slo.tpot.ToTimedelta().total_seconds()
        budget = ttft + tpot * (max_tokens if max_tokens > 0 else DEFAULT_MAX_TOKENS)
        return min(max(self.slo_factor * budget, self.floor_s), self.ttl_s)


def peer_host(peer: str) -> str:
    """A gRPC peer without its port (`ipv4:10.0.0.7:51234` → `ipv4:10.0.0.7`): one client's
    connections count together."""
    if peer.startswith(("ipv4:", "ipv6:")):
        return peer.rsplit(":", 1)[0]
    return peer


@dataclass
class _Held(Generic[T]):
    item: T
    peer: str
    deadline: float


class Unreported(Generic[T]):
    """Items by key, each until its own deadline; `admit(peer)` refuses (Overloaded) a peer at
    its limit or a full store; `on_drop(item, reason)` hears of every item that expired."""

    def __init__(
        self,
        limits: Limits | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_drop: Callable[[T, str], None] | None = None,
    ) -> None:
        self.limits = limits or Limits()
        self._clock, self._on_drop = clock, on_drop
        self._items: dict[str, _Held[T]] = {}
        self._deadlines: list[tuple[float, int, str]] = []
        self._turn = itertools.count()
        self.per_peer: Counter[str] = Counter()

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def admit(self, peer: str) -> None:
        """Overloaded when `peer` holds its limit of unreported Routes, or the store is full
        (expired ones are dropped first)."""
        self.expire()
        limits = self.limits
        if self.per_peer[peer] >= limits.max_per_peer:
            raise errors.Overloaded(
                f"{limits.max_per_peer} routes of this client await their Report: report them "
                "(or wait for them to expire) before routing more"
            )
        if len(self._items) >= limits.max_total:
            raise errors.Overloaded(f"{limits.max_total} routes await their Report")

    def put(self, key: str, item: T, peer: str, ttl_s: float) -> None:
        """Hold an item for `ttl_s` (call admit first)."""
        deadline = self._clock() + ttl_s
        self._items[key] = _Held(item, peer, deadline)
        self.per_peer[peer] += 1
        heapq.heappush(self._deadlines, (deadline, next(self._turn), key))

    def take(self, key: str) -> T | None:
        """Remove and return an item (None when unknown or expired)."""
        self.expire()
        held = self._items.pop(key, None)
        if held is None:
            return None
        self._release(held.peer)
        return held.item

    def expire(self) -> None:
        """Drop the items past their deadline."""
        now = self._clock()
        deadlines = self._deadlines
        while deadlines and deadlines[0][0] <= now:
            deadline, _, key = heapq.heappop(deadlines)
            held = self._items.get(key)
            if held is None or held.deadline != deadline:
                continue  # taken already (or held anew under the same key)
            del self._items[key]
            self._release(held.peer)
            if self._on_drop is not None:
                self._on_drop(held.item, "expired")
        if len(deadlines) > 2 * len(self._items) + 64:  # taken items' entries: compact
            self._deadlines = [d for d in deadlines if d[2] in self._items]
            heapq.heapify(self._deadlines)

    def _release(self, peer: str) -> None:
        self.per_peer[peer] -= 1
        if self.per_peer[peer] <= 0:
            del self.per_peer[peer]
