"""OpenTelemetry tracing for the router, configured from the standard ``OTEL_*`` variables.

Tracing is on when an OTLP endpoint is configured (``OTEL_EXPORTER_OTLP_ENDPOINT`` or
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) and neither ``OTEL_SDK_DISABLED=true`` nor
``OTEL_TRACES_EXPORTER=none`` turns it off.  Otherwise every helper here is a no-op that creates
no span objects.  Sampling follows ``OTEL_TRACES_SAMPLER`` / ``OTEL_TRACES_SAMPLER_ARG`` (the
SDK's default: parentbased_always_on); the service name ``OTEL_SERVICE_NAME`` (default
fleetroute-router).  W3C ``traceparent``/``tracestate`` are read from callers and written to
backends.  Prompt and completion text are recorded only when content capture is enabled
(``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true`` or ``--trace-content``).

The process has one active Tracing (install() sets it), so the routing core can open child
spans without being handed a tracer; it never touches OpenTelemetry's global provider.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Mapping, MutableMapping
from typing import Any, Final

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.trace import Span, SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import AttributeValue

log = logging.getLogger(__name__)
SERVICE_NAME: Final = "fleetroute-router"
INSTRUMENTATION: Final = "fleetroute.router"
CAPTURE_CONTENT_ENV: Final = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
_ENDPOINT_ENVS: Final = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
_PROPAGATOR: Final = TraceContextTextMapPropagator()
_NO_SPAN: Final = contextlib.nullcontext(None)


def _true(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def enabled_by(env: Mapping[str, str]) -> bool:
    """Whether the ``OTEL_*`` variables ask for trace export."""
    if _true(env.get("OTEL_SDK_DISABLED")):
        return False
    exporters = env.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower()
    if exporters in ("none", ""):
        return False
    return any(env.get(name, "").strip() for name in _ENDPOINT_ENVS)


def otlp_exporter(env: Mapping[str, str]) -> SpanExporter:
    """The OTLP span exporter for ``OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL`` (default grpc); the
    exporter reads endpoint, headers, timeout, TLS from the environment itself."""
    protocol = (
        env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or env.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "grpc"
    ).strip()
    if protocol == "grpc":
        try:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        except (ImportError, TypeError) as error:
            raise RuntimeError(
                f"the OTLP exporter does not import ({error}): xds-protos has probably "
                "overwritten opentelemetry-proto's files; run scripts/restore-otel-protos.sh "
                "with this environment's python"
            ) from error
        return OTLPSpanExporter()
    raise ValueError(
        f"OTLP protocol {protocol!r} is not supported here: fleetroute exports OTLP over gRPC "
        "(set OTEL_EXPORTER_OTLP_PROTOCOL=grpc and point the endpoint at port 4317)"
    )


def batch_processor(exporter: SpanExporter, env: Mapping[str, str]) -> BatchSpanProcessor:
    """A batch processor exporting small batches often (64 spans, every 500 ms) unless
    ``OTEL_BSP_MAX_EXPORT_BATCH_SIZE`` / ``OTEL_BSP_SCHEDULE_DELAY`` say otherwise: encoding a
    batch holds the GIL, and the SDK's default 512-span batches stalled the proxy's event loop
    for tens of milliseconds (`fleetroute bench tracing`: p99 +7..54 ms vs +2 ms)."""
    return BatchSpanProcessor(
        exporter,
        max_export_batch_size=int(env.get("OTEL_BSP_MAX_EXPORT_BATCH_SIZE") or 64),
        schedule_delay_millis=float(env.get("OTEL_BSP_SCHEDULE_DELAY") or 500),
    )


class Tracing:
    """A tracer (or none: disabled), the W3C propagator and content-capture switch."""

    def __init__(
        self, provider: TracerProvider | None = None, *, capture_content: bool = False
    ) -> None:
        self.provider = provider
        self.tracer: trace.Tracer | None = (
            provider.get_tracer(INSTRUMENTATION) if provider is not None else None
        )
        self.capture_content = capture_content

    @property
    def enabled(self) -> bool:
        return self.tracer is not None

    @classmethod
    def from_env(
        cls,
        env: Mapping[str, str] | None = None,
        *,
        service_name: str = SERVICE_NAME,
        capture_content: bool | None = None,
        exporter: SpanExporter | None = None,
    ) -> Tracing:
        """Tracing as the environment configures it (disabled without an OTLP endpoint, unless
        an exporter is given)."""
        env = os.environ if env is None else env
        capture = (
            _true(env.get(CAPTURE_CONTENT_ENV)) if capture_content is None else capture_content
        )
        if exporter is None:
            if not enabled_by(env):
                return cls(None, capture_content=capture)
            exporter = otlp_exporter(env)
        named = "OTEL_SERVICE_NAME" in env or "service.name=" in env.get(
            "OTEL_RESOURCE_ATTRIBUTES", ""
        )
        resource = Resource.create({} if named else {"service.name": service_name})
        provider = TracerProvider(resource=resource)  # sampler from OTEL_TRACES_SAMPLER[_ARG]
        provider.add_span_processor(batch_processor(exporter, env))
        log.info(
            "tracing on: OTLP to %s",
            next((env[n] for n in _ENDPOINT_ENVS if env.get(n)), "a given exporter"),
        )
        return cls(provider, capture_content=capture)

    def shutdown(self) -> None:
        """Flush spans not yet exported and stop the exporter."""
        if self.provider is not None:
            self.provider.shutdown()

    # Spans

    def span(
        self,
        name: str,
        *,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: Mapping[str, AttributeValue] | None = None,
        context: Context | None = None,
    ) -> contextlib.AbstractContextManager[Span | None]:
        """A span made current for the block (None when tracing is off); exceptions are
        recorded on it and set its status to error."""
        if self.tracer is None:
            return _NO_SPAN
        return self.tracer.start_as_current_span(
            name, context=context, kind=kind, attributes=attributes
        )

    def start(
        self,
        name: str,
        *,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: Mapping[str, AttributeValue] | None = None,
        context: Context | None = None,
    ) -> Span | None:
        """A started span that is not made current (end it yourself); None when off."""
        if self.tracer is None:
            return None
        return self.tracer.start_span(name, context=context, kind=kind, attributes=attributes)

    # Propagation

    def extract(self, headers: Mapping[str, Any]) -> Context | None:
        """The caller's trace context from W3C headers (HTTP headers or gRPC metadata)."""
        if self.tracer is None:
            return None
        if not any(k.lower() == "traceparent" for k in headers):
            return None
        carrier = {k.lower(): v for k, v in headers.items()}
        return _PROPAGATOR.extract(carrier)

    def inject(self, headers: MutableMapping[str, str], span: Span | None = None) -> None:
        """Write the current (or given) span's context as W3C headers; a no-op when off, which
        leaves a caller's forwarded traceparent as it was."""
        if self.tracer is None:
            return
        context = trace.set_span_in_context(span) if span is not None else None
        for key in [k for k in headers if k.lower() in ("traceparent", "tracestate")]:
            del headers[key]
        _PROPAGATOR.inject(headers, context=context)

    def exemplar(self) -> dict[str, str] | None:
        """Exemplar labels linking a sample to the current span's trace (sampled spans only)."""
        if self.tracer is None:
            return None
        context = trace.get_current_span().get_span_context()
        if not context.is_valid or not context.trace_flags.sampled:
            return None
        return {
            "trace_id": format(context.trace_id, "032x"),
            "span_id": format(context.span_id, "016x"),
        }


DISABLED: Final = Tracing()
_active: Tracing = DISABLED


def active() -> Tracing:
    """The process's Tracing (disabled until install())."""
    return _active


def install(tracing: Tracing) -> Tracing:
    """Make `tracing` the process's Tracing; returns the previous one."""
    global _active
    previous, _active = _active, tracing
    return previous


@contextlib.contextmanager
def installed(tracing: Tracing) -> Iterator[Tracing]:
    """install() for a block, restoring the previous Tracing after it."""
    previous = install(tracing)
    try:
        yield tracing
    finally:
        install(previous)


def span(
    name: str, attributes: Mapping[str, AttributeValue] | None = None
) -> contextlib.AbstractContextManager[Span | None]:
    """An internal child span of whatever is current, on the active Tracing (for the core)."""
    tracing = _active
    if tracing.tracer is None:
        return _NO_SPAN
    return tracing.tracer.start_as_current_span(name, attributes=attributes)
