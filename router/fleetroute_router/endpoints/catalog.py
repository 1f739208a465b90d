"""The plugin types this build knows: an immutable map from type name to factory."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from fleetroute_router.endpoints.context import Factory
from fleetroute_router.endpoints.plugins import (
    healthy_filter,
    kv_cache_scorer,
    max_score_picker,
    prefix_scorer,
    queue_scorer,
    ttft_scorer,
)

CATALOG: Mapping[str, Factory] = MappingProxyType(
    {
        module.TYPE: module.factory
        for module in (
            healthy_filter,
            queue_scorer,
            kv_cache_scorer,
            prefix_scorer,
            ttft_scorer,
            max_score_picker,
        )
    }
)
