"""The router process itself: added latency, decisions per second, errors, breaker states."""

from __future__ import annotations

from typing import Final

from fleetroute_dashboards.panels import Dashboard, Panel, Query, Row, Variable
from fleetroute_dashboards.promql import DECISIONS, POLICY, POOL, RATE, quantile, rate

DURATION: Final = "fleetroute_router_decision_duration_seconds"
VARIABLES: Final = (
    Variable("policy", "Policy", f"label_values({DECISIONS}, policy)"),
    Variable("pool", "Pool", "label_values(fleetroute_router_requests_total, pool)"),
)

DASHBOARD: Final = Dashboard(
    uid="fleetroute-router",
    title="fleetroute / router",
    description="The router process: the latency it adds to each request, how many decisions "
    "it makes, the errors it returns, and the state of its endpoints' circuit breakers.",
    variables=VARIABLES,
    rows=(
        Row(
            "Added latency and throughput",
            (
                Panel(
                    "Added latency (p50, p99)",
                    "Time the router spends deciding before it forwards a request (features, "
                    "policy, endpoint pick).",
                    [
                        Query(quantile(0.99, DURATION, POLICY, "policy"), "p99 {{policy}}"),
                        Query(quantile(0.5, DURATION, POLICY, "policy"), "p50 {{policy}}"),
                    ],
                    "s",
                ),
                Panel(
                    "Decisions per second",
                    "Routing decisions by policy (empty: a concrete model was named) and mode.",
                    [
                        Query(
                            rate(DECISIONS, f"{POLICY}, {POOL}", "policy, mode"),
                            "{{policy}} {{mode}}",
                        )
                    ],
                    "ops",
                    stack=True,
                ),
                Panel(
                    "Requests in flight",
                    "Requests the router is serving right now.",
                    [Query("sum(fleetroute_router_in_flight_requests)", "in flight")],
                ),
            ),
        ),
        Row(
            "Errors",
            (
                Panel(
                    "Rejected requests by reason",
                    "Refused: invalid request, unknown model, no capacity, overloaded, "
                    "upstream failed.",
                    [
                        Query(
                            "sum by (reason) (rate(fleetroute_router_rejected_requests_total"
                            f"[{RATE}]))",
                            "{{reason}}",
                        )
                    ],
                    "reqps",
                    stack=True,
                ),
                Panel(
                    "Error ratio",
                    "Share of routed requests that did not end in success.",
                    [
                        Query(
                            "sum(rate(fleetroute_router_requests_total"
                            f'{{{POOL}, outcome!="success"}}[{RATE}]) or vector(0)) / '
                            f"sum(rate(fleetroute_router_requests_total{{{POOL}}}[{RATE}]))",
                            "errors",
                        )
                    ],
                    "percentunit",
                    max=1,
                ),
                Panel(
                    "Retries and fallbacks",
                    "Requests moved to another endpoint, and served otherwise than decided.",
                    [
                        Query(rate("fleetroute_router_retries_total", POOL), "retry {{pool}}"),
                        Query(
                            "sum by (reason) (rate(fleetroute_router_fallbacks_total"
                            f"{{{POLICY}}}[{RATE}]))",
                            "fallback {{reason}}",
                        ),
                    ],
                    "reqps",
                ),
            ),
        ),
        Row(
            "Circuit breakers",
            (
                Panel(
                    "Open circuit breakers by pool",
                    "Endpoints the router sends nothing to until their cooldown ends.",
                    [
                        Query(
                            f"sum by (pool) (fleetroute_router_circuit_breaker_open{{{POOL}}})",
                            "{{pool}}",
                        )
                    ],
                    stack=True,
                ),
                Panel(
                    "Breaker state by endpoint",
                    "1 while the endpoint's breaker is open, 0 while closed.",
                    [
                        Query(
                            "max by (pool, endpoint) "
                            f"(fleetroute_router_circuit_breaker_open{{{POOL}}})",
                            "{{endpoint}}",
                        )
                    ],
                    max=1,
                    width=16,
                ),
            ),
        ),
    ),
)
