"""The router's telemetry: Prometheus metrics (OpenMetrics with trace-id exemplars) and
OpenTelemetry traces (OTLP, configured from the standard ``OTEL_*`` variables).

metrics      every series the router exports, in one explicit registry
tracing      tracer setup, W3C trace-context propagation, span helpers (no-op when disabled)
exposition   /metrics rendering with content negotiation, and a standalone metrics server
recorder     what the request path calls: one call per point, metrics and span together
"""
