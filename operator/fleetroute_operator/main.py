"""Run the operator: build the registry and memo, then hand over to kopf."""

from __future__ import annotations

import asyncio
import contextlib

import kopf

# kopf.operator() takes the indexers as a parameter; their class is not re-exported by kopf.
from kopf._core.engines.indexing import OperatorIndexers

from fleetroute_operator import handlers
from fleetroute_operator.kube import ApiKube
from fleetroute_operator.settings import Settings
from fleetroute_operator.telemetry import OperatorTelemetry


def run(
    settings: Settings,
    *,
    liveness_endpoint: str | None = None,
    metrics_address: str | None = None,
) -> None:
    """Run until SIGINT/SIGTERM, watching the given namespaces or the whole cluster."""
    telemetry = OperatorTelemetry.from_env()  # reconcile spans when OTEL_* configures OTLP
    if metrics_address:
        telemetry.serve(metrics_address)
    registry = kopf.OperatorRegistry()
    handlers.register(registry, telemetry)
    state = handlers.State(ApiKube(), settings)
    try:
        asyncio.run(_operate(registry, state, settings, telemetry, liveness_endpoint))
    finally:
        telemetry.close()  # flush spans not yet exported


async def _operate(
    registry: kopf.OperatorRegistry,
    state: handlers.State,
    settings: Settings,
    telemetry: OperatorTelemetry,
    liveness_endpoint: str | None,
) -> None:
    """kopf's operator, and beside it the periodic resync over kopf's indexes."""
    memo = kopf.Memo(state=state)
    indexers = OperatorIndexers()
    resync = handlers.resync(state, memo, indexers.indices, telemetry)
    refresher = asyncio.create_task(resync.run(settings.status_interval, state.indexed))
    try:
        await kopf.operator(
            registry=registry,
            memo=memo,
            indexers=indexers,
            clusterwide=not settings.namespaces,
            namespaces=list(settings.namespaces),
            liveness_endpoint=liveness_endpoint,
            standalone=True,
        )
    finally:
        refresher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await refresher
