"""Selectors and PromQL helpers shared by the dashboards (Grafana variables, rate windows)."""

from __future__ import annotations

from typing import Final

RATE: Final = "$__rate_interval"
POLICY: Final = 'policy=~"$policy"'
POOL: Final = 'pool=~"$pool"'
ROUTE: Final = f"{POLICY}, {POOL}"  # the router's per-request selector
SUCCESS: Final = ROUTE + ', outcome="success"'
OUTPUT: Final = ROUTE + ', direction="output"'
DECISIONS: Final = "fleetroute_router_decisions_total"
# Decisions of a policy (requests that named a concrete model have policy="").
POLICY_DECISIONS: Final = 'policy=~"$policy", policy!=""'
POLICY_POOL_DECISIONS: Final = POLICY_DECISIONS + f", {POOL}"

# Quality-feedback series of the router's outcome path.
FEEDBACK: Final = "fleetroute_router_feedback_total"
OBJECTIVE_SCORE: Final = "fleetroute_router_objective_score"
PENDING: Final = "fleetroute_router_pending_decisions"
PENDING_DROPPED: Final = "fleetroute_router_pending_dropped_total"
QUALITY_UNOBSERVED: Final = "fleetroute_router_quality_unobserved_decisions_total"


def rate(metric: str, selector: str = ROUTE, by: str = "pool") -> str:
    """Per-second rate of a counter, summed by `by`."""
    return f"sum by ({by}) (rate({metric}{{{selector}}}[{RATE}]))"


def share(metric: str, part: str, selector: str, by: str) -> str:
    """Share of `part` in all of `metric` per `by`; 0 (not empty) while the part is absent."""
    whole = rate(metric, selector, by)
    piece = rate(metric, f"{selector}, {part}", by)
    return f"({piece} or {whole} * 0) / {whole}"


def ratio(numerator: str, denominator: str) -> str:
    return f"{numerator} / {denominator}"


def quantile(q: float, metric: str, selector: str = ROUTE, by: str = "pool") -> str:
    """The q-quantile of a histogram per `by`."""
    return (
        f"histogram_quantile({q}, sum by (le, {by}) (rate({metric}_bucket{{{selector}}}[{RATE}])))"
    )


def mean(histogram: str, selector: str, by: str) -> str:
    """Mean of a histogram's observations per `by` over the rate window."""
    return ratio(rate(f"{histogram}_sum", selector, by), rate(f"{histogram}_count", selector, by))


def slo(metric: str) -> str:
    """The policies' latency objective (ttft or tpot) as a flat line."""
    return f'max by (policy) (fleetroute_router_slo_seconds{{{POLICY}, metric="{metric}"}})'
