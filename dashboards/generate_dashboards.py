"""Generate the Grafana dashboard JSON from code: dashboards/fleetroute.json, and the copy the
Helm chart ships as a ConfigMap (charts/fleetroute/dashboards/fleetroute.json).

    python dashboards/generate_dashboards.py          # write both
    python dashboards/generate_dashboards.py --check  # fail when either is stale

scripts/generate.py runs this too.  Every panel query is evaluated against a real Prometheus
scraping a router and the operator in e2e/test_observability.py.  Queries use the template
variables $policy and $pool (regexes, "All" = ".*") and Grafana's $__rate_interval.
Exemplars (trace ids) are requested on latency panels; Grafana links them to traces through
the Prometheus data source's exemplarTraceIdDestinations (see README: Observability).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

ROOT: Final = Path(__file__).resolve().parent.parent
OUTPUTS: Final = (
    ROOT / "dashboards" / "fleetroute.json",
    ROOT / "charts" / "fleetroute" / "dashboards" / "fleetroute.json",
)
UID: Final = "fleetroute-overview"
DATASOURCE: Final = {"type": "prometheus", "uid": "${datasource}"}
RATE: Final = "$__rate_interval"
R: Final = 'policy=~"$policy", pool=~"$pool"'  # the router's selector
POOL: Final = 'pool=~"$pool"'
SUCCESS: Final = R + ', outcome="success"'
OUTPUT: Final = R + ', direction="output"'


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str = ""
    exemplar: bool = False


@dataclass(frozen=True)
class Panel:
    title: str
    description: str
    queries: Sequence[Query]
    unit: str = "short"
    kind: str = "timeseries"
    width: int = 8
    stack: bool = False
    max: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def rate(metric: str, selector: str = R, by: str = "pool") -> str:
    return f"sum by ({by}) (rate({metric}{{{selector}}}[{RATE}]))"


def share(metric: str, part: str, selector: str, by: str) -> str:
    """Share of `part` in all of `metric` per `by`; 0 (not empty) while the part is absent."""
    whole = f"sum by ({by}) (rate({metric}{{{selector}}}[{RATE}]))"
    piece = f"sum by ({by}) (rate({metric}{{{selector}, {part}}}[{RATE}]))"
    return f"({piece} or {whole} * 0) / {whole}"


def quantile(q: float, metric: str, selector: str = R, by: str = "pool") -> str:
    return (
        f"histogram_quantile({q}, sum by (le, {by}) (rate({metric}_bucket{{{selector}}}[{RATE}])))"
    )


DECISIONS = "fleetroute_router_decisions_total"
DP = 'policy=~"$policy", policy!="", pool=~"$pool"'

ROWS: Final[Sequence[tuple[str, Sequence[Panel]]]] = (
    (
        "Traffic: where requests go",
        (
            Panel(
                "Requests per second by pool",
                "Traffic split over time: routed requests per pool (all outcomes).",
                [Query(rate("fleetroute_router_requests_total"), "{{pool}}")],
                "reqps",
                stack=True,
            ),
            Panel(
                "Traffic share by model",
                "Share of routed requests each served model receives.",
                [
                    Query(
                        f"{rate('fleetroute_router_requests_total', R, 'model')} / scalar("
                        f"sum(rate(fleetroute_router_requests_total{{{R}}}[{RATE}])))",
                        "{{model}}",
                    )
                ],
                "percentunit",
                stack=True,
                max=1,
            ),
            Panel(
                "Outcomes",
                "Requests by outcome: success, failure (every endpoint tried failed), cancelled "
                "(client went away), client_error (4xx from the model server).",
                [Query(rate("fleetroute_router_requests_total", R, "outcome"), "{{outcome}}")],
                "reqps",
            ),
            Panel(
                "Decisions by policy and pool",
                "Why: each policy's choices, by algorithm and chosen pool.",
                [Query(rate(DECISIONS, DP, "policy, algorithm, pool"), "{{policy}} → {{pool}}")],
                "reqps",
                stack=True,
            ),
            Panel(
                "P/D disaggregated share",
                "Share of decisions that split prefill and decode across a P/D pair.",
                [Query(share(DECISIONS, 'mode="disaggregated"', DP, "policy"), "{{policy}}")],
                "percentunit",
                max=1,
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
        ),
    ),
    (
        "Latency against SLO",
        (
            Panel(
                "Time to first token (p50, p95) vs SLO",
                "TTFT of streamed requests; dashed: the policy's TTFT objective. Exemplars "
                "link to the request's trace.",
                [
                    Query(quantile(0.95, "fleetroute_router_ttft_seconds"), "p95 {{pool}}", True),
                    Query(quantile(0.5, "fleetroute_router_ttft_seconds"), "p50 {{pool}}"),
                    Query(
                        'max by (policy) (fleetroute_router_slo_seconds{policy=~"$policy", '
                        'metric="ttft"})',
                        "SLO {{policy}}",
                    ),
                ],
                "s",
            ),
            Panel(
                "Time per output token (p95) vs SLO",
                "TPOT of streamed requests; dashed: the policy's TPOT objective.",
                [
                    Query(quantile(0.95, "fleetroute_router_tpot_seconds"), "p95 {{pool}}", True),
                    Query(
                        'max by (policy) (fleetroute_router_slo_seconds{policy=~"$policy", '
                        'metric="tpot"})',
                        "SLO {{policy}}",
                    ),
                ],
                "s",
            ),
            Panel(
                "End-to-end duration (p50, p95)",
                "Whole request as the router saw it, routing included.",
                [
                    Query(
                        quantile(0.95, "fleetroute_router_request_duration_seconds"),
                        "p95 {{pool}}",
                        True,
                    ),
                    Query(
                        quantile(0.5, "fleetroute_router_request_duration_seconds"), "p50 {{pool}}"
                    ),
                ],
                "s",
            ),
            Panel(
                "SLO attainment",
                "Share of served requests of a policy that met each objective.",
                [
                    Query(
                        share(
                            "fleetroute_router_slo_requests_total",
                            'result="met"',
                            R,
                            "policy, metric",
                        ),
                        "{{policy}} {{metric}}",
                    )
                ],
                "percentunit",
                max=1,
            ),
            Panel(
                "Decision latency (p50, p99)",
                "Time the router spends deciding (features, policy, endpoint pick).",
                [
                    Query(
                        quantile(
                            0.99,
                            "fleetroute_router_decision_duration_seconds",
                            'policy=~"$policy"',
                            "policy",
                        ),
                        "p99 {{policy}}",
                    ),
                    Query(
                        quantile(
                            0.5,
                            "fleetroute_router_decision_duration_seconds",
                            'policy=~"$policy"',
                            "policy",
                        ),
                        "p50 {{policy}}",
                    ),
                ],
                "s",
            ),
        ),
    ),
    (
        "Energy and cost",
        (
            Panel(
                "Energy per request by pool",
                "Joules per served request.",
                [
                    Query(
                        f"{rate('fleetroute_router_energy_joules_total', POOL)} / "
                        f"{rate('fleetroute_router_requests_total', SUCCESS)}",
                        "{{pool}}",
                    )
                ],
                "joule",
            ),
            Panel(
                "Energy per output token by pool",
                "Joules per generated token.",
                [
                    Query(
                        f"{rate('fleetroute_router_energy_joules_total', POOL)} / "
                        f"{rate('fleetroute_router_tokens_total', OUTPUT)}",
                        "{{pool}}",
                    )
                ],
                "joule",
            ),
            Panel(
                "Power drawn by served requests",
                "Joules per second (watts) by pool and energy source (measured from the "
                "server's power metric, modelled, or estimated from the GPU's maximum).",
                [
                    Query(
                        rate("fleetroute_router_energy_joules_total", POOL, "pool, source"),
                        "{{pool}} ({{source}})",
                    )
                ],
                "watt",
                stack=True,
            ),
            Panel(
                "Cost per hour by pool",
                "Dollars per hour of GPU time the served requests took.",
                [Query(f"{rate('fleetroute_router_cost_dollars_total', POOL)} * 3600", "{{pool}}")],
                "currencyUSD",
                stack=True,
            ),
            Panel(
                "Cost per 1k output tokens by model",
                "Dollars per thousand generated tokens.",
                [
                    Query(
                        f"{rate('fleetroute_router_cost_dollars_total', POOL, 'model')} * 1000 / "
                        f"{rate('fleetroute_router_tokens_total', OUTPUT, 'model')}",
                        "{{model}}",
                    )
                ],
                "currencyUSD",
            ),
        ),
    ),
    (
        "Learning: the bandit",
        (
            Panel(
                "Exploration share",
                "Share of decisions where the policy chose an arm other than its best-scored one.",
                [Query(share(DECISIONS, 'choice="explore"', DP, "policy"), "{{policy}}")],
                "percentunit",
                max=1,
            ),
            Panel(
                "Mean reward by pool",
                "Mean reward in [0, 1] the policy learned from, per chosen pool.",
                [
                    Query(
                        f"{rate('fleetroute_router_reward_sum', R, 'policy, pool')} / "
                        f"{rate('fleetroute_router_reward_count', R, 'policy, pool')}",
                        "{{policy}} → {{pool}}",
                        True,
                    )
                ],
                "percentunit",
                max=1,
            ),
            Panel(
                "Arm scores at the latest decision",
                "The value each policy gave each candidate pool (UCB / sampled / estimated).",
                [Query(f"max by (policy, pool) (fleetroute_router_arm_score{{{R}}})", "{{pool}}")],
            ),
        ),
    ),
    (
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
                        'sum by (product) (fleetroute_operator_gpupool_gpus{state="allocated"}) / '
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
            Panel(
                "Reconcile duration (p95)",
                "Operator handler duration by kind.",
                [
                    Query(
                        "histogram_quantile(0.95, sum by (le, kind) (rate("
                        f"fleetroute_operator_reconcile_duration_seconds_bucket[{RATE}])))",
                        "{{kind}}",
                    )
                ],
                "s",
            ),
        ),
    ),
    (
        "Errors and fallbacks",
        (
            Panel(
                "Rejected requests by reason",
                "Refused requests: invalid, unknown model, no capacity, overloaded, upstream "
                "failed.",
                [
                    Query(
                        "sum by (reason) (rate(fleetroute_router_rejected_requests_total"
                        f"[{RATE}]))",
                        "{{reason}}",
                    )
                ],
                "reqps",
            ),
            Panel(
                "Retries and fallbacks",
                "Requests moved to another endpoint, and served otherwise than decided.",
                [
                    Query(rate("fleetroute_router_retries_total", POOL), "retry {{pool}}"),
                    Query(
                        "sum by (reason) (rate(fleetroute_router_fallbacks_total"
                        f'{{policy=~"$policy"}}[{RATE}]))',
                        "fallback {{reason}}",
                    ),
                ],
                "reqps",
            ),
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
        ),
    ),
)


def _variable(name: str, label: str, query: str) -> dict[str, Any]:
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DATASOURCE,
        "query": {"query": query, "refId": f"{name}-values"},
        "definition": query,
        "refresh": 2,
        "includeAll": True,
        "allValue": ".*",
        "multi": True,
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "sort": 1,
    }


def _panel(panel: Panel, panel_id: int, x: int, y: int) -> dict[str, Any]:
    defaults: dict[str, Any] = {"unit": panel.unit}
    if panel.max is not None:
        defaults["max"], defaults["min"] = panel.max, 0
    if panel.kind == "timeseries":
        defaults["custom"] = {
            "drawStyle": "line",
            "lineWidth": 1,
            "fillOpacity": 20 if panel.stack else 0,
            "stacking": {"mode": "normal" if panel.stack else "none", "group": "A"},
            "showPoints": "never",
        }
    overrides = [
        {
            "matcher": {"id": "byRegexp", "options": "^SLO .*"},
            "properties": [
                {"id": "custom.lineStyle", "value": {"fill": "dash", "dash": [10, 10]}},
                {"id": "color", "value": {"mode": "fixed", "fixedColor": "red"}},
            ],
        }
    ]
    return {
        "id": panel_id,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": DATASOURCE,
        "gridPos": {"h": 8, "w": panel.width, "x": x, "y": y},
        "fieldConfig": {"defaults": defaults, "overrides": overrides},
        "options": {
            "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
        "targets": [
            {
                "datasource": DATASOURCE,
                "expr": query.expr,
                "legendFormat": query.legend,
                "exemplar": query.exemplar,
                "range": True,
                "refId": chr(ord("A") + index),
            }
            for index, query in enumerate(panel.queries)
        ],
        **panel.extra,
    }


def build() -> dict[str, Any]:
    """The dashboard as Grafana's JSON model."""
    panels: list[dict[str, Any]] = []
    y, panel_id = 0, 1
    for title, row in ROWS:
        panels.append(
            {
                "id": panel_id,
                "type": "row",
                "title": title,
                "collapsed": False,
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": y},
                "panels": [],
            }
        )
        panel_id, y, x = panel_id + 1, y + 1, 0
        for panel in row:
            if x + panel.width > 24:
                x, y = 0, y + 8
            panels.append(_panel(panel, panel_id, x, y))
            panel_id, x = panel_id + 1, x + panel.width
        y += 8
    return {
        "uid": UID,
        "title": "fleetroute",
        "description": "Where requests go and why, how fast against SLO, energy, cost, the "
        "bandit's exploration and reward, GPU capacity, errors and fallbacks.",
        "tags": ["fleetroute", "llm", "routing"],
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "graphTooltip": 1,
        "refresh": "30s",
        "time": {"from": "now-1h", "to": "now"},
        "annotations": {"list": []},
        "links": [],
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "label": "Prometheus",
                    "type": "datasource",
                    "query": "prometheus",
                    "current": {},
                },
                {
                    "name": "traces",
                    "label": "Traces",
                    "type": "datasource",
                    "query": "jaeger",
                    "current": {},
                    "description": "Trace store the Prometheus data source's exemplar links "
                    "point to.",
                },
                _variable(
                    "policy", "Policy", "label_values(fleetroute_router_decisions_total, policy)"
                ),
                _variable("pool", "Pool", "label_values(fleetroute_router_requests_total, pool)"),
            ]
        },
        "panels": panels,
    }


def render() -> str:
    return json.dumps(build(), indent=2, ensure_ascii=False) + "\n"


def queries(dashboard: dict[str, Any]) -> Iterator[tuple[str, str, bool]]:
    """(panel title, PromQL, exemplar) of every target of a dashboard JSON model."""
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            yield panel["title"], target["expr"], bool(target.get("exemplar"))


def write() -> None:
    text = render()
    for path in OUTPUTS:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def stale_files() -> list[str]:
    """Generated dashboard files that differ from what the code produces."""
    text = render()
    return [
        str(path.relative_to(ROOT))
        for path in OUTPUTS
        if not path.is_file() or path.read_text(encoding="utf-8") != text
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if the JSON files are stale")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_files()
        if stale:
            print("stale dashboards (run: python dashboards/generate_dashboards.py):", *stale)
            return 1
        return 0
    write()
    return 0


if __name__ == "__main__":
    sys.exit(main())
