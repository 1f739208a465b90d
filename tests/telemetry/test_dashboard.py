"""The Grafana dashboard: generated files are fresh, and every query names real series."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path
from types import ModuleType

from prometheus_client import CollectorRegistry

from fleetroute_operator.telemetry import OperatorMetrics
from fleetroute_router.fleet import Fleet
from fleetroute_router.telemetry.metrics import RouterMetrics
from fleetroute_router.telemetry.recorder import RouterTelemetry, Served

from .test_router_metrics import decision

ROOT = Path(__file__).resolve().parents[2]


def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "generate_dashboards", ROOT / "dashboards" / "generate_dashboards.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("generate_dashboards", module)
    spec.loader.exec_module(module)
    return module


def exposed_names(fleet: Fleet) -> set[str]:
    """Sample names the router and the operator expose once they have done some work."""
    telemetry = RouterTelemetry(RouterMetrics(CollectorRegistry()))
    telemetry.set_fleet(fleet)
    telemetry.watch(is_open=lambda _: False, in_flight=lambda _: 0)
    d = decision()
    telemetry.decided(d, 0.001)
    telemetry.served(d, Served(e2e_s=1.0, ttft_s=0.2, completion_tokens=4, reward=0.5))
    operator = OperatorMetrics(CollectorRegistry())
    operator.gpupool("h100", "H100", {"capacity": 8, "allocated": 1, "free": 7})
    operator.reconciles.labels("GPUPool", "h", "success").inc()
    operator.duration.labels("GPUPool", "h").observe(0.01)
    return {
        sample.name
        for registry in (telemetry.registry, operator.registry)
        for family in registry.collect()
        for sample in family.samples
    }


def test_the_committed_dashboards_are_what_the_generator_writes() -> None:
    module = generator()
    assert module.stale_files() == []
    chart = json.loads((ROOT / "charts/fleetroute/dashboards/fleetroute.json").read_text())
    assert chart == module.build()


def test_every_panel_queries_series_that_exist(fleet: Fleet) -> None:
    module = generator()
    dashboard = module.build()
    names = exposed_names(fleet)
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert len(panels) >= 20
    for title, expr, _ in module.queries(dashboard):
        used = set(re.findall(r"\bfleetroute_[a-z_]+", expr))
        assert used, title
        assert used <= names, f"{title}: {sorted(used - names)} are not exposed"


def test_panels_cover_what_users_watch() -> None:
    module = generator()
    text = " ".join(expr for _, expr, _ in module.queries(module.build()))
    for series in (
        "fleetroute_router_requests_total",
        "fleetroute_router_ttft_seconds_bucket",
        "fleetroute_router_slo_seconds",
        "fleetroute_router_energy_joules_total",
        "fleetroute_router_cost_dollars_total",
        "fleetroute_router_reward_sum",
        "fleetroute_router_arm_score",
        "fleetroute_operator_gpupool_gpus",
        "fleetroute_router_fallbacks_total",
        "fleetroute_router_circuit_breaker_open",
    ):
        assert series in text
    exemplar_panels = {title for title, _, exemplar in module.queries(module.build()) if exemplar}
    assert any("first token" in title for title in exemplar_panels)


def test_panels_do_not_overlap() -> None:
    cells: set[tuple[int, int]] = set()
    for panel in generator().build()["panels"]:
        grid = panel["gridPos"]
        mine = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not cells & mine, panel["title"]
        assert grid["x"] + grid["w"] <= 24
        cells |= mine
