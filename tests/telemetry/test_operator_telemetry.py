"""Operator telemetry: reconcile counts, durations and spans, GPU figures, /metrics server."""

from __future__ import annotations

import urllib.request
from typing import Any

import kopf
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from prometheus_client import CollectorRegistry

from fleetroute_operator.telemetry import (
    GpuPoolCollector,
    OperatorMetrics,
    OperatorTelemetry,
    tracer_from_env,
)


def gpupool_handler(body: Any, patch: Any, **_: Any) -> None:
    patch["status"] = {"capacity": 8, "allocated": 3, "free": 5}


def failing_handler(**_: Any) -> None:
    raise kopf.PermanentError("invalid spec")


def crashing_handler(**_: Any) -> None:
    raise RuntimeError("boom")


def sample(telemetry: OperatorTelemetry, name: str, **labels: str) -> float | None:
    return telemetry.metrics.registry.get_sample_value(name, labels)


def test_reconciles_are_counted_by_kind_and_result() -> None:
    telemetry = OperatorTelemetry(OperatorMetrics(CollectorRegistry()))
    ok = telemetry.reconciler("GPUPool", gpupool_handler)
    bad = telemetry.reconciler("ModelPool", failing_handler)
    crash = telemetry.reconciler("RoutingPolicy", crashing_handler)
    body = {"metadata": {"name": "h100"}, "spec": {"product": "NVIDIA-H100-80GB-HBM3"}}
    ok(body=body, patch={}, name="h100")
    with pytest.raises(kopf.PermanentError):
        bad(name="p")
    with pytest.raises(RuntimeError):
        crash(name="r")
    total = "fleetroute_operator_reconciles_total"
    assert (
        sample(telemetry, total, kind="GPUPool", handler="gpupool_handler", result="success") == 1
    )
    assert sample(telemetry, total, kind="GPUPool", handler="gpupool_handler", result="error") == 0
    labels = {"kind": "ModelPool", "handler": "failing_handler"}
    assert sample(telemetry, total, **labels, result="permanent_error") == 1
    labels = {"kind": "RoutingPolicy", "handler": "crashing_handler"}
    assert sample(telemetry, total, **labels, result="error") == 1
    duration = "fleetroute_operator_reconcile_duration_seconds_count"
    assert sample(telemetry, duration, kind="GPUPool", handler="gpupool_handler") == 1
    gpus = "fleetroute_operator_gpupool_gpus"
    labels = {"gpupool": "h100", "product": "NVIDIA-H100-80GB-HBM3"}
    assert sample(telemetry, gpus, **labels, state="capacity") == 8
    assert sample(telemetry, gpus, **labels, state="allocated") == 3
    assert sample(telemetry, gpus, **labels, state="free") == 5


def test_the_wrapper_keeps_the_handlers_name_for_kopf() -> None:
    telemetry = OperatorTelemetry(OperatorMetrics(CollectorRegistry()))
    assert telemetry.reconciler("GPUPool", gpupool_handler).__name__ == "gpupool_handler"


def test_gpu_figures_of_a_pool_no_longer_refreshed_disappear() -> None:
    now = [0.0]
    collector = GpuPoolCollector(ttl_s=60, clock=lambda: now[0])
    collector.set("a100", "A100", {"capacity": 4, "allocated": 4, "free": 0})
    assert len(next(iter(collector.collect())).samples) == 3
    now[0] = 61.0
    assert next(iter(collector.collect())).samples == []


def test_reconcile_spans_when_tracing_is_on() -> None:
    exporter = InMemorySpanExporter()
    tracer, provider = tracer_from_env({}, exporter=exporter)
    telemetry = OperatorTelemetry(OperatorMetrics(CollectorRegistry()), tracer, provider)
    telemetry.reconciler("GPUPool", gpupool_handler)(body={}, patch={}, name="h100")
    with pytest.raises(kopf.PermanentError):
        telemetry.reconciler("ModelPool", failing_handler)(name="p", namespace="llm")
    telemetry.close()
    spans = {s.name: s for s in exporter.get_finished_spans()}
    assert set(spans) == {"reconcile GPUPool", "reconcile ModelPool"}
    failed = spans["reconcile ModelPool"]
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.attributes is not None
    assert failed.attributes["k8s.namespace.name"] == "llm"
    assert failed.attributes["fleetroute.result"] == "permanent_error"


def test_no_tracer_without_an_otlp_endpoint() -> None:
    assert tracer_from_env({}) == (None, None)


def test_metrics_are_served_over_http_with_openmetrics() -> None:
    telemetry = OperatorTelemetry(OperatorMetrics(CollectorRegistry()))
    telemetry.reconciler("GPUPool", gpupool_handler)(body={}, patch={}, name="x")
    port = telemetry.serve("127.0.0.1:0")
    try:
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/metrics",
            headers={"Accept": "application/openmetrics-text; version=1.0.0"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 (http)
            body = response.read().decode()
            content_type = response.headers["Content-Type"]
    finally:
        telemetry.close()
    assert content_type.startswith("application/openmetrics-text")
    assert 'fleetroute_operator_reconciles_total{handler="gpupool_handler",kind="GPUPool"' in body
    assert body.rstrip().endswith("# EOF")
