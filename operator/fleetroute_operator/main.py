"""Run the operator: build the registry and memo, then hand over to kopf."""

from __future__ import annotations

import asyncio

import kopf

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
    handlers.register(registry, settings, telemetry)
    memo = kopf.Memo(state=handlers.State(ApiKube(), settings))
    try:
        asyncio.run(
            kopf.operator(
                registry=registry,
                memo=memo,
                clusterwide=not settings.namespaces,
                namespaces=list(settings.namespaces),
                liveness_endpoint=liveness_endpoint,
                standalone=True,
            )
        )
    finally:
        telemetry.close()  # flush spans not yet exported
