"""Generate the Grafana dashboards from code with grafana-foundation-sdk: one JSON file per
dashboard in dashboards/, and the copies the Helm chart ships as a ConfigMap
(charts/fleetroute/dashboards/).

    python dashboards/generate_dashboards.py          # write them
    python dashboards/generate_dashboards.py --check  # fail when any is stale or invalid

scripts/generate.py runs this too.  Each dashboard is validated against the SDK's typed models
(fleetroute_dashboards/schema.py), and every panel query is evaluated against a real Prometheus
scraping a router and the operator in e2e/test_observability.py.  Queries use the template
variables $policy and $pool (regexes, "All" = ".*") and Grafana's $__rate_interval.  Latency
and reward panels ask for exemplars (trace ids), which Grafana links to traces through the
Prometheus data source's exemplarTraceIdDestinations (the chart provisions it).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Final

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fleetroute_dashboards import overview, panels, policy, pool, router, schema

ROOT: Final = Path(__file__).resolve().parent.parent
DIRECTORIES: Final = (ROOT / "dashboards", ROOT / "charts" / "fleetroute" / "dashboards")
DASHBOARDS: Final[Mapping[str, panels.Dashboard]] = {
    "fleetroute-overview.json": overview.DASHBOARD,
    "fleetroute-policy.json": policy.DASHBOARD,
    "fleetroute-pool.json": pool.DASHBOARD,
    "fleetroute-router.json": router.DASHBOARD,
}


def build_all() -> dict[str, dict[str, Any]]:
    """Every dashboard's JSON model by file name."""
    return {name: panels.build(spec) for name, spec in DASHBOARDS.items()}


def render(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def queries(dashboard: dict[str, Any]) -> Iterator[tuple[str, str, bool]]:
    """(panel title, PromQL, exemplar) of every target of a dashboard JSON model."""
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            yield panel["title"], target["expr"], bool(target.get("exemplar"))


def invalid() -> dict[str, list[str]]:
    """Dashboards whose JSON the SDK's models do not read back as generated."""
    return {n: found for n, d in build_all().items() if (found := schema.problems(d))}


def write() -> None:
    bad = invalid()
    if bad:
        raise SystemExit(f"dashboards do not validate against the SDK's types: {bad}")
    documents = build_all()
    for directory in DIRECTORIES:
        directory.mkdir(parents=True, exist_ok=True)
        for old in directory.glob("*.json"):
            if old.name not in documents:
                old.unlink()
        for name, document in documents.items():
            (directory / name).write_text(render(document), encoding="utf-8")


def stale_files() -> list[str]:
    """Generated dashboard files that differ from what the code produces (or should not be)."""
    documents = {name: render(d) for name, d in build_all().items()}
    stale = []
    for directory in DIRECTORIES:
        for name, text in documents.items():
            path = directory / name
            if not path.is_file() or path.read_text(encoding="utf-8") != text:
                stale.append(str(path.relative_to(ROOT)))
        stale += [
            str(p.relative_to(ROOT)) for p in directory.glob("*.json") if p.name not in documents
        ]
    return stale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if the JSON files are stale")
    args = parser.parse_args(argv)
    if args.check:
        stale, bad = stale_files(), invalid()
        if stale:
            print("stale dashboards (run: python dashboards/generate_dashboards.py):", *stale)
        if bad:
            print("dashboards invalid against the SDK's types:", bad)
        return 1 if stale or bad else 0
    write()
    return 0


if __name__ == "__main__":
    sys.exit(main())
