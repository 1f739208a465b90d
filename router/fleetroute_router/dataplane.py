"""The one outcome pipeline of every transport: OpenAI proxy, Envoy ext_proc and gRPC Route.

A request's life, top to bottom, each step one method here (transports call nothing else):

    route()            features → policy → pool and endpoint (core); the breaker counts the
                       attempt; the endpoint's power is sampled; the decision awaits feedback
    prefilled()        the prefill side of a P/D pair: its energy
    failed_attempt()   an endpoint failed before answering: its breaker hears of it,
    retry()              and the request moves to an endpoint not tried yet
    succeeded()        energy, breaker success, the picker's TTFT learning, the SLO guard;
                       latency, energy and cost are scored (reward.score) and learned now
    failed()           no endpoint answered: breaker failure, every objective learned as 0,
                       and no feedback is awaited (there is no answer to grade)
    abandoned()        the client left: a TTFT measured before that still teaches latency
    feedback()         quality, later (POST /v1/feedback, SubmitFeedback): learned into the
                       decision's policy within its feedback window, once per source

gRPC callers route and report themselves (route_remote, report_remote): the same steps, with
their flights held here for a short time-to-live (from the policy's SLO) and a bounded number
per client (unreported.Limits): Routes nobody reports cannot pile load onto an endpoint.
"""

from __future__ import annotations

import dataclasses
import logging
import ssl
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from fleetroute.v1alpha1 import config_pb2, learning_pb2
from fleetroute_router import energy, errors, pruning, reward
from fleetroute_router import feedback as feedback_fields
from fleetroute_router.auth import TokenFile
from fleetroute_router.core import RoutingCore
from fleetroute_router.decisions import Decision
from fleetroute_router.endpoints import config as endpoint_config
from fleetroute_router.endpoints.breaker import CircuitBreakers
from fleetroute_router.endpoints.context import PluginContext
from fleetroute_router.endpoints.scheduler import EndpointPicker
from fleetroute_router.endpoints.scraper import DEFAULT_INTERVAL_S, MetricsScraper
from fleetroute_router.features import RequestInfo
from fleetroute_router.feedback import Awaiting, FeedbackStore, Grade, Result
from fleetroute_router.fleet import Fleet
from fleetroute_router.load import LoadTracker
from fleetroute_router.metric_sources import MetricSources
from fleetroute_router.objectives import OBJECTIVES, QUALITY
from fleetroute_router.openai_api import Usage
from fleetroute_router.reward import Scores
from fleetroute_router.telemetry import tracing
from fleetroute_router.telemetry.metrics import RouterMetrics
from fleetroute_router.telemetry.recorder import RouterTelemetry, Served
from fleetroute_router.unreported import Limits, Unreported

log = logging.getLogger(__name__)
QUALITY_NAME = OBJECTIVES[QUALITY]


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
    # The SLO guard already has this request's TTFT (told while the stream still ran).
    guard_has_ttft: bool = False


@dataclass(frozen=True)
class Finished:
    """What a finished request reports."""

    joules: float
    source: str
    # The weighted reward of what was measured (None: nothing with a weight above 0).
    reward: float | None
    scores: Scores


@dataclass(frozen=True)
class FeedbackReply:
    """What feedback did: accepted or duplicate, for which decision, learning what."""

    result: Result
    decision: Decision
    quality: float


