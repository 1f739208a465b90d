"""Every Prometheus series of the router, registered in one explicit registry.

Naming follows Prometheus conventions: a ``fleetroute_router_`` prefix, base units in the name
(seconds, joules, dollars), ``_total`` on counters.  Labels are bounded by configuration:
policy, model, pool, endpoint (an address from the router config), algorithm, outcome, reason,
mode, choice, metric, result.  Never request ids, decision ids or prompt text.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from fleetroute_router.telemetry.children import LabelChildren

PREFIX: Final = "fleetroute_router"
# Seconds: decisions take microseconds to milliseconds; requests take 10 ms to minutes.
DECISION_BUCKETS: Final = (
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
)  # fmt: skip
LATENCY_BUCKETS: Final = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
)  # fmt: skip
TPOT_BUCKETS: Final = (
    0.001, 0.0025, 0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0,
)  # fmt: skip
REWARD_BUCKETS: Final = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0)

OUTCOMES: Final = ("success", "failure", "cancelled", "client_error", "unreported")
FEEDBACK_RESULTS: Final = (
    "accepted", "duplicate", "conflict", "unknown", "expired", "invalid", "unauthorized",
)  # fmt: skip
OBJECTIVE_NAMES: Final = ("quality", "latency", "energy", "cost")
REJECT_REASONS: Final = (
    "invalid_request",
    "unknown_model",
    "no_capacity",
    "overloaded",
    "upstream_failed",
    "unauthenticated",
)
FALLBACK_REASONS: Final = ("other_pool", "prefill_local")


class RouterMetrics:
    """The router's series.  Pass a registry (tests do); default: a fresh one."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        # Per-request series go through this cache (children.py): labels() once per series.
        self.children = LabelChildren()
        r = self.registry
        route = ["policy", "model", "pool"]
        self.requests = Counter(
            f"{PREFIX}_requests",
            "Requests routed, by where they went and how they ended",
            [*route, "endpoint", "outcome"],
            registry=r,
        )
        self.rejected = Counter(
            f"{PREFIX}_rejected_requests",
            "Requests refused before or instead of reaching a model server",
            ["reason"],
            registry=r,
        )
        self.decisions = Counter(
            f"{PREFIX}_decisions",
            "Routing decisions; mode is aggregated or disaggregated (P/D split), choice is "
            "explore (an arm other than the one the policy believes best) or exploit",
            ["policy", "algorithm", "pool", "mode", "choice"],
            registry=r,
        )
        self.decision_duration = Histogram(
            f"{PREFIX}_decision_duration_seconds",
            "Time to decide where a request goes (features, policy, endpoint pick)",
            ["policy"],
            buckets=DECISION_BUCKETS,
            registry=r,
        )
        self.ttft = Histogram(
            f"{PREFIX}_ttft_seconds",
            "Time to first token seen by the router (streamed requests)",
            route,
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.tpot = Histogram(
            f"{PREFIX}_tpot_seconds",
            "Time per output token after the first (streamed requests)",
            route,
            buckets=TPOT_BUCKETS,
            registry=r,
        )
        self.duration = Histogram(
            f"{PREFIX}_request_duration_seconds",
            "End-to-end duration of served requests, routing included",
            route,
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.slo = Gauge(
            f"{PREFIX}_slo_seconds",
            "Latency objective of a RoutingPolicy (metric: ttft or tpot)",
            ["policy", "metric"],
            registry=r,
        )
        self.slo_requests = Counter(
            f"{PREFIX}_slo_requests",
            "Served requests measured against their policy's SLO (result: met or missed)",
            ["policy", "pool", "metric", "result"],
            registry=r,
        )
        self.reward = Histogram(
            f"{PREFIX}_reward",
            "Reward in [0, 1] the policy learned from, per request",
            ["policy", "pool"],
            buckets=REWARD_BUCKETS,
            registry=r,
        )
        self.objective_score = Histogram(
            f"{PREFIX}_objective_score",
            "Score in [0, 1] of one objective the policy learned (quality from feedback; "
            "latency, energy, cost when a response ends)",
            ["policy", "pool", "objective"],
            buckets=REWARD_BUCKETS,
            registry=r,
        )
        self.feedback = Counter(
            f"{PREFIX}_feedback",
            "Quality feedback received (result: accepted, duplicate, conflict, unknown, "
            "expired, invalid, unauthorized)",
            ["policy", "source", "result"],
            registry=r,
        )
        self.pending = Gauge(
            f"{PREFIX}_pending_decisions",
            "Decisions awaiting quality feedback (bounded; see pending_dropped)",
            registry=r,
        )
        self.pending_dropped = Counter(
            f"{PREFIX}_pending_dropped",
            "Decisions no longer awaited (stage: feedback, or in_flight for unreported gRPC "
            "routes; reason: expired, or capacity when pushed out of a full store)",
            ["stage", "reason"],
            registry=r,
        )
        self.quality_unobserved = Counter(
            f"{PREFIX}_quality_unobserved_decisions",
            "Decisions of a policy that weighs quality but has neither feedback nor a prior",
            ["policy"],
            registry=r,
        )
        self.arm_score = ArmScores()
        r.register(self.arm_score)
        self.energy = Counter(
            f"{PREFIX}_energy_joules",
            "Energy of served requests (source: dcgm, measured from DCGM power; model, from "
            "the pool's idle/max figures)",
            ["policy", "model", "pool", "source"],
            registry=r,
        )
        self.carbon = Counter(
            f"{PREFIX}_carbon_grams",
            "gCO2e of served requests: their energy times the grid carbon intensity of the "
            "pool's GPUs",
            ["policy", "model", "pool"],
            registry=r,
        )
        self.cost = Counter(
            f"{PREFIX}_cost_dollars",
            "GPU cost of served requests: the pool's price for the request's share of GPU time",
            ["model", "pool"],
            registry=r,
        )
        self.tokens = Counter(
            f"{PREFIX}_tokens",
            "Tokens of served requests (direction: input or output)",
            [*route, "direction"],
            registry=r,
        )
        self.retries = Counter(
            f"{PREFIX}_retries",
            "Requests moved to another endpoint after one failed before answering",
            ["pool"],
            registry=r,
        )
        self.fallbacks = Counter(
            f"{PREFIX}_fallbacks",
            "Requests served otherwise than first decided (reason: other_pool: by another pool "
            "after a retry; prefill_local: the P/D prefill failed, decode prefilled itself)",
            ["policy", "reason"],
            registry=r,
        )
        self.reset()

    def reset(self) -> None:
        """Zero series that must exist from the start (so rates and ratios have data)."""
        for reason in REJECT_REASONS:
            self.rejected.labels(reason)
        for stage in ("feedback", "in_flight"):
            for reason in ("expired", "capacity"):
                self.pending_dropped.labels(stage, reason)

    def set_slos(self, slos: Iterable[tuple[str, str, float]]) -> None:
        """(policy, metric, seconds) of the current config; series of removed policies go."""
        self.slo.clear()
        self.children.forget_metric(self.slo)
        for policy, metric, seconds in slos:
            self.slo.labels(policy, metric).set(seconds)


class ArmScores(Collector):
    """``fleetroute_router_arm_score``: the value each policy gave each candidate pool at its
    latest decision (NaN for a candidate it did not score, e.g. one the SLO guard set aside).

    A decision only keeps a reference to its scores (`decided`); the series are made at scrape
    time, so a request costs no per-arm gauge update."""

    NAME: Final = f"{PREFIX}_arm_score"
    HELP: Final = "The value the policy gave each candidate pool at its latest decision"

    def __init__(self) -> None:
        self._latest: dict[str, Mapping[str, float]] = {}
        self._candidates: dict[str, tuple[str, ...]] = {}

    def decided(self, policy: str, scores: Mapping[str, float]) -> None:
        self._latest[policy] = scores

    def set_candidates(self, candidates: Mapping[str, tuple[str, ...]]) -> None:
        """A new config: each policy's candidate pools; what earlier decisions scored goes."""
        self._candidates = dict(candidates)
        self._latest.clear()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(self.NAME, self.HELP, labels=["policy", "pool"])
        for policy, scores in list(self._latest.items()):
            pools = dict.fromkeys((*scores, *self._candidates.get(policy, ())))
            for pool in pools:
                family.add_metric([policy, pool], float(scores.get(pool, float("nan"))))
        yield family

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily(self.NAME, self.HELP, labels=["policy", "pool"])


class BreakerCollector(Collector):
    """``fleetroute_router_circuit_breaker_open``: 1 per endpoint whose breaker is open, 0 per
    closed one, read at scrape time.  `endpoints` yields (pool, address) of the config."""

    def __init__(
        self,
        endpoints: Callable[[], Iterable[tuple[str, str]]],
        is_open: Callable[[str], bool],
    ) -> None:
        self._endpoints, self._is_open = endpoints, is_open

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            f"{PREFIX}_circuit_breaker_open",
            "1 while the endpoint's circuit breaker is open (no requests sent), else 0",
            labels=["pool", "endpoint"],
        )
        for pool, address in self._endpoints():
            family.add_metric([pool, address], 1.0 if self._is_open(address) else 0.0)
        yield family

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily(f"{PREFIX}_circuit_breaker_open", "", labels=["pool", "endpoint"])
