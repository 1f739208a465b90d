"""What the request path calls: one call per point, recording metrics and span data together.

Span tree of one proxied request (names; kinds in brackets):

    {operation} {requested model}        [SERVER]  the aiohttp server instrumentation's span
                                                   (from the caller's traceparent, if any)
      fleetroute.features                            feature extraction (routing core)
      fleetroute.decide                              the policy's choice among pools
      fleetroute.pick_endpoint                       endpoint picker within the pool
      fleetroute.upstream.prefill                    P/D: the prefill step
        POST                             [CLIENT]  aiohttp client instrumentation
      fleetroute.upstream.decode                     the request the client's answer comes from
        POST                             [CLIENT]  aiohttp client instrumentation

ext_proc requests get a SERVER span of our own (no aiohttp server there). Attributes use the
OpenTelemetry semantic conventions' constants (gen_ai.*, http.*, server.*, error.type), plus
fleetroute.* for routing: policy, algorithm, pool, endpoint, arm scores, exploration, predicted
and observed latency, energy (J, measured or modelled), carbon (g, intensity), cost, reward.
"""

from __future__ import annotations

import contextlib
import contextvars
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

from opentelemetry import trace
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as gen_ai
from opentelemetry.semconv.attributes import (
    error_attributes,
    http_attributes,
    server_attributes,
    url_attributes,
)
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from fleetroute.v1alpha1 import config_pb2
from fleetroute_router import energy, errors
from fleetroute_router.decisions import Decision
from fleetroute_router.endpoints.interfaces import EndpointMetrics
from fleetroute_router.fleet import Fleet
from fleetroute_router.metric_sources import configured_intensity
from fleetroute_router.telemetry import instrumentation
from fleetroute_router.telemetry.fleet_gauges import FleetGauges
from fleetroute_router.telemetry.metrics import (
    FALLBACK_REASONS,
    PREFIX,
    BreakerCollector,
    RouterMetrics,
)
from fleetroute_router.telemetry.tracing import Tracing

PROVIDER: Final = "fleetroute"
# The SERVER span of the request being handled: outcome attributes go there, not on whatever
# child span (e.g. the upstream call) is current when they are measured.
_REQUEST_SPAN: Final[contextvars.ContextVar[Span | None]] = contextvars.ContextVar(
    "fleetroute_request_span", default=None
)


def _request_span() -> Span:
    return _REQUEST_SPAN.get() or trace.get_current_span()


REJECT_REASON: Final[Mapping[type[errors.RoutingError], str]] = {
    errors.InvalidRequest: "invalid_request",
    errors.UnknownModel: "unknown_model",
    errors.NoCapacity: "no_capacity",
    errors.Overloaded: "overloaded",
    errors.UpstreamFailed: "upstream_failed",
    errors.Unauthenticated: "unauthenticated",
}


def reject_reason(error: BaseException) -> str | None:
    """The bounded reason label of a routing error (None for other exceptions)."""
    for kind, reason in REJECT_REASON.items():
        if isinstance(error, kind):
            return reason
    return None


def _seconds(duration: Any) -> float:
    return float(duration.ToTimedelta().total_seconds())


def slos(fleet: Fleet) -> list[tuple[str, str, float]]:
    """(policy, metric, seconds) of every latency objective in a fleet's config."""
    found = []
    for policy in fleet.config.policies:
        if policy.slo.HasField("ttft"):
            found.append((policy.name, "ttft", _seconds(policy.slo.ttft)))
        if policy.slo.HasField("tpot"):
            found.append((policy.name, "tpot", _seconds(policy.slo.tpot)))
    return found


@dataclass(frozen=True)
class Served:
    """What was measured of a served request."""

    e2e_s: float
    ttft_s: float | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    joules: float = 0.0
    energy_source: str = "none"
    reward: float | None = None
    dollars: float = 0.0

    @property
    def tpot_s(self) -> float | None:
        if self.ttft_s is None or self.completion_tokens < 2:
            return None
        return max(self.e2e_s - self.ttft_s, 0.0) / (self.completion_tokens - 1)


