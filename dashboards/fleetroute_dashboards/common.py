"""Panels that more than one dashboard shows."""

from __future__ import annotations

from fleetroute_dashboards.panels import Panel, Query
from fleetroute_dashboards.promql import ROUTE, share


def slo_attainment(description: str) -> Panel:
    """Share of served requests that met each SLO objective, per policy and metric."""
    query = share("fleetroute_router_slo_requests_total", 'result="met"', ROUTE, "policy, metric")
    return Panel(
        "SLO attainment",
        description,
        [Query(query, "{{policy}} {{metric}}")],
        "percentunit",
        max=1,
    )
