"""The fleet at a glance: traffic, latency against SLO, energy, carbon, cost, GPU capacity."""

from __future__ import annotations

from typing import Final

from fleetroute_dashboards.common import slo_attainment
from fleetroute_dashboards.panels import Dashboard, Panel, Query, Row, Variable
from fleetroute_dashboards.promql import (
    DECISIONS,
    OUTPUT,
    POLICY_DECISIONS,
    POOL,
    RATE,
    ROUTE,
    SUCCESS,
    quantile,
    rate,
    slo,
)

REQUESTS: Final = "fleetroute_router_requests_total"
VARIABLES: Final = (
    Variable("policy", "Policy", f"label_values({DECISIONS}, policy)"),
    Variable("pool", "Pool", f"label_values({REQUESTS}, pool)"),
)

DASHBOARD: Final = Dashboard(
    uid="fleetroute-overview",
    title="fleetroute / fleet overview",
    description="Where requests go, how fast against SLO, what they cost in watts, grams of "
    "CO2e and dollars, and the GPU capacity the operator sees.",
    variables=VARIABLES,
    rows=(
        Row(
            "Traffic",
            (
                Panel(
                    "Requests per second by pool",
                    "Routed requests per pool (all outcomes).",
                    [Query(rate(REQUESTS), "{{pool}}")],
                    "reqps",
                    stack=True,
                ),
                Panel(
                    "Traffic share by model",
                    "Share of routed requests each served model receives.",
                    [
                        Query(
                            f"{rate(REQUESTS, ROUTE, 'model')} / scalar("
                            f"sum(rate({REQUESTS}{{{ROUTE}}}[{RATE}])))",
                            "{{model}}",
                        )
                    ],
                    "percentunit",
                    stack=True,
                    max=1,
                ),
                Panel(
                    "Outcomes",
                    "Requests by outcome: success, failure (every endpoint tried failed), "
                    "cancelled (client went away), client_error (4xx from the model server).",
                    [Query(rate(REQUESTS, ROUTE, "outcome"), "{{outcome}}")],
                    "reqps",
                ),
                Panel(
                    "Decisions by policy and pool",
                    "Each policy's choices by chosen pool.",
                    [
                        Query(
                            rate(DECISIONS, f"{POLICY_DECISIONS}, {POOL}", "policy, pool"),
                            "{{policy}} → {{pool}}",
                        )
                    ],
                    "reqps",
                    stack=True,
                ),
                Panel(
                    "Requests in flight by pool",
                    "Requests sent to a pool and not finished yet.",
                    [
                        Query(
                            f"sum by (pool) (fleetroute_router_in_flight_requests{{{POOL}}})",
                            "{{pool}}",
                        )
                    ],
                    stack=True,
                ),
                Panel(
                    "Rejected requests by reason",
                    "Refused before reaching a model server.",
                    [
                        Query(
                            "sum by (reason) (rate(fleetroute_router_rejected_requests_total"
                            f"[{RATE}]))",
                            "{{reason}}",
                        )
                    ],
                    "reqps",
                ),
            ),
        ),
        Row(
            "Latency against SLO",
            (
                Panel(
                    "Time to first token (p95) vs SLO",
                    "TTFT of streamed requests; dashed: the policies' objective. Exemplars "
                    "link to the request's trace.",
                    [
                        Query(
                            quantile(0.95, "fleetroute_router_ttft_seconds"), "p95 {{pool}}", True
                        ),
                        Query(slo("ttft"), "SLO {{policy}}"),
                    ],
                    "s",
                ),
                Panel(
                    "End-to-end duration (p95)",
                    "Whole request as the router saw it, routing included.",
                    [
                        Query(
                            quantile(0.95, "fleetroute_router_request_duration_seconds"),
                            "p95 {{pool}}",
                            True,
                        )
                    ],
                    "s",
                ),
                slo_attainment("Share of served requests of a policy that met each objective."),
            ),
        ),
        Row(
            "Energy, carbon and cost",
            (
                Panel(
                    "Power drawn by served requests",
                    "Joules per second (watts) by pool and source: dcgm (measured from the "
                    "node's DCGM exporter or the server's own power metric) or model (the "
                    "pool's idle/max figures).",
                    [
                        Query(
                            rate("fleetroute_router_energy_joules_total", ROUTE, "pool, source"),
                            "{{pool}} ({{source}})",
                        )
                    ],
                    "watt",
                    stack=True,
                ),
                Panel(
                    "Carbon per hour by pool",
                    "Grams of CO2e per hour: energy of served requests times the grid carbon "
                    "intensity of the pool's GPUs.",
                    [
                        Query(
                            f"{rate('fleetroute_router_carbon_grams_total', ROUTE)} * 3600",
                            "{{pool}}",
                        )
                    ],
                    "massg",
                    stack=True,
                ),
                Panel(
                    "Cost per hour by pool",
                    "Dollars per hour of GPU time the served requests took.",
                    [
                        Query(
                            f"{rate('fleetroute_router_cost_dollars_total', POOL)} * 3600",
                            "{{pool}}",
                        )
                    ],
                    "currencyUSD",
                    stack=True,
                ),
                Panel(
                    "Energy per output token by pool",
                    "Joules per generated token.",
                    [
                        Query(
                            f"{rate('fleetroute_router_energy_joules_total', ROUTE)} / "
                            f"{rate('fleetroute_router_tokens_total', OUTPUT)}",
                            "{{pool}}",
                        )
                    ],
                    "joule",
                ),
                Panel(
                    "Carbon per request by pool",
                    "Grams of CO2e per served request.",
                    [
                        Query(
                            f"{rate('fleetroute_router_carbon_grams_total', ROUTE)} / "
                            f"{rate(REQUESTS, SUCCESS)}",
                            "{{pool}}",
                        )
                    ],
                    "massg",
                ),
                Panel(
                    "Grid carbon intensity by pool",
                    "gCO2e per kWh in use: from GPUPool.spec.carbonIntensity (config) or "
                    "read from a metric (metric).",
                    [
                        Query(
                            "max by (pool, source) "
                            f"(fleetroute_router_grid_carbon_intensity{{{POOL}}})",
                            "{{pool}} ({{source}})",
                        )
                    ],
                ),
            ),
        ),
        Row(
            "GPU capacity (operator)",
            (
                Panel(
                    "GPUs by GPUPool",
                    "Capacity, allocated and free GPUs of each GPUPool's nodes.",
                    [
                        Query(
                            "sum by (gpupool, product, state) (fleetroute_operator_gpupool_gpus)",
                            "{{gpupool}} {{state}}",
                        )
                    ],
                ),
                Panel(
                    "GPU allocation by product",
                    "Allocated share of GPU capacity per product.",
                    [
                        Query(
                            "sum by (product) "
                            '(fleetroute_operator_gpupool_gpus{state="allocated"}) / '
                            'sum by (product) (fleetroute_operator_gpupool_gpus{state="capacity"})',
                            "{{product}}",
                        )
                    ],
                    "percentunit",
                    max=1,
                ),
                Panel(
                    "Reconciles by kind and result",
                    "Operator handler runs per second.",
                    [
                        Query(
                            "sum by (kind, result) (rate(fleetroute_operator_reconciles_total"
                            f"[{RATE}]))",
                            "{{kind}} {{result}}",
                        )
                    ],
                    "ops",
                ),
            ),
        ),
    ),
)
