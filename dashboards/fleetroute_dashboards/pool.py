"""One model pool: TTFT/TPOT against SLO, queue, KV cache, P/D split, J/token, $ and gCO2e."""

from __future__ import annotations

from typing import Final

from fleetroute_dashboards.panels import Dashboard, Panel, Query, Row, Variable
from fleetroute_dashboards.promql import (
    DECISIONS,
    OUTPUT,
    POOL,
    ROUTE,
    quantile,
    rate,
    share,
    slo,
)

TOKENS: Final = "fleetroute_router_tokens_total"
VARIABLES: Final = (
    Variable("pool", "Pool", "label_values(fleetroute_router_requests_total, pool)"),
    Variable("policy", "Policy", f"label_values({DECISIONS}, policy)"),
)

DASHBOARD: Final = Dashboard(
    uid="fleetroute-pool",
    title="fleetroute / model pool",
    description="One model pool: latency against its policies' SLOs, queue and KV cache of "
    "its servers, how often it serves P/D split, and what a token costs in joules, dollars "
    "and grams of CO2e.",
    variables=VARIABLES,
    rows=(
        Row(
            "Latency against SLO",
            (
                Panel(
                    "Time to first token (p50, p95) vs SLO",
                    "TTFT of streamed requests; dashed: the policies' TTFT objective. "
                    "Exemplars link to the request's trace.",
                    [
                        Query(
                            quantile(0.95, "fleetroute_router_ttft_seconds"), "p95 {{pool}}", True
                        ),
                        Query(quantile(0.5, "fleetroute_router_ttft_seconds"), "p50 {{pool}}"),
                        Query(slo("ttft"), "SLO {{policy}}"),
                    ],
                    "s",
                ),
                Panel(
                    "Time per output token (p50, p95) vs SLO",
                    "TPOT of streamed requests; dashed: the policies' TPOT objective.",
                    [
                        Query(
                            quantile(0.95, "fleetroute_router_tpot_seconds"), "p95 {{pool}}", True
                        ),
                        Query(quantile(0.5, "fleetroute_router_tpot_seconds"), "p50 {{pool}}"),
                        Query(slo("tpot"), "SLO {{policy}}"),
                    ],
                    "s",
                ),
                Panel(
                    "SLO misses by pool",
                    "Share of the pool's served requests that missed an objective.",
                    [
                        Query(
                            share(
                                "fleetroute_router_slo_requests_total",
                                'result="missed"',
                                ROUTE,
                                "pool, metric",
                            ),
                            "{{pool}} {{metric}}",
                        )
                    ],
                    "percentunit",
                    max=1,
                ),
            ),
        ),
        Row(
            "Servers",
            (
                Panel(
                    "Queue by pool",
                    "Requests waiting in the pool's model servers (vLLM/SGLang /metrics).",
                    [
                        Query(
                            "sum by (pool) "
                            f"(fleetroute_router_endpoint_waiting_requests{{{POOL}}})",
                            "waiting {{pool}}",
                        ),
                        Query(
                            "sum by (pool) "
                            f"(fleetroute_router_endpoint_running_requests{{{POOL}}})",
                            "running {{pool}}",
                        ),
                    ],
                ),
                Panel(
                    "KV cache use by pool",
                    "Mean and highest KV-cache use over the pool's servers.",
                    [
                        Query(
                            "avg by (pool) "
                            f"(fleetroute_router_endpoint_kv_cache_usage_ratio{{{POOL}}})",
                            "mean {{pool}}",
                        ),
                        Query(
                            "max by (pool) "
                            f"(fleetroute_router_endpoint_kv_cache_usage_ratio{{{POOL}}})",
                            "max {{pool}}",
                        ),
                    ],
                    "percentunit",
                    max=1,
                ),
                Panel(
                    "P/D split rate",
                    "Share of the pool's decisions that split prefill and decode across a "
                    "P/D pair.",
                    [
                        Query(
                            share(DECISIONS, 'mode="disaggregated"', POOL, "pool"),
                            "{{pool}}",
                        )
                    ],
                    "percentunit",
                    max=1,
                ),
            ),
        ),
        Row(
            "Energy, cost and carbon per token",
            (
                Panel(
                    "Energy per output token",
                    "Joules per generated token.",
                    [
                        Query(
                            f"{rate('fleetroute_router_energy_joules_total', ROUTE)} / "
                            f"{rate(TOKENS, OUTPUT)}",
                            "{{pool}}",
                        )
                    ],
                    "joule",
                ),
                Panel(
                    "Cost per 1k output tokens",
                    "Dollars per thousand generated tokens.",
                    [
                        Query(
                            f"{rate('fleetroute_router_cost_dollars_total', POOL)} * 1000 / "
                            f"{rate(TOKENS, OUTPUT)}",
                            "{{pool}}",
                        )
                    ],
                    "currencyUSD",
                ),
                Panel(
                    "Carbon per 1k output tokens",
                    "Grams of CO2e per thousand generated tokens.",
                    [
                        Query(
                            f"{rate('fleetroute_router_carbon_grams_total', ROUTE)} * 1000 / "
                            f"{rate(TOKENS, OUTPUT)}",
                            "{{pool}}",
                        )
                    ],
                    "massg",
                ),
                Panel(
                    "GPU power by endpoint",
                    "Watts the endpoint's GPUs draw, from the node's DCGM exporter "
                    "(DCGM_FI_DEV_POWER_USAGE) or the server's own /metrics.",
                    [
                        Query(
                            "sum by (pool, endpoint) "
                            f"(fleetroute_router_endpoint_power_watts{{{POOL}}})",
                            "{{endpoint}}",
                        )
                    ],
                    "watt",
                ),
                Panel(
                    "Energy by source",
                    "Watts of served requests, measured (dcgm) or modelled (model).",
                    [
                        Query(
                            rate("fleetroute_router_energy_joules_total", ROUTE, "pool, source"),
                            "{{pool}} ({{source}})",
                        )
                    ],
                    "watt",
                    stack=True,
                ),
            ),
        ),
    ),
)
