"""Tracing: configured from OTEL_* variables, no-op when off, W3C propagation, span tree."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from prometheus_client import CollectorRegistry

from fleetroute_router import errors
from fleetroute_router.telemetry import tracing as tracing_module
from fleetroute_router.telemetry.metrics import RouterMetrics
from fleetroute_router.telemetry.recorder import RouterTelemetry, Served
from fleetroute_router.telemetry.tracing import Tracing, enabled_by

from .test_router_metrics import decision

CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"


@pytest.mark.parametrize(
    ("env", "enabled"),
    [
        ({}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4317"}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x:4317", "OTEL_SDK_DISABLED": "true"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x:4317", "OTEL_TRACES_EXPORTER": "none"}, False),
    ],
)
def test_the_standard_variables_turn_tracing_on(env: dict[str, str], enabled: bool) -> None:
    assert enabled_by(env) is enabled


def test_without_an_endpoint_tracing_is_a_no_op() -> None:
    off = Tracing.from_env({})
    assert not off.enabled
    with off.span("anything") as span:
        assert span is None
    headers = {"traceparent": TRACEPARENT}
    off.inject(headers)
    assert headers == {"traceparent": TRACEPARENT}  # a caller's context passes through as is
    assert off.extract(headers) is None
    assert off.exemplar() is None


def test_an_unsupported_protocol_is_refused() -> None:
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json",
    }
    with pytest.raises(ValueError, match="gRPC"):
        Tracing.from_env(env)


def test_the_request_span_continues_the_callers_trace_and_propagates_to_backends(
    tracing: Tracing, exporter: InMemorySpanExporter
) -> None:
    telemetry = RouterTelemetry(RouterMetrics(CollectorRegistry()), tracing)
    d = decision()
    with (
        tracing_module.installed(tracing),
        telemetry.request("POST", "/v1/chat/completions", {"TraceParent": TRACEPARENT}),
    ):
        telemetry.requested(model="fleet/chat", operation="chat", max_tokens=64, prompt="hi")
        for step in ("fleetroute.features", "fleetroute.decide", "fleetroute.pick_endpoint"):
            with tracing_module.span(step):
                pass
        telemetry.decided(d, 0.001)
        with telemetry.upstream("decode", d.endpoint, d.model, d.pool) as headers:
            sent = dict(headers)
            telemetry.served(d, Served(e2e_s=0.4, ttft_s=0.1, completion_tokens=9, reward=0.7))
    assert tracing.provider is not None
    tracing.provider.force_flush()
    spans = {s.name: s for s in exporter.get_finished_spans()}
    root = spans["chat fleet/chat"]
    assert root.kind is SpanKind.SERVER
    assert format(root.context.trace_id, "032x") == CALLER_TRACE
    assert root.parent is not None
    assert format(root.parent.span_id, "016x") == CALLER_SPAN
    children = ["fleetroute.features", "fleetroute.decide", "fleetroute.pick_endpoint"]
    for name in [*children, "fleetroute.upstream.decode"]:
        parent = spans[name].parent
        assert parent is not None
        assert parent.span_id == root.context.span_id
        assert spans[name].context.trace_id == root.context.trace_id
    decode = spans["fleetroute.upstream.decode"]
    # INTERNAL: the aiohttp client instrumentation's span under it is the CLIENT one
    assert decode.kind is SpanKind.INTERNAL
    assert decode.attributes is not None
    assert decode.attributes["server.port"] == 8201
    # the backend gets our decode span as its parent, in the caller's trace
    assert sent["traceparent"] == (f"00-{CALLER_TRACE}-{format(decode.context.span_id, '016x')}-01")
    attributes = dict(root.attributes or {})
    assert attributes["gen_ai.request.model"] == "fleet/chat"
    assert attributes["gen_ai.response.model"] == d.model
    assert attributes["gen_ai.request.max_tokens"] == 64
    assert attributes["fleetroute.policy"] == "llm/chat"
    assert attributes["fleetroute.pool"] == d.pool
    assert attributes["fleetroute.endpoint"] == d.endpoint
    assert attributes["fleetroute.arm.names"] == ("llm/llama-8b-l4", "llm/qwen-14b-a10g")
    assert attributes["fleetroute.arm.scores"] == (0.7, 0.4)
    assert attributes["fleetroute.reward"] == 0.7
    assert attributes["gen_ai.usage.output_tokens"] == 9
    assert "gen_ai.prompt" not in attributes  # content capture is off by default


def test_prompt_text_is_recorded_only_when_enabled(exporter: InMemorySpanExporter) -> None:
    capturing = Tracing.from_env({}, exporter=exporter, capture_content=True)
    telemetry = RouterTelemetry(RouterMetrics(CollectorRegistry()), capturing)
    with telemetry.request("POST", "/v1/completions", {}):
        telemetry.requested(model="m", operation="text_completion", prompt="the prompt")
        telemetry.completion("the answer")
    capturing.shutdown()
    (span,) = exporter.get_finished_spans()
    assert span.attributes is not None
    assert span.attributes["gen_ai.prompt"] == "the prompt"
    assert span.attributes["gen_ai.completion"] == "the answer"


def test_a_rejected_request_ends_its_span_as_an_error(
    tracing: Tracing, exporter: InMemorySpanExporter
) -> None:
    telemetry = RouterTelemetry(RouterMetrics(CollectorRegistry()), tracing)
    with pytest.raises(errors.NoCapacity), telemetry.request("POST", "/v1/chat/completions", {}):
        raise errors.NoCapacity("nothing ready")
    assert tracing.provider is not None
    tracing.provider.force_flush()
    (span,) = exporter.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes is not None
    assert span.attributes["error.type"] == "no_capacity"


def test_an_unsampled_caller_gets_no_exemplar(tracing: Tracing) -> None:
    telemetry = RouterTelemetry(RouterMetrics(CollectorRegistry()), tracing)
    unsampled = f"00-{CALLER_TRACE}-{CALLER_SPAN}-00"  # parent-based sampling follows the caller
    with telemetry.request("POST", "/v1/chat/completions", {"traceparent": unsampled}):
        assert tracing.exemplar() is None
    with telemetry.request("POST", "/v1/chat/completions", {}):
        exemplar = tracing.exemplar()
        assert exemplar is not None
        assert len(exemplar["trace_id"]) == 32


def test_installed_restores_the_previous_tracing(tracing: Tracing) -> None:
    before = tracing_module.active()
    with tracing_module.installed(tracing):
        assert tracing_module.active() is tracing
    assert tracing_module.active() is before
