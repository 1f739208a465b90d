"""Fixtures for telemetry tests: the example fleet, and tracing into an in-memory exporter."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from fleetroute import routerconfig
from fleetroute_router.fleet import Fleet
from fleetroute_router.telemetry.tracing import Tracing

EMBEDDED = (
    Path(__file__).resolve().parents[2] / "router/fleetroute_router/defaults/example-fleet.yaml"
)


@pytest.fixture
def fleet() -> Fleet:
    return Fleet.from_config(routerconfig.load(EMBEDDED))


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def tracing(exporter: InMemorySpanExporter) -> Iterator[Tracing]:
    """Tracing on, exporting to memory (call tracing.provider.force_flush() before reading)."""
    enabled = Tracing.from_env({}, exporter=exporter)
    yield enabled
    enabled.shutdown()
