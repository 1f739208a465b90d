"""What a dashboard is made of (rows of panels of PromQL queries), rendered with the SDK."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as dashboard_builders
from grafana_foundation_sdk.builders import prometheus, stat, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model

PROMETHEUS: Final = model.DataSourceRef(type_val="prometheus", uid="${datasource}")
HEIGHT: Final = 8
TAG: Final = "fleetroute"


@dataclass(frozen=True)
class Query:
    """One PromQL target; `exemplar` asks Grafana for the series' exemplars (trace links)."""

    expr: str
    legend: str = ""
    exemplar: bool = False


@dataclass(frozen=True)
class Panel:
    """A time series (or stat) panel of PromQL queries."""

    title: str
    description: str
    queries: Sequence[Query]
    unit: str = "short"
    width: int = 8
    stack: bool = False
    max: float | None = None
    kind: str = "timeseries"


@dataclass(frozen=True)
class Row:
    title: str
    panels: Sequence[Panel]


@dataclass(frozen=True)
class Variable:
    """A multi-value query variable over one label ("All" matches everything)."""

    name: str
    label: str
    query: str


@dataclass(frozen=True)
class Dashboard:
    uid: str
    title: str
    description: str
    rows: Sequence[Row]
    variables: Sequence[Variable] = field(default_factory=tuple)


def _target(query: Query, index: int) -> prometheus.Dataquery:
    return (
        prometheus.Dataquery()
        .expr(query.expr)
        .legend_format(query.legend)
        .exemplar(query.exemplar)
        .range()
        .ref_id(chr(ord("A") + index))
        .datasource(PROMETHEUS)
    )


_SLO_LINE: Final = [
    model.DynamicConfigValue(id_val="custom.lineStyle", value={"fill": "dash", "dash": [10, 10]}),
    model.DynamicConfigValue(id_val="color", value={"mode": "fixed", "fixedColor": "red"}),
]


def _panel(panel: Panel) -> timeseries.Panel | stat.Panel:
    built: timeseries.Panel | stat.Panel
    if panel.kind == "stat":
        built = stat.Panel()
    else:
        built = (
            timeseries.Panel()
            .line_width(1)
            .fill_opacity(20 if panel.stack else 0)
            .show_points(common.VisibilityMode.NEVER)
            .stacking(
                common_builders.StackingConfig()
                .mode(common.StackingMode.NORMAL if panel.stack else common.StackingMode.NONE)
                .group("A")
            )
            .legend(
                common_builders.VizLegendOptions()
                .display_mode(common.LegendDisplayMode.LIST)
                .placement(common.LegendPlacement.BOTTOM)
                .show_legend(True)
            )
            .tooltip(
                common_builders.VizTooltipOptions()
                .mode(common.TooltipDisplayMode.MULTI)
                .sort(common.SortOrder.DESCENDING)
            )
            .override_by_regexp("^SLO .*", _SLO_LINE)
        )
    built = (
        built.title(panel.title)
        .description(panel.description)
        .datasource(PROMETHEUS)
        .unit(panel.unit)
        .height(HEIGHT)
        .span(panel.width)
    )
    if panel.max is not None:
        built = built.min(0).max(panel.max)
    for index, query in enumerate(panel.queries):
        built = built.with_target(_target(query, index))
    return built


def _variable(variable: Variable) -> dashboard_builders.QueryVariable:
    return (
        dashboard_builders.QueryVariable(variable.name)
        .label(variable.label)
        .datasource(PROMETHEUS)
        .query(variable.query)
        .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .include_all(True)
        .all_value(".*")
        .multi(True)
        .sort(model.VariableSort.ALPHABETICAL_ASC)
        .current(model.VariableOption(selected=True, text=["All"], value=["$__all"]))
    )


def build(spec: Dashboard) -> dict[str, Any]:
    """The dashboard as Grafana's JSON model, built through the SDK's builders."""
    builder = (
        dashboard_builders.Dashboard(spec.title)
        .uid(spec.uid)
        .description(spec.description)
        .tags([TAG, "llm", "routing"])
        .timezone("browser")
        .editable()
        .tooltip(model.DashboardCursorSync.CROSSHAIR)
        .refresh("30s")
        .time("now-1h", "now")
        .link(
            dashboard_builders.DashboardLink("fleetroute")
            .type(model.DashboardLinkType.DASHBOARDS)
            .tags([TAG])
            .as_dropdown(True)
            .include_vars(True)
            .keep_time(True)
        )
        .with_variable(
            dashboard_builders.DatasourceVariable("datasource")
            .label("Prometheus")
            .type("prometheus")
        )
        .with_variable(
            dashboard_builders.DatasourceVariable("traces")
            .label("Traces")
            .type("jaeger")
            .description("Trace store the Prometheus data source's exemplar links point to.")
        )
    )
    for variable in spec.variables:
        builder = builder.with_variable(_variable(variable))
    for row in spec.rows:
        builder = builder.with_row(dashboard_builders.Row(row.title))
        for panel in row.panels:
            builder = builder.with_panel(_panel(panel))
    document: dict[str, Any] = json.loads(json.dumps(builder.build(), cls=JSONEncoder))
    # Panel ids in order (the SDK leaves them unset; Grafana wants them unique).
    for panel_id, panel in enumerate(document.get("panels", []), start=1):
        panel["id"] = panel_id
    return document
