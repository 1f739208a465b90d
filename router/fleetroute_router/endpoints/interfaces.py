"""The endpoint-picking interfaces, and nothing else: Filter, Scorer, Picker and what they see.

A profile runs its filters in order, then scores the survivors with every scorer (each score
clamped to [0, 1]) and sums them by weight, then lets its picker choose.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import NamedTuple, Protocol, runtime_checkable

from fleetroute_router import prefix


@dataclass(frozen=True)
class EndpointMetrics:
    """What an endpoint's /metrics said at `scraped_at` (monotonic seconds)."""

    waiting: float = 0.0
    running: float = 0.0
    kv_cache_usage: float | None = None
    power_watts: float | None = None
    scraped_at: float = 0.0


class Candidate(NamedTuple):
    """One endpoint of the pool being picked from (a tuple: one is made per endpoint on every
    request)."""

    address: str
    pool: str
    # None when the endpoint's metrics are missing or stale.
    metrics: EndpointMetrics | None = None
    # Requests this router has in flight there (always known, never stale).
    in_flight: int = 0


@dataclass(frozen=True)
class PickRequest:
    """The request as endpoint plugins see it."""

    prompt: str
    prompt_tokens: int
    role: str = "unified"
    # Time-to-first-token objective of the request's policy, 0 when none.
    ttft_slo_s: float = 0.0
    block_chars: int = field(default=prefix.DEFAULT_BLOCK_CHARS)

    @cached_property
    def blocks(self) -> tuple[int, ...]:
        return tuple(prefix.block_hashes(self.prompt, self.block_chars))


class Plugin(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def type(self) -> str: ...


@runtime_checkable
class Filter(Plugin, Protocol):
    def filter(self, request: PickRequest, candidates: Sequence[Candidate]) -> list[Candidate]:
        """The candidates that may serve the request (possibly none)."""
        ...


@runtime_checkable
class Scorer(Plugin, Protocol):
    def score(self, request: PickRequest, candidates: Sequence[Candidate]) -> Mapping[str, float]:
        """A score per candidate address; higher is better, clamped to [0, 1] by the caller."""
        ...


@runtime_checkable
class Picker(Plugin, Protocol):
    def pick(self, request: PickRequest, scored: Sequence[tuple[Candidate, float]]) -> Candidate:
        """One of the scored candidates (never empty)."""
        ...


@runtime_checkable
class PickObserver(Protocol):
    def picked(self, request: PickRequest, chosen: Candidate) -> None:
        """Called after every pick (e.g. to remember which endpoint now caches a prefix)."""
        ...


@runtime_checkable
class OutcomeObserver(Protocol):
    def observed(self, address: str, load_at_pick: float, ttft_s: float) -> None:
        """Called with each request's measured time to first token."""
        ...


@runtime_checkable
class Forgetful(Protocol):
    def forget(self, addresses: Collection[str]) -> None:
        """Called with endpoints gone from the fleet past a grace period: drop their state."""
        ...
