"""Pick an endpoint inside a pool: run the pool's profile (filters, weighted scorers, picker)."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Protocol

from fleetroute.v1alpha1 import config_pb2
from fleetroute_router.endpoints import signals
from fleetroute_router.endpoints.config import Profile
from fleetroute_router.endpoints.interfaces import (
    Candidate,
    EndpointMetrics,
    Forgetful,
    PickRequest,
)
from fleetroute_router.features import RequestInfo, estimate_tokens
from fleetroute_router.load import EndpointPick, LoadTracker

ROLES = {config_pb2.ROLE_PREFILL: "prefill", config_pb2.ROLE_DECODE: "decode"}


class MetricsSource(Protocol):
    """Where scraped metrics come from (a MetricsScraper)."""

    def get(self, address: str) -> EndpointMetrics | None: ...


class NoMetrics:
    def get(self, address: str) -> EndpointMetrics | None:
        return None


class EndpointPicker:
    """The routing core's endpoint chooser built from endpoint-picker profiles."""

    def __init__(
        self,
        profiles: Mapping[str, Profile],
        load: LoadTracker,
        metrics: MetricsSource | None = None,
    ) -> None:
        if not profiles:
            raise ValueError("at least one profile is needed")
        self._profiles = dict(profiles)
        self._load = load
        self._metrics = metrics or NoMetrics()

    def profile(self, role: str) -> Profile:
        return (
            self._profiles.get(role)
            or self._profiles.get("default")
            or next(iter(self._profiles.values()))
        )

    def candidate(self, pool: str, address: str) -> Candidate:
        return Candidate(address, pool, self._metrics.get(address), self._load.in_flight(address))

    def _request(
        self, pool: config_pb2.Pool, request: RequestInfo, slo_ttft_s: float
    ) -> PickRequest:
        return PickRequest(
            prompt=request.prompt,
            prompt_tokens=estimate_tokens(request.prompt),
            role=ROLES.get(pool.role, "unified"),
            ttft_slo_s=slo_ttft_s,
        )

    def choose(
        self,
        pool: config_pb2.Pool,
        request: RequestInfo,
        *,
        slo_ttft_s: float = 0.0,
        exclude: Collection[str] = (),
        include_unready: bool = False,
    ) -> EndpointPick | None:
        """The endpoint to use, or None when every endpoint is filtered out (and the policy
        fails closed) or excluded."""
        pick_request = self._request(pool, request, slo_ttft_s)
        profile = self.profile(pick_request.role)
        candidates = [
            self.candidate(pool.name, e.address)
            for e in pool.endpoints
            if (e.ready or include_unready) and e.address not in exclude
        ]
        if not candidates:
            return None
        survivors = candidates
        for step in profile.filters:
            survivors = step.filter(pick_request, survivors)
        if not survivors:
            if not include_unready:
                return None
            survivors = candidates  # fail open: any endpoint rather than none
        if len(survivors) == 1:
            chosen = survivors[0]  # nothing to score or pick among
        else:
            scored = self._scored(profile, pick_request, survivors)
            chosen = profile.picker.pick(pick_request, scored)
        cached = self._cached_tokens(profile, pick_request, chosen.address)
        for observer in profile.pick_observers:
            observer.picked(pick_request, chosen)
        return EndpointPick(chosen.address, cached, signals.load(chosen))

    @staticmethod
    def _scored(
        profile: Profile, request: PickRequest, survivors: list[Candidate]
    ) -> list[tuple[Candidate, float]]:
        """Each survivor with its weighted mean score, every score clamped to [0, 1]."""
        addresses = [c.address for c in survivors]
        totals = [0.0] * len(survivors)
        weight_sum = 0.0
        for scorer, weight in profile.scorers:
            weight_sum += weight
            get = scorer.score(request, survivors).get
            for i, address in enumerate(addresses):
                score = get(address, 0.0)
                totals[i] += weight * (0.0 if score < 0.0 else 1.0 if score > 1.0 else score)
        scale = 1.0 / (weight_sum or 1.0)
        return [(c, total * scale) for c, total in zip(survivors, totals, strict=True)]

    @staticmethod
    def _cached_tokens(profile: Profile, request: PickRequest, address: str) -> int:
        """Prompt tokens the endpoint likely holds in its prefix cache (0 when unknown)."""
        best = 0
        for observer in profile.pick_observers:
            cached = getattr(observer, "cached_tokens", None)
            if cached is not None:
                best = max(best, int(cached(request, address)))
        return best

    def forget(self, addresses: Collection[str]) -> None:
        """Endpoints that left the fleet: plugins keeping state per endpoint drop it."""
        seen: set[int] = set()
        for profile in self._profiles.values():
            for plugin in profile.plugins:
                if isinstance(plugin, Forgetful) and id(plugin) not in seen:
                    seen.add(id(plugin))
                    plugin.forget(addresses)

    def observed_ttft(self, address: str, load_at_pick: float, ttft_s: float) -> None:
        """Feed a measured time to first token to the plugins that learn from it."""
        seen: set[int] = set()
        for profile in self._profiles.values():
            for observer in profile.outcome_observers:
                if id(observer) not in seen:
                    seen.add(id(observer))
                    observer.observed(address, load_at_pick, ttft_s)