class DataPlane:
    """Routing core + endpoint picker + breakers + scraper + energy + feedback, for one router
    process; see the module docstring for the order of calls."""

    def __init__(
        self,
        fleet: Fleet,
        *,
        picker_config: Mapping[str, Any] | None = None,
        scrape: bool = True,
        scrape_interval_s: float = DEFAULT_INTERVAL_S,
        breakers: CircuitBreakers | None = None,
        feedback_capacity: int = 100_000,
        unreported: Limits | None = None,
        feedback_token: TokenFile | None = None,
        clock: Callable[[], float] = time.monotonic,
        upstream_ca: Path | None = None,
        prune_grace_s: float = pruning.DEFAULT_GRACE_S,
    ) -> None:
        """`feedback_token`: when given, feedback must carry it as a bearer token;
        `upstream_ca`: the CA bundle verifying https model servers (default: the system's);
        `prune_grace_s`: how long what is kept per endpoint outlives its leaving the fleet;
        `unreported`: how long and how many gRPC Routes may await their Report (`clock` times
        them)."""
        self.feedback_token = feedback_token
        # True: aiohttp verifies https servers against the system's CAs.
        self.upstream_ssl: ssl.SSLContext | bool = (
            ssl.create_default_context(cafile=upstream_ca) if upstream_ca is not None else True
        )
        self.breakers = breakers or CircuitBreakers()
        self.scraper = (
            MetricsScraper(
                interval_s=scrape_interval_s,
                on_unreachable=self.breakers.failure,
                ssl_context=self.upstream_ssl,
            )
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
        self.feedback_store = FeedbackStore(capacity=feedback_capacity)
        # DCGM exporters of the endpoints' nodes, and pools' grid carbon intensity metrics.
        self.sources = MetricSources()
        self.telemetry = RouterTelemetry(RouterMetrics(CollectorRegistry()), tracing.active())
        self.telemetry.watch(
            is_open=self.breakers.is_open,
            in_flight=self.core.load.pool_in_flight,
            awaiting=lambda: len(self.feedback_store),
            endpoint_metrics=self.scraper.get if self.scraper is not None else None,
            exporter_watts=self.sources.watts,
            carbon_intensity=self.sources.carbon_intensity,
        )
        self.telemetry.set_fleet(fleet)
        self.pruner = pruning.EndpointPruner(
            [self.breakers.forget, self._forget_picked, self.telemetry.forget_endpoints],
            grace_s=prune_grace_s,
            clock=clock,
        )
        self.pruner.set_endpoints(self._addresses(fleet))
        self._remote: Unreported[Flight] = Unreported(
            unreported, clock=clock, on_drop=self._remote_drop
        )

    @property
    def fleet(self) -> Fleet:
        """The fleet being served."""
        return self.core.fleet

    @property
    def load(self) -> LoadTracker:
        """Requests in flight per endpoint (this router's view)."""
        return self.core.load

    def fails_open(self, model: str) -> bool:
        """Whether `model` is a policy alias that passes requests through when nothing is ready."""
        policy = self.core.fleet.policies.get(model)
        return policy is not None and policy.failure_mode == config_pb2.FAIL_OPEN

    def start(self) -> None:
        """Begin scraping (needs a running event loop)."""
        self.set_fleet(self.core.fleet)

    @staticmethod
    def _addresses(fleet: Fleet) -> set[str]:
        return {e.address for pool in fleet.config.pools for e in pool.endpoints}

    def _forget_picked(self, addresses: Collection[str]) -> None:
        if self.picker is not None:
            self.picker.forget(addresses)

    def set_fleet(self, fleet: Fleet) -> None:
        if fleet is not self.core.fleet:
            self.core.set_fleet(fleet)
            self.telemetry.set_fleet(fleet)
            self.pruner.set_endpoints(self._addresses(fleet))
            self.pruner.sweep()
        if self.scraper is not None:
            self.scraper.set_endpoints(
                (e.address for pool in fleet.config.pools for e in pool.endpoints), fleet.secure
            )
        self.sources.set_fleet(fleet)

    async def close(self) -> None:
        await self.sources.close()
        if self.scraper is not None:
            await self.scraper.close()

    def _power(self, address: str) -> energy.PowerSample:
        metrics = self.scraper.get(address) if self.scraper is not None else None
        found = energy.sample(metrics, self.core.load.in_flight(address))
        watts = self.sources.watts(address)  # the node's DCGM exporter, when configured
        return found if watts is None else dataclasses.replace(found, measured_watts=watts)

    # Decide

    def route(
        self,
        info: RequestInfo,
        request_id: str = "",
        path: str = "",
        objective: config_pb2.Objective | None = None,
    ) -> Flight:
        """Decide where a request goes (the policy's weights, or `objective` for this one)."""
        started = time.perf_counter()
        self._remote.expire()  # unreported gRPC Routes past their time hold no load
        self.pruner.sweep()  # endpoints long gone: their state goes (cheap until it is time)
        decision = self.core.route(info, request_id, objective)
        self.telemetry.decided(decision, time.perf_counter() - started)
        if decision.policy and self.core.quality_unobserved(decision.policy):
            self.telemetry.quality_unobserved(decision.policy)
        window = self.core.window_s(decision.policy)
        if window is not None:
            expired, pushed = self.feedback_store.add(decision, window)
            self.telemetry.awaiting_dropped(expired, pushed)
        self.breakers.attempt(decision.endpoint)
        return Flight(decision, info, time.monotonic(), self._power(decision.endpoint), path)

    # Attempt

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
        self.feedback_store.moved(moved)
        self.breakers.attempt(moved.endpoint)
        flight.decision = moved
        flight.started = time.monotonic()
        flight.power = self._power(moved.endpoint)
        return True

    def early_latency(self, flight: Flight, ttft_s: float, tpot_s: float) -> None:
        """Latency measured while a stream still runs: the SLO guard sees a slow pool long
        before its requests end."""
        decision = flight.decision
        self.core.guard.observe(decision.pool, 1.0 / decision.share - 1.0, ttft_s, tpot_s)
        flight.guard_has_ttft = True

    # Outcome

    def succeeded(
        self,
        flight: Flight,
        ttft_s: float | None,
        usage: Usage | None,
        *,
        e2e_s: float | None = None,
        joules: float | None = None,
    ) -> Finished:
        """A served request: energy (measured here unless `joules` is given), breaker, the
        picker's and guard's latency learning; latency, energy and cost scored and learned.
        `e2e_s` overrides the duration measured here (a gRPC caller measured its own)."""
        decision = flight.decision
        e2e = time.monotonic() - flight.started if e2e_s is None else e2e_s
        self.core.release(decision)
        self.breakers.success(decision.endpoint)
        pool = self.core.fleet.pools.get(decision.pool)
        source = "client" if joules is not None else "none"
        if joules is None and pool is not None:
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
            energy_joules=joules,
        )
        result = self._learn(decision, outcome, pool, source, guard_has_ttft=flight.guard_has_ttft)
        self.telemetry.served(
            decision,
            Served(
                e2e,
                ttft_s,
                outcome.prompt_tokens,
                outcome.completion_tokens,
                result.joules,
                source,
                result.reward,
                result.scores.dollars,
            ),
        )
        return result

    def failed(self, flight: Flight) -> None:
        """No endpoint could answer the request: the last one's breaker, a 0 on every objective
        for the pool, and no feedback awaited."""
        decision = flight.decision
        self.core.release(decision)
        self.breakers.failure(decision.endpoint)
        self.feedback_store.discard(decision.id)
        self.telemetry.finished(decision, "failure")
        pool = self.core.fleet.pools.get(decision.pool)
        self._learn(decision, reward.Outcome(success=False), pool, "none")

    def abandoned(self, flight: Flight, ttft_s: float | None = None) -> None:
        """The client went away (or the server said the request was bad): nothing is scored
        but a time to first token measured before it left, which still teaches latency."""
        decision = flight.decision
        self.core.release(decision)
        self.telemetry.finished(decision, "cancelled")
        if ttft_s is None:
            self.feedback_store.discard(decision.id)  # no answer was seen: nothing to grade
        else:
            outcome = reward.Outcome(success=True, ttft_s=ttft_s)
            if not flight.guard_has_ttft:
                self.core.observe_latency(decision, outcome)
            policy = self.core.fleet.policies_by_name.get(decision.policy)
            latency = reward.latency_score(policy.slo, outcome) if policy else None
            if latency is not None:
                self.core.learn(decision, {"latency": latency})

    def _learn(
        self,
        decision: Decision,
        outcome: reward.Outcome,
        pool: config_pb2.Pool | None,
        source: str,
        *,
        guard_has_ttft: bool = False,
    ) -> Finished:
        policy = self.core.fleet.policies_by_name.get(decision.policy)
        if pool is None or policy is None:
            return Finished(outcome.energy_joules or 0.0, source, None, reward.Scores())
        if outcome.success:
            self.core.observe_latency(decision, outcome, ttft_known=guard_has_ttft)
        scores = reward.score(policy, pool, outcome, decision.share)
        measured = scores.measured()
        self.core.learn(decision, measured)
        self.telemetry.scored(decision, measured)
        weights = (
            decision.weights if decision.weights is not None else self.core.weights(decision.policy)
        )
        value = scores.reward(weights) if weights is not None else None
        return Finished(scores.joules, source, value, scores)

    # Feedback

    def receive_feedback(
        self, authorization: str | None, *, authenticated: bool = False, **fields: Any
    ) -> FeedbackReply:
        """Check a feedback call's token (when the router has one, unless the call was
        `authenticated` otherwise: a control rpc) and its fields (see feedback.grade), then
        learn it; Unauthenticated and InvalidFeedback are counted."""
        given = fields.get("source")
        source = given if isinstance(given, str) and given else "user"
        try:
            if self.feedback_token is not None and not authenticated:
                self.feedback_token.check(authorization)
            grade = feedback_fields.grade(**fields)
        except errors.Unauthenticated:
            self.telemetry.feedback("", source, "unauthorized")
            raise
        except errors.InvalidFeedback:
            self.telemetry.feedback("", source, "invalid")
            raise
        return self.feedback(grade)

    def feedback(self, grade: Grade) -> FeedbackReply:
        """Learn a quality score for a decision; UnknownDecision (unknown, failed or past its
        window) and ConflictingFeedback (another score from the same source) change nothing."""
        try:
            held = self.feedback_store.find(grade.decision_id, grade.request_id)
            result = self.feedback_store.record(held, grade)
        except errors.UnknownDecision as error:
            expired = isinstance(error, errors.FeedbackExpired)
            self.telemetry.feedback("", grade.source, "expired" if expired else "unknown")
            raise
        except errors.ConflictingFeedback:
            self.telemetry.feedback(held.decision.policy, grade.source, "conflict")
            raise
        decision = held.decision
        if result == "accepted":
            scores = {QUALITY_NAME: grade.quality}
            self.core.learn(decision, scores)
            self.telemetry.scored(decision, scores)
        self.telemetry.feedback(decision.policy, grade.source, result)
        self.telemetry.graded(decision, grade, result)
        return FeedbackReply(result, decision, grade.quality)

    # Snapshots

    def save_state(self, learning: learning_pb2.RouterLearning) -> Callable[[], None]:
        """Add the guard, counts and decisions awaiting feedback to a snapshot (on the loop:
        copies only); returns what finishes it off the loop (the message building)."""
        self.core.state(learning)
        held = [
            Awaiting(a.decision, a.deadline, dict(a.scores)) for a in self.feedback_store.items()
        ]

        def finish() -> None:
            learning.awaiting.extend(self.feedback_store.state(held))

        return finish

    def restore_state(self, learning: learning_pb2.RouterLearning, restored: list[str]) -> None:
        """Load a snapshot's guard, counts and awaiting decisions: feedback for a decision made
        before a restart is still learned within its window."""
        self.core.restore(learning, restored)
        models = {p.name: p.model for p in self.core.fleet.config.pools}
        count = self.feedback_store.restore_state(learning.awaiting, models)
        log.info("%d decisions await feedback from before the restart", count)

    # gRPC: the caller routes and reports

    def route_remote(
        self,
        info: RequestInfo,
        request_id: str = "",
        objective: config_pb2.Objective | None = None,
        peer: str = "",
    ) -> Decision:
        """Route for a caller (`peer`, its host) that sends the request itself and Reports how
        it went; Overloaded when that caller (or all) have too many Routes unreported."""
        try:
            self._remote.admit(peer)
        except errors.Overloaded as error:
            self.telemetry.refused(error)
            raise
        flight = self.route(info, request_id, objective=objective)
        policy = self.core.fleet.policies_by_name.get(flight.decision.policy)
        ttl = self._remote.limits.ttl_for(policy, info.max_tokens)
        self._remote.put(flight.decision.id, flight, peer, ttl)
        return flight.decision

    @property
    def unreported(self) -> int:
        """gRPC Routes awaiting their Report."""
        return len(self._remote)

    def report_remote(self, decision_id: str, outcome: reward.Outcome) -> Finished:
        """The outcome a gRPC caller measured for a decision of route_remote; UnknownDecision
        when it was never made, was reported already or expired."""
        flight = self._remote.take(decision_id)
        if flight is None:
            raise errors.UnknownDecision(
                f"no decision {decision_id!r} awaits a report (unknown, reported or expired)"
            )
        if not outcome.success:
            self.failed(flight)
            return Finished(0.0, "none", 0.0, reward.FAILED)
        usage = Usage(outcome.prompt_tokens, outcome.completion_tokens)
        return self.succeeded(
            flight, outcome.ttft_s, usage, e2e_s=outcome.e2e_s, joules=outcome.energy_joules
        )

    def _remote_drop(self, flight: Flight, reason: str) -> None:
        """A gRPC decision nobody reported: release its load (nothing was measured)."""
        self.core.release(flight.decision)
        self.telemetry.finished(flight.decision, "unreported")
        self.telemetry.dropped("in_flight", reason)
