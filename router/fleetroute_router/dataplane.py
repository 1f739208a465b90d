"""What both traffic transports (HTTP proxy, ext_proc) share around the routing core: endpoint
picking with scraped metrics, circuit breakers, energy accounting, outcome reporting, metrics."""

from __future__ import annotations

import logging
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry

from fleetroute_router import energy, reward
from fleetroute_router.core import RoutingCore
from fleetroute_router.decisions import Decision
from fleetroute_router.endpoints import config as endpoint_config
from fleetroute_router.endpoints.breaker import CircuitBreakers
from fleetroute_router.endpoints.context import PluginContext
from fleetroute_router.endpoints.scheduler import EndpointPicker
from fleetroute_router.endpoints.scraper import MetricsScraper
from fleetroute_router.features import RequestInfo
from fleetroute_router.fleet import Fleet
from fleetroute_router.load import LoadTracker
from fleetroute_router.openai_api import Usage
from fleetroute_router.telemetry import tracing
from fleetroute_router.telemetry.metrics import RouterMetrics
from fleetroute_router.telemetry.recorder import RouterTelemetry, Served

log = logging.getLogger(__name__)


@dataclass
class Flight:
    """One routed request on its way: its decision and what was measured so far."""

    decision: Decision
    info: RequestInfo
    started: float
    power: energy.PowerSample
    # Request path upstream (e.g. /v1/chat/completions).
    path: str = ""
    tried: list[str] = field(default_factory=list)
    # Energy spent elsewhere for this request (the prefill side of a P/D pair).
    extra_joules: float = 0.0


@dataclass(frozen=True)
class Result:
    """What a finished request reports."""

    joules: float
    source: str
    reward: float


class DataPlane:
    """Routing core + endpoint picker + breakers + scraper + energy, for one router process."""

    def __init__(
        self,
        fleet: Fleet,
        *,
        picker_config: Mapping[str, Any] | None = None,
        scrape: bool = True,
        scrape_interval_s: float = 0.075,
        breakers: CircuitBreakers | None = None,
    ) -> None:
        self.breakers = breakers or CircuitBreakers()
        self.scraper = (
            MetricsScraper(interval_s=scrape_interval_s, on_unreachable=self.breakers.failure)
            if scrape
            else None
        )
        profiles = endpoint_config.load(
            picker_config if picker_config is not None else endpoint_config.default_document(),
            PluginContext(breakers=self.breakers),
        )
        self.picker: EndpointPicker | None = None

        def chooser(load: LoadTracker) -> EndpointPicker:
            self.picker = EndpointPicker(profiles, load, self.scraper)
            return self.picker

        self.core = RoutingCore(fleet, endpoints=chooser)
        self.telemetry = RouterTelemetry(RouterMetrics(CollectorRegistry()), tracing.active())
        self.telemetry.watch(is_open=self.breakers.is_open, in_flight=self.core.load.pool_in_flight)
        self.telemetry.set_fleet(fleet)

    def start(self) -> None:
        """Begin scraping (needs a running event loop)."""
        self.set_fleet(self.core.fleet)

    def set_fleet(self, fleet: Fleet) -> None:
        if fleet is not self.core.fleet:
            self.core.set_fleet(fleet)
            self.telemetry.set_fleet(fleet)
        if self.scraper is not None:
            self.scraper.set_endpoints(
                e.address for pool in fleet.config.pools for e in pool.endpoints
            )

    async def close(self) -> None:
        if self.scraper is not None:
            await self.scraper.close()

    def _power(self, address: str) -> energy.PowerSample:
        metrics = self.scraper.get(address) if self.scraper is not None else None
        return energy.sample(metrics, self.core.load.in_flight(address))

    def route(self, info: RequestInfo, request_id: str = "", path: str = "") -> Flight:
        started = time.perf_counter()
        decision = self.core.route(info, request_id)
        self.telemetry.decided(decision, time.perf_counter() - started)
        self.breakers.attempt(decision.endpoint)
        return Flight(decision, info, time.monotonic(), self._power(decision.endpoint), path)

    def prefilled(self, flight: Flight, duration_s: float) -> None:
        """Account the prefill side of a disaggregated request."""
        decision = flight.decision
        pool = self.core.fleet.pools.get(decision.prefill_pool)
        if pool is None:
            return
        power = self._power(decision.prefill_endpoint)
        joules, _ = energy.request_joules(pool, duration_s, power, power)
        flight.extra_joules += joules

    def failed_attempt(self, flight: Flight, endpoint: str) -> None:
        """An endpoint failed before answering: count it against its breaker."""
        self.breakers.failure(endpoint)
        flight.tried.append(endpoint)

    def retry(self, flight: Flight, exclude: Collection[str] = ()) -> bool:
        """Move the request to an endpoint not tried yet; False when none is left."""
        moved = self.core.retry(flight.decision, flight.info, {*flight.tried, *exclude})
        if moved is None:
            return False
        self.telemetry.retried(flight.decision, moved)
        self.breakers.attempt(moved.endpoint)
        flight.decision = moved
        flight.started = time.monotonic()
        flight.power = self._power(moved.endpoint)
        return True

    def succeeded(self, flight: Flight, ttft_s: float | None, usage: Usage | None) -> Result:
        """Report a served request: energy, TTFT learning, breaker, reward."""
        decision = flight.decision
        e2e = time.monotonic() - flight.started
        self.breakers.success(decision.endpoint)
        pool = self.core.fleet.pools.get(decision.pool)
        joules, source = 0.0, "none"
        if pool is not None:
            end = self._power(decision.endpoint)
            joules, source = energy.request_joules(pool, e2e, flight.power, end)
            joules += flight.extra_joules
        if ttft_s is not None and self.picker is not None:
            self.picker.observed_ttft(decision.endpoint, decision.endpoint_load, ttft_s)
        outcome = reward.Outcome(
            success=True,
            ttft_s=ttft_s,
            e2e_s=e2e,
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
            energy_joules=joules if pool is not None else None,
        )
        scores = self._report(decision, outcome)
        self.telemetry.served(
            decision,
            Served(
                e2e,
                ttft_s,
                outcome.prompt_tokens,
                outcome.completion_tokens,
                joules,
                source,
                scores,
            ),
        )
        return Result(joules, source, scores)

    def early_latency(self, flight: Flight, ttft_s: float, tpot_s: float) -> None:
        """Latency measured while a stream is still running, for the core's SLO guard."""
        guard = getattr(self.core, "guard", None)
        if guard is not None:
            decision = flight.decision
            guard.observe(decision.pool, 1.0 / decision.share - 1.0, ttft_s, tpot_s)

    def failed(self, flight: Flight) -> None:
        """Report a request that could not be served."""
        self.telemetry.finished(flight.decision, "failure")
        self._report(flight.decision, reward.Outcome(success=False))

    def abandoned(self, flight: Flight, ttft_s: float | None = None) -> None:
        """The client went away: forget the decision. A time to first token measured before it
        left still teaches the policy latency (quality unknown, as for expired feedback)."""
        self.telemetry.finished(flight.decision, "cancelled")
        if ttft_s is not None:
            self.core.expire_learn(flight.decision, reward.Outcome(success=True, ttft_s=ttft_s))
        self.core.abandon(flight.decision.id)

    def _report(self, decision: Decision, outcome: reward.Outcome) -> float:
        try:
            return self.core.report(decision.id, outcome).reward
        except Exception:  # feedback must never fail the request it describes
            log.exception("reporting decision %s", decision.id)
            return 0.0
