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
from fleetroute_router.endpoints.interfaces import EndpointMetrics
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
    telemetry.watch(
        is_open=lambda _: False,
        in_flight=lambda _: 0,
        endpoint_metrics=lambda _: EndpointMetrics(
            waiting=1, running=2, kv_cache_usage=0.5, power_watts=300
        ),
        exporter_watts=lambda _: 310.0,
    )
    d = decision()
    telemetry.decided(d, 0.001)
    telemetry.served(d, Served(e2e_s=1.0, ttft_s=0.2, completion_tokens=4, reward=0.5))
    telemetry.scored(d, {"quality": 0.9, "latency": 0.7})
    telemetry.feedback(d.policy, "judge", "accepted")
    telemetry.quality_unobserved(d.policy)
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
    built = module.build_all()
    assert sorted(built) == [
        "fleetroute-overview.json",
        "fleetroute-policy.json",
        "fleetroute-pool.json",
        "fleetroute-router.json",
    ]
    for name, document in built.items():
        chart = json.loads((ROOT / "charts/fleetroute/dashboards" / name).read_text())
        assert chart == document
    assert len({d["uid"] for d in built.values()}) == 4


def test_every_dashboard_validates_against_the_sdk_types() -> None:
    module = generator()
    assert module.invalid() == {}
    from fleetroute_dashboards import schema

    document = module.build_all()["fleetroute-pool.json"]
    document["panels"][1]["notAPanelField"] = 1
    loki = {"type": "loki", "uid": "logs"}
    document["panels"][2]["datasource"] = document["panels"][2]["targets"][0]["datasource"] = loki
    found = schema.problems(document)
    assert any("notAPanelField: dropped by the model" in p for p in found), found
    assert any("not a Prometheus query" in p for p in found), found


def test_every_panel_queries_series_that_exist(fleet: Fleet) -> None:
    module = generator()
    names = exposed_names(fleet)
    panels = 0
    for dashboard in module.build_all().values():
        panels += sum(1 for p in dashboard["panels"] if p["type"] != "row")
        for title, expr, _ in module.queries(dashboard):
            used = set(re.findall(r"\bfleetroute_[a-z_]+", expr))
            assert used, title
            assert used <= names, f"{title}: {sorted(used - names)} are not exposed"
    assert panels >= 50


def test_panels_cover_what_users_watch() -> None:
    module = generator()
    built = module.build_all()

    def text(name: str) -> str:
        return " ".join(expr for _, expr, _ in module.queries(built[name]))

    for series in (
        "fleetroute_router_requests_total",
        "fleetroute_router_energy_joules_total",
        "fleetroute_router_carbon_grams_total",
        "fleetroute_router_cost_dollars_total",
        "fleetroute_operator_gpupool_gpus",
    ):
        assert series in text("fleetroute-overview.json")
    for series in (
        "fleetroute_router_decisions_total",
        "fleetroute_router_objective_score_sum",
        'fleetroute_router_feedback_total{policy=~"$policy", result="accepted"}',
        'choice="explore"',
    ):
        assert series in text("fleetroute-policy.json")
    for series in (
        "fleetroute_router_ttft_seconds_bucket",
        "fleetroute_router_tpot_seconds_bucket",
        "fleetroute_router_slo_seconds",
        "fleetroute_router_endpoint_waiting_requests",
        "fleetroute_router_endpoint_kv_cache_usage_ratio",
        'mode="disaggregated"',
        "fleetroute_router_tokens_total",
    ):
        assert series in text("fleetroute-pool.json")
    for series in (
        "fleetroute_router_decision_duration_seconds_bucket",
        "fleetroute_router_rejected_requests_total",
        "fleetroute_router_circuit_breaker_open",
    ):
        assert series in text("fleetroute-router.json")
    exemplar_panels = {
        title for d in built.values() for title, _, exemplar in module.queries(d) if exemplar
    }
    assert any("first token" in title for title in exemplar_panels)


def test_panels_do_not_overlap() -> None:
    for name, dashboard in generator().build_all().items():
        cells: set[tuple[int, int]] = set()
        for panel in dashboard["panels"]:
            grid = panel["gridPos"]
            mine = {
                (x, y)
                for x in range(grid["x"], grid["x"] + grid["w"])
                for y in range(grid["y"], grid["y"] + grid["h"])
            }
            assert not cells & mine, f"{name}: {panel['title']}"
            assert grid["x"] + grid["w"] <= 24
            cells |= mine
