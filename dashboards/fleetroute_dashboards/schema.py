"""Validate a dashboard's JSON against grafana-foundation-sdk's typed models."""

from __future__ import annotations

import json
from typing import Any

from grafana_foundation_sdk.cog import plugins
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models import prometheus, stat, timeseries

# Panel options, field configs and data queries decode into their plugins' types once the
# SDK's variants are registered (otherwise they stay untyped dicts).
plugins.register_default_plugins()
_OPTIONS = {"timeseries": timeseries.Options, "stat": stat.Options}


def problems(document: dict[str, Any]) -> list[str]:
    """What of the JSON the SDK's Dashboard model does not read back identically, and every
    target that does not decode as a Prometheus query (empty: valid)."""
    found: list[str] = []
    try:
        typed = model.Dashboard.from_json(document)
    except (KeyError, TypeError, ValueError) as error:
        return [f"does not decode as a Dashboard: {error!r}"]
    again = json.loads(json.dumps(typed, cls=JSONEncoder))
    found += _differences(document, again, "")
    for panel in typed.panels or []:
        if isinstance(panel, model.RowPanel):
            continue
        expected = _OPTIONS.get(panel.type_val or "")
        if expected is None or not isinstance(panel.options, expected):
            found.append(f"panel {panel.title!r}: options are not {panel.type_val} options")
        for target in panel.targets or []:
            if not isinstance(target, prometheus.Dataquery):
                found.append(f"panel {panel.title!r}: a target is not a Prometheus query")
    return found


def _differences(expected: Any, actual: Any, path: str) -> list[str]:
    if isinstance(expected, dict) and isinstance(actual, dict):
        found = [f"{path}.{k}: dropped by the model" for k in expected if k not in actual]
        found += [f"{path}.{k}: added by the model" for k in actual if k not in expected]
        for key in expected.keys() & actual.keys():
            found += _differences(expected[key], actual[key], f"{path}.{key}")
        return found
    if isinstance(expected, list) and isinstance(actual, list) and len(expected) == len(actual):
        return [
            d
            for i, (e, a) in enumerate(zip(expected, actual, strict=True))
            for d in _differences(e, a, f"{path}[{i}]")
        ]
    return [] if expected == actual else [f"{path}: {expected!r} reads back as {actual!r}"]
