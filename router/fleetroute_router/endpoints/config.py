"""Load endpoint-picker config: `plugins[{name, type, parameters}]` and `profiles` of weighted
plugin references. Every problem is reported at start-up, all at once."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

import yaml

from fleetroute_router.endpoints.catalog import CATALOG
from fleetroute_router.endpoints.context import Factory, PluginContext
from fleetroute_router.endpoints.interfaces import (
    Filter,
    OutcomeObserver,
    Picker,
    PickObserver,
    Plugin,
    Scorer,
)

DEFAULT_CONFIG = "endpoint-picker.yaml"


class EndpointConfigError(ValueError):
    """An endpoint-picker config that cannot be used; the message lists every problem."""


@dataclass(frozen=True)
class Profile:
    """Filters in order, weighted scorers and one picker."""

    name: str
    filters: tuple[Filter, ...]
    scorers: tuple[tuple[Scorer, float], ...]
    picker: Picker
    plugins: tuple[Plugin, ...]
    # Sorted out once at load time, so picking needs no protocol checks.
    pick_observers: tuple[PickObserver, ...] = ()
    outcome_observers: tuple[OutcomeObserver, ...] = ()


def default_document() -> dict[str, Any]:
    text = resources.files("fleetroute_router.defaults").joinpath(DEFAULT_CONFIG).read_text()
    document: dict[str, Any] = yaml.safe_load(text)
    return document


def _plugins(
    document: Mapping[str, Any],
    catalog: Mapping[str, Factory],
    context: PluginContext,
    problems: list[str],
) -> dict[str, Plugin]:
    plugins: dict[str, Plugin] = {}
    for index, spec in enumerate(document.get("plugins") or []):
        if not isinstance(spec, Mapping):
            problems.append(f"plugins[{index}] is not a mapping")
            continue
        kind = str(spec.get("type") or "")
        name = str(spec.get("name") or kind)
        if not kind:
            problems.append(f"plugins[{index}] ({name or 'unnamed'}) has no type")
            continue
        if kind not in catalog:
            problems.append(
                f"plugin {name!r}: unknown type {kind!r} (known: {', '.join(sorted(catalog))})"
            )
            continue
        if name in plugins:
            problems.append(f"plugin name {name!r} is used twice")
            continue
        parameters = spec.get("parameters") or {}
        if not isinstance(parameters, Mapping):
            problems.append(f"plugin {name!r}: parameters must be a mapping")
            continue
        try:
            plugins[name] = catalog[kind](name, parameters, context)
        except (ValueError, TypeError) as error:
            problems.append(f"plugin {name!r} ({kind}): {error}")
    return plugins


def _profile(
    spec: Mapping[str, Any], plugins: Mapping[str, Plugin], problems: list[str]
) -> Profile | None:
    name = str(spec.get("name") or "")
    filters: list[Filter] = []
    scorers: list[tuple[Scorer, float]] = []
    pickers: list[Picker] = []
    used: list[Plugin] = []
    for ref in spec.get("plugins") or []:
        ref_name = ref.get("pluginRef") if isinstance(ref, Mapping) else ref
        plugin = plugins.get(str(ref_name))
        if plugin is None:
            problems.append(f"profile {name!r} references unknown plugin {ref_name!r}")
            continue
        used.append(plugin)
        weight = ref.get("weight", 1) if isinstance(ref, Mapping) else 1
        if isinstance(plugin, Scorer):
            if not isinstance(weight, int | float) or isinstance(weight, bool) or weight < 0:
                problems.append(f"profile {name!r}: weight of {ref_name!r} must be >= 0")
                continue
            scorers.append((plugin, float(weight)))
        elif isinstance(plugin, Filter):
            filters.append(plugin)
        elif isinstance(plugin, Picker):
            pickers.append(plugin)
    if len(pickers) != 1:
        problems.append(f"profile {name!r} needs exactly one picker, has {len(pickers)}")
        return None
    return Profile(
        name,
        tuple(filters),
        tuple(scorers),
        pickers[0],
        tuple(used),
        tuple(p for p in used if isinstance(p, PickObserver)),
        tuple(p for p in used if isinstance(p, OutcomeObserver)),
    )


def load(
    document: Mapping[str, Any],
    context: PluginContext | None = None,
    catalog: Mapping[str, Factory] = CATALOG,
) -> dict[str, Profile]:
    """Profiles by name; raises EndpointConfigError listing every problem."""
    context = context or PluginContext()
    problems: list[str] = []
    plugins = _plugins(document, catalog, context, problems)
    profiles: dict[str, Profile] = {}
    specs = document.get("profiles") or []
    if not specs:
        problems.append("no profiles")
    for index, spec in enumerate(specs):
        if not isinstance(spec, Mapping) or not spec.get("name"):
            problems.append(f"profiles[{index}] needs a name")
            continue
        if spec["name"] in profiles:
            problems.append(f"profile name {spec['name']!r} is used twice")
            continue
        profile = _profile(spec, plugins, problems)
        if profile is not None:
            profiles[profile.name] = profile
    if problems:
        raise EndpointConfigError("; ".join(problems))
    return profiles