@dataclass(eq=False)
class _FleetView(Collector):
    """In-flight requests per pool, read at scrape time."""

    fleet: Fleet | None = None
    in_flight: Callable[[config_pb2.Pool], int] | None = None

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            f"{PREFIX}_in_flight_requests",
            "Requests the router has sent to a pool and not yet seen finish",
            labels=["pool"],
        )
        if self.fleet is not None and self.in_flight is not None:
            for pool in self.fleet.config.pools:
                family.add_metric([pool.name], float(self.in_flight(pool)))
        yield family

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily(f"{PREFIX}_in_flight_requests", "", labels=["pool"])


class RouterTelemetry:
    """Metrics and tracing of one router process."""

    def __init__(
        self, metrics: RouterMetrics | None = None, tracing: Tracing | None = None
    ) -> None:
        self.metrics = metrics or RouterMetrics()
        self.tracing = tracing or Tracing()
        self._fleet: Fleet | None = None
        self._candidates: dict[str, tuple[str, ...]] = {}
        self._slos: list[tuple[str, str, float]] = []
        self._view = _FleetView()
        self.metrics.registry.register(self._view)
        self._breakers: BreakerCollector | None = None
        self._gauges = FleetGauges(carbon_intensity=configured_intensity)
        self.metrics.registry.register(self._gauges)

    @property
    def registry(self) -> CollectorRegistry:
        return self.metrics.registry

    # Process state

    def watch(
        self,
        *,
        is_open: Callable[[str], bool] | None = None,
        in_flight: Callable[[config_pb2.Pool], int] | None = None,
        awaiting: Callable[[], int] | None = None,
        endpoint_metrics: Callable[[str], EndpointMetrics | None] | None = None,
        exporter_watts: Callable[[str], float | None] | None = None,
        carbon_intensity: Callable[[config_pb2.Pool], tuple[float, str]] | None = None,
    ) -> None:
        """Report breaker state, in-flight requests, decisions awaiting feedback, endpoint load
        and power, and grid carbon intensity at scrape time; `carbon_intensity` also prices
        each served request's CO2e."""
        if awaiting is not None:
            self.metrics.pending.set_function(lambda: float(awaiting()))
        if is_open is not None and self._breakers is None:
            self._breakers = BreakerCollector(self._endpoints, is_open)
            self.metrics.registry.register(self._breakers)
        if in_flight is not None:
            self._view.in_flight = in_flight
        if endpoint_metrics is not None:
            self._gauges.endpoint_metrics = endpoint_metrics
        if exporter_watts is not None:
            self._gauges.exporter_watts = exporter_watts
        if carbon_intensity is not None:
            self._gauges.carbon_intensity = carbon_intensity

    def _endpoints(self) -> Iterable[tuple[str, str]]:
        fleet = self._fleet
        if fleet is None:
            return []
        return [(p.name, e.address) for p in fleet.config.pools for e in p.endpoints]

    def forget_series(self, value: str) -> int:
        """Forget the cached label children carrying `value` (an endpoint address, a pool or
        policy name): call it with every metric.remove() of such series (children.py)."""
        return self.metrics.children.forget(value)

    def set_fleet(self, fleet: Fleet) -> None:
        """A new config: SLO gauges, and zeroed series for its pools and policies."""
        self._fleet = fleet
        self._view.fleet = fleet
        self._candidates = {p.name: tuple(p.candidates) for p in fleet.config.policies}
        self.metrics.arm_score.set_candidates(self._candidates)
        self._gauges.fleet = fleet
        self._slos = slos(fleet)
        self.metrics.set_slos(self._slos)
        for pool in fleet.config.pools:
            self.metrics.retries.labels(pool.name)
        for policy in fleet.config.policies:
            for reason in FALLBACK_REASONS:
                self.metrics.fallbacks.labels(policy.name, reason)

    def forget_endpoints(self, addresses: Collection[str]) -> None:
        """Endpoints gone from the fleet past their grace: remove their labelled series."""
        for address in addresses:
            self.metrics.requests.remove_by_labels({"endpoint": address})
            self.forget_series(address)  # the cached children of those series too

    # A request

    @contextlib.contextmanager
    def request(
        self, method: str, path: str, headers: Mapping[str, Any], operation: str = "chat"
    ) -> Iterator[Span | None]:
        """The SERVER span of one request, current for the block, continuing the caller's
        trace; routing errors count as rejected requests and mark the span as failed."""
        tracing = self.tracing
        attributes = {
            http_attributes.HTTP_REQUEST_METHOD: method,
            url_attributes.URL_PATH: path,
            gen_ai.GEN_AI_OPERATION_NAME: operation,
            gen_ai.GEN_AI_PROVIDER_NAME: PROVIDER,
        }
        current = trace.get_current_span()
        # Behind the aiohttp server instrumentation its SERVER span is the request's span.
        adopted = tracing.enabled and instrumentation.in_http_server_span()
        span: Span | None
        if adopted:
            span = current
            span.set_attributes(attributes)
        else:
            span = tracing.start(
                operation,
                kind=SpanKind.SERVER,
                context=tracing.extract(headers),
                attributes=attributes,
            )
        token = _REQUEST_SPAN.set(span)
        try:
            if span is None:
                yield None
            else:
                with trace.use_span(span, end_on_exit=False, record_exception=False):
                    yield span
        except errors.RoutingError as error:
            reason = reject_reason(error)
            if reason is not None:
                self.metrics.rejected.labels(reason).inc()
            if span is not None:
                span.set_attribute(error_attributes.ERROR_TYPE, reason or type(error).__name__)
                span.set_status(Status(StatusCode.ERROR, str(error)))
            raise
        except BaseException as error:
            if span is not None:
                span.set_attribute(error_attributes.ERROR_TYPE, type(error).__name__)
                span.set_status(Status(StatusCode.ERROR))
            raise
        finally:
            _REQUEST_SPAN.reset(token)
            if span is not None and not adopted:
                span.end()

    def requested(
        self,
        *,
        model: str,
        operation: str,
        max_tokens: int = 0,
        stream: bool = False,
        prompt: str | None = None,
    ) -> None:
        """What the caller asked for, on the current request span."""
        if not self.tracing.enabled:
            return
        span = _request_span()
        span.update_name(f"{operation} {model}")
        span.set_attribute(gen_ai.GEN_AI_OPERATION_NAME, operation)
        span.set_attribute(gen_ai.GEN_AI_REQUEST_MODEL, model)
        span.set_attribute("fleetroute.stream", stream)
        if max_tokens:
            span.set_attribute(gen_ai.GEN_AI_REQUEST_MAX_TOKENS, max_tokens)
        if prompt is not None and self.tracing.capture_content:
            span.set_attribute(gen_ai.GEN_AI_PROMPT, prompt)

    def decided(self, decision: Decision, seconds: float, *, span: Span | None = None) -> None:
        """A routing decision: counts, decision latency, arm scores; span attributes."""
        m = self.metrics
        child = m.children.child
        choice = "explore" if decision.explored else "exploit"
        mode = "disaggregated" if decision.prefill_endpoint else "aggregated"
        child(m.decisions, decision.policy, decision.algorithm, decision.pool, mode, choice).inc()
        child(m.decision_duration, decision.policy).observe(seconds)
        if decision.policy:  # exported at scrape time; set-aside candidates read NaN
            m.arm_score.decided(decision.policy, decision.scores)
        if not self.tracing.enabled:
            return
        target = span or _request_span()
        names = sorted(decision.scores)
        target.set_attributes(
            {
                gen_ai.GEN_AI_RESPONSE_MODEL: decision.model,
                "fleetroute.policy": decision.policy,
                "fleetroute.algorithm": decision.algorithm,
                "fleetroute.pool": decision.pool,
                "fleetroute.endpoint": decision.endpoint,
                "fleetroute.decision.id": decision.id,
                "fleetroute.decision.mode": mode,
                "fleetroute.decision.choice": choice,
                "fleetroute.decision.duration_s": seconds,
                "fleetroute.arm.names": names,
                "fleetroute.arm.scores": [float(decision.scores[n]) for n in names],
                "fleetroute.endpoint.load": float(decision.endpoint_load),
                "fleetroute.prefill.pool": decision.prefill_pool,
                "fleetroute.prefill.endpoint": decision.prefill_endpoint,
            }
        )
        for policy, metric, seconds in self._slos:
            if policy == decision.policy:
                target.set_attribute(f"fleetroute.slo.{metric}_s", seconds)

    def predicted(self, ttft_s: float | None) -> None:
        """The endpoint picker's TTFT prediction for the chosen endpoint, if it made one."""
        if ttft_s is not None and self.tracing.enabled:
            _request_span().set_attribute("fleetroute.ttft.predicted_s", ttft_s)

    def retried(self, before: Decision, after: Decision) -> None:
        """A request moved to another endpoint (another pool: a fallback)."""
        self.metrics.children.child(self.metrics.retries, before.pool).inc()
        if after.pool != before.pool:
            self.metrics.children.child(self.metrics.fallbacks, before.policy, "other_pool").inc()
        if self.tracing.enabled:
            _request_span().add_event(
                "fleetroute.retry",
                {
                    "fleetroute.from.endpoint": before.endpoint,
                    "fleetroute.to.endpoint": after.endpoint,
                },
            )

    def fallback(self, decision: Decision, reason: str) -> None:
        """The request was served otherwise than decided (prefill_local: P/D prefill failed)."""
        self.metrics.children.child(self.metrics.fallbacks, decision.policy, reason).inc()
        if self.tracing.enabled:
            _request_span().add_event("fleetroute.fallback", {"reason": reason})

    def served(self, decision: Decision, result: Served) -> None:
        """A request answered: outcome, latencies (against the SLO), tokens, energy, cost,
        reward; exemplars link the samples to the request's trace."""
        m, exemplar = self.metrics, self.tracing.exemplar()
        child = m.children.child
        route = (decision.policy, decision.model, decision.pool)
        child(m.requests, *route, decision.endpoint, "success").inc(exemplar=exemplar)
        child(m.duration, *route).observe(result.e2e_s, exemplar=exemplar)
        tpot = result.tpot_s
        if result.ttft_s is not None:
            child(m.ttft, *route).observe(result.ttft_s, exemplar=exemplar)
        if tpot is not None:
            child(m.tpot, *route).observe(tpot, exemplar=exemplar)
        child(m.tokens, *route, "input").inc(result.prompt_tokens)
        child(m.tokens, *route, "output").inc(result.completion_tokens)
        child(m.energy, decision.policy, decision.model, decision.pool, result.energy_source).inc(
            result.joules
        )
        fleet = self._fleet
        pool = fleet.pools.get(decision.pool) if fleet is not None else None
        intensity, intensity_source = (
            self._gauges.carbon_intensity(pool)
            if pool is not None and self._gauges.carbon_intensity is not None
            else (0.0, "none")
        )
        grams = energy.carbon_grams(result.joules, intensity)
        child(m.carbon, decision.policy, decision.model, decision.pool).inc(grams)
        dollars = result.dollars
        child(m.cost, decision.model, decision.pool).inc(dollars)
        if result.reward is not None and decision.policy:
            child(m.reward, decision.policy, decision.pool).observe(
                result.reward, exemplar=exemplar
            )
        if decision.policy:
            for policy, metric, target in self._slos:
                observed = result.ttft_s if metric == "ttft" else tpot
                if policy == decision.policy and observed is not None:
                    met = "met" if observed <= target else "missed"
                    child(m.slo_requests, policy, decision.pool, metric, met).inc()
        if not self.tracing.enabled:
            return
        span = _request_span()
        attributes: dict[str, Any] = {
            "fleetroute.outcome": "success",
            gen_ai.GEN_AI_USAGE_INPUT_TOKENS: result.prompt_tokens,
            gen_ai.GEN_AI_USAGE_OUTPUT_TOKENS: result.completion_tokens,
            "fleetroute.duration_s": result.e2e_s,
            "fleetroute.energy.joules": result.joules,
            "fleetroute.energy.source": result.energy_source,
            "fleetroute.energy.measured": result.energy_source == "dcgm",
            "fleetroute.carbon.grams": grams,
            "fleetroute.carbon.intensity_g_per_kwh": intensity,
            "fleetroute.carbon.intensity_source": intensity_source,
            "fleetroute.cost.dollars": dollars,
        }
        if result.ttft_s is not None:
            attributes["fleetroute.ttft.observed_s"] = result.ttft_s
        if tpot is not None:
            attributes["fleetroute.tpot.observed_s"] = tpot
        if result.reward is not None:
            attributes["fleetroute.reward"] = result.reward
        span.set_attributes(attributes)

    def scored(self, decision: Decision, scores: Mapping[str, float]) -> None:
        """Objective scores a policy learned for a decision."""
        if decision.policy:
            for objective, value in scores.items():
                self.metrics.children.child(
                    self.metrics.objective_score, decision.policy, decision.pool, objective
                ).observe(value)

    def feedback(self, policy: str, source: str, result: str) -> None:
        """A feedback message and what became of it."""
        self.metrics.children.child(self.metrics.feedback, policy, source, result).inc()

    def graded(self, decision: Decision, grade: Any, result: str) -> None:
        """Feedback learned (or a duplicate), on the feedback request's span."""
        if self.tracing.enabled:
            _request_span().set_attributes(
                {
                    "fleetroute.decision.id": decision.id,
                    "fleetroute.policy": decision.policy,
                    "fleetroute.pool": decision.pool,
                    "fleetroute.feedback.source": grade.source,
                    "fleetroute.feedback.quality": grade.quality,
                    "fleetroute.feedback.result": result,
                }
            )

    def quality_unobserved(self, policy: str) -> None:
        """A decision of a policy that weighs quality it has never observed."""
        self.metrics.children.child(self.metrics.quality_unobserved, policy).inc()

    def awaiting_dropped(self, expired: int, pushed: int) -> None:
        """Decisions that stopped awaiting feedback: past their window, or pushed out."""
        if expired:
            self.metrics.children.child(self.metrics.pending_dropped, "feedback", "expired").inc(
                expired
            )
        if pushed:
            self.metrics.children.child(self.metrics.pending_dropped, "feedback", "capacity").inc(
                pushed
            )

    def refused(self, error: errors.RoutingError) -> None:
        """A call refused outside a request's scope (a control rpc, a route over its limit)."""
        reason = reject_reason(error)
        if reason is not None:
            self.metrics.rejected.labels(reason).inc()

    def dropped(self, stage: str, reason: str) -> None:
        self.metrics.children.child(self.metrics.pending_dropped, stage, reason).inc()

    def finished(self, decision: Decision, outcome: str) -> None:
        """A request that was routed but not served: failure, cancelled or client_error."""
        route = (decision.policy, decision.model, decision.pool)
        self.metrics.children.child(self.metrics.requests, *route, decision.endpoint, outcome).inc(
            exemplar=self.tracing.exemplar()
        )
        if self.tracing.enabled:
            _request_span().set_attribute("fleetroute.outcome", outcome)

    def completion(self, text: str) -> None:
        """The answer's text on the current span, only when content capture is on."""
        if self.tracing.enabled and self.tracing.capture_content:
            _request_span().set_attribute(gen_ai.GEN_AI_COMPLETION, text)

    @contextlib.contextmanager
    def upstream(
        self, step: str, endpoint: str, model: str, pool: str = ""
    ) -> Iterator[dict[str, str]]:
        """A span for one upstream call (step: prefill or decode) around the HTTP client span
        of the aiohttp instrumentation; yields the W3C headers of this span to send with it
        (the instrumentation replaces them by its own; empty when tracing is off: the
        caller's own headers go through)."""
        tracing = self.tracing
        if not tracing.enabled:
            yield {}
            return
        host, _, port = endpoint.rpartition(":")
        attributes: dict[str, Any] = {
            gen_ai.GEN_AI_OPERATION_NAME: gen_ai.GenAiOperationNameValues.CHAT.value,
            gen_ai.GEN_AI_REQUEST_MODEL: model,
            server_attributes.SERVER_ADDRESS: host,
            "fleetroute.pool": pool,
            "fleetroute.endpoint": endpoint,
        }
        if port.isdigit():
            attributes[server_attributes.SERVER_PORT] = int(port)
        started = time.monotonic()
        with tracing.span(f"fleetroute.upstream.{step}", attributes=attributes) as span:
            headers: dict[str, str] = {}
            tracing.inject(headers, span)
            yield headers
            if span is not None:
                span.set_attribute("fleetroute.upstream.duration_s", time.monotonic() - started)
