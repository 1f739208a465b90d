"""The operator's telemetry: Prometheus metrics on a small HTTP server, reconcile spans.

Metrics (kopf has no Prometheus support of its own):

    fleetroute_operator_reconciles_total{kind, handler, result}    result: success, error,
                                                                   permanent_error
    fleetroute_operator_reconcile_duration_seconds{kind, handler}  histogram
    fleetroute_operator_gpupool_gpus{gpupool, product, state}      state: capacity, allocated,
                                                                   free

Spans: one ``reconcile {kind}`` span per handler call (attributes k8s.namespace.name,
fleetroute.resource.name, fleetroute.handler, fleetroute.result), exported over OTLP when the
standard ``OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT`` is set (service name fleetroute-operator);
sampling from ``OTEL_TRACES_SAMPLER[_ARG]``.  Nothing is created when tracing is off.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Final, TypeVar

import kopf
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.trace import Status, StatusCode
from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)
PREFIX: Final = "fleetroute_operator"
SERVICE_NAME: Final = "fleetroute-operator"
RESULTS: Final = ("success", "error", "permanent_error")
BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_ENDPOINT_ENVS: Final = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
Fn = TypeVar("Fn", bound=Callable[..., Any])


class OperatorMetrics:
    """The operator's series in an explicit registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        self.reconciles = Counter(
            f"{PREFIX}_reconciles",
            "Handler runs by resource kind, handler and result",
            ["kind", "handler", "result"],
            registry=self.registry,
        )
        self.duration = Histogram(
            f"{PREFIX}_reconcile_duration_seconds",
            "Duration of handler runs",
            ["kind", "handler"],
            buckets=BUCKETS,
            registry=self.registry,
        )
        self.gpus = GpuPoolCollector()
        self.registry.register(self.gpus)

    def gpupool(self, name: str, product: str, status: Mapping[str, Any]) -> None:
        """Record a GPUPool's capacity, allocated and free GPUs from its computed status."""
        self.gpus.set(name, product, status)


class GpuPoolCollector(Collector):
    """``fleetroute_operator_gpupool_gpus``: the last figures of each GPUPool, dropped when not
    refreshed for `ttl_s` (the pool was deleted, or this replica stopped reconciling it)."""

    def __init__(self, ttl_s: float = 120.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s, self._clock = ttl_s, clock
        self._pools: dict[str, tuple[str, dict[str, float], float]] = {}
        self._lock = threading.Lock()

    def set(self, name: str, product: str, status: Mapping[str, Any]) -> None:
        figures = {s: float(status.get(s) or 0) for s in ("capacity", "allocated", "free")}
        with self._lock:
            self._pools[name] = (product, figures, self._clock())

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            f"{PREFIX}_gpupool_gpus",
            "GPUs of a GPUPool's nodes (state: capacity, allocated, free)",
            labels=["gpupool", "product", "state"],
        )
        now = self._clock()
        with self._lock:
            for name, (product, figures, at) in sorted(self._pools.items()):
                if now - at > self.ttl_s:
                    del self._pools[name]
                    continue
                for state, value in figures.items():
                    family.add_metric([name, product, state], value)
        yield family

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily(
            f"{PREFIX}_gpupool_gpus", "", labels=["gpupool", "product", "state"]
        )


def _true(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def tracer_from_env(
    env: Mapping[str, str] | None = None, exporter: SpanExporter | None = None
) -> tuple[trace.Tracer | None, TracerProvider | None]:
    """A tracer exporting over OTLP/gRPC when the OTEL_* variables configure an endpoint."""
    env = os.environ if env is None else env
    if exporter is None:
        off = _true(env.get("OTEL_SDK_DISABLED")) or env.get("OTEL_TRACES_EXPORTER") == "none"
        if off or not any(env.get(n, "").strip() for n in _ENDPOINT_ENVS):
            return None, None
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter()
    named = "OTEL_SERVICE_NAME" in env or "service.name=" in env.get("OTEL_RESOURCE_ATTRIBUTES", "")
    provider = TracerProvider(
        resource=Resource.create({} if named else {"service.name": SERVICE_NAME})
    )
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider.get_tracer("fleetroute.operator"), provider


class OperatorTelemetry:
    """Metrics, an optional tracer, and the metrics HTTP server of one operator process."""

    def __init__(
        self,
        metrics: OperatorMetrics | None = None,
        tracer: trace.Tracer | None = None,
        provider: TracerProvider | None = None,
    ) -> None:
        self.metrics = metrics or OperatorMetrics()
        self.tracer, self.provider = tracer, provider
        self._server: Any = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> OperatorTelemetry:
        tracer, provider = tracer_from_env(env)
        return cls(OperatorMetrics(), tracer, provider)

    def serve(self, address: str) -> int:
        """Serve /metrics on host:port (port 0: any free one); returns the port."""
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"metrics address must be host:port, got {address!r}")
        self._server, _ = start_http_server(
            int(port), addr=host.strip("[]"), registry=self.metrics.registry
        )
        bound = int(self._server.server_port)
        log.info("operator metrics on http://%s:%d/metrics", host, bound)
        return bound

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self.provider is not None:
            self.provider.shutdown()

    def reconciler(self, kind: str, fn: Fn) -> Fn:
        """Wrap a kopf handler: count and time each run by result, in a ``reconcile {kind}``
        span; the handler's own signature and return value are kept."""
        handler = fn.__name__
        for result in RESULTS:
            self.metrics.reconciles.labels(kind, handler, result)

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            result = "error"
            span = None
            if self.tracer is not None:
                span = self.tracer.start_span(
                    f"reconcile {kind}",
                    attributes={
                        "fleetroute.kind": kind,
                        "fleetroute.handler": handler,
                        "fleetroute.resource.name": str(kwargs.get("name") or ""),
                        "k8s.namespace.name": str(kwargs.get("namespace") or ""),
                    },
                )
            try:
                with trace.use_span(span) if span is not None else contextlib.nullcontext():
                    value = fn(*args, **kwargs)
                result = "success"
                if kind == "GPUPool":
                    self._gpupool(kwargs)
                return value
            except kopf.PermanentError:
                result = "permanent_error"
                raise
            finally:
                self.metrics.reconciles.labels(kind, handler, result).inc()
                self.metrics.duration.labels(kind, handler).observe(time.perf_counter() - started)
                if span is not None:
                    span.set_attribute("fleetroute.result", result)
                    if result != "success":
                        span.set_status(Status(StatusCode.ERROR))
                    span.end()

        return wrapper  # type: ignore[return-value]

    def _gpupool(self, kwargs: Mapping[str, Any]) -> None:
        """GPU figures of a GPUPool after its status handler: its status with the patch on."""
        body, patch = kwargs.get("body") or {}, kwargs.get("patch") or {}
        status = {**(body.get("status") or {}), **(patch.get("status") or {})}
        name = kwargs.get("name") or (body.get("metadata") or {}).get("name")
        product = (body.get("spec") or {}).get("product")
        if name and product and "capacity" in status:
            self.metrics.gpupool(str(name), str(product), status)
