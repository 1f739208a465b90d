"""The instrumented request path in-process: proxy and gRPC API over simulated servers, with
spans exported to memory and metrics read from the proxy's /metrics."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import aiohttp
import grpc
import pytest
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import Link, SpanKind, TraceState
from opentelemetry.util.types import Attributes
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from fleetroute import routerconfig
from fleetroute.v1alpha1 import router_pb2, router_pb2_grpc
from fleetroute_router.dataplane import DataPlane
from fleetroute_router.fleet import Fleet
from fleetroute_router.proxy.app import ProxyServer
from fleetroute_router.server import RouterServer
from fleetroute_router.sim.fleet import SimFleet
from fleetroute_router.telemetry import tracing as tracing_module
from fleetroute_router.telemetry.tracing import Tracing

from .conftest import EMBEDDED

CALLER_TRACE = "0af7651916cd43dd8448eb211c80319c"
CALLER_SPAN = "b7ad6b7169203331"
TRACEPARENT = f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"
OPENMETRICS = "application/openmetrics-text; version=1.0.0"


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


@dataclass
class Router:
    proxy: ProxyServer
    grpc_port: int
    tracing: Tracing
    exporter: InMemorySpanExporter

    def spans(self) -> list[ReadableSpan]:
        assert self.tracing.provider is not None
        self.tracing.provider.force_flush()
        return list(self.exporter.get_finished_spans())


@pytest.fixture
async def router(exporter: InMemorySpanExporter) -> AsyncIterator[Router]:
    async with _router(Tracing.from_env({}, exporter=exporter), exporter) as started:
        yield started


@contextlib.asynccontextmanager
async def _router(enabled: Tracing, exporter: InMemorySpanExporter) -> AsyncIterator[Router]:
    config = routerconfig.load(EMBEDDED)
    endpoints = [e for pool in config.pools for e in pool.endpoints]
    for endpoint, port in zip(endpoints, _free_ports(len(endpoints)), strict=True):
        endpoint.address = f"127.0.0.1:{port}"
    sims = SimFleet(config, speed=0.0)
    await sims.start()
    with tracing_module.installed(enabled):
        dataplane = DataPlane(Fleet.from_config(config), scrape=False)
        dataplane.start()
        proxy = ProxyServer(dataplane, "127.0.0.1:0", metrics=True)  # --proxy-metrics
        await proxy.start()
        grpc_server = RouterServer(dataplane, "127.0.0.1:0")
        await grpc_server.start()
        try:
            yield Router(proxy, grpc_server.port, enabled, exporter)
        finally:
            await grpc_server.drain(0)
            await proxy.stop()
            await dataplane.close()
            await sims.stop()
            enabled.shutdown()


def by_name(spans: list[ReadableSpan]) -> dict[str, ReadableSpan]:
    return {s.name: s for s in spans}


async def test_a_proxied_request_is_traced_and_exemplified(router: Router) -> None:
    body = {
        "model": "fleet/chat",
        "messages": [{"role": "user", "content": "a secret prompt"}],
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_tokens": 8,
    }
    url = f"http://{router.proxy.address}"
    async with aiohttp.ClientSession() as session:
        async with session.post(
            f"{url}/v1/chat/completions", json=body, headers={"traceparent": TRACEPARENT}
        ) as response:
            assert response.status == 200
            await response.read()
            pool = response.headers["x-fleetroute-pool"]
        async with session.get(f"{url}/metrics", headers={"Accept": OPENMETRICS}) as response:
            assert response.headers["Content-Type"].startswith("application/openmetrics-text")
            exposition = await response.text()
    finished = router.spans()
    spans = by_name(finished)
    root = spans["chat fleet/chat"]
    assert root.kind is SpanKind.SERVER
    # the aiohttp server instrumentation's span, renamed and annotated by the recorder
    assert root.instrumentation_scope is not None
    assert root.instrumentation_scope.name == "opentelemetry.instrumentation.aiohttp_server"
    assert dict(root.attributes or {})["http.status_code"] == 200
    assert format(root.context.trace_id, "032x") == CALLER_TRACE
    assert root.parent is not None
    assert format(root.parent.span_id, "016x") == CALLER_SPAN
    for name in ("fleetroute.features", "fleetroute.decide", "fleetroute.pick_endpoint"):
        parent = spans[name].parent
        assert parent is not None
        assert parent.span_id == root.context.span_id, name
    decode = spans["fleetroute.upstream.decode"]
    assert decode.kind is SpanKind.INTERNAL
    # the HTTP call to the model server: the aiohttp client instrumentation's CLIENT span
    (call,) = [
        s for s in finished if s.parent is not None and s.parent.span_id == decode.context.span_id
    ]
    assert call.kind is SpanKind.CLIENT
    assert call.instrumentation_scope is not None
    assert call.instrumentation_scope.name == "opentelemetry.instrumentation.aiohttp_client"
    assert not [s for s in finished if "/metrics" in s.name]  # scrapes are not traced
    # the instrumentations ran on the router's provider; the global one was never set
    assert not isinstance(trace.get_tracer_provider(), TracerProvider)
    attributes = dict(root.attributes or {})
    assert attributes["fleetroute.pool"] == pool
    assert attributes["gen_ai.usage.output_tokens"] == 8
    assert "fleetroute.ttft.observed_s" in attributes
    # energy modelled (no scraping here) and its carbon at the pool's configured intensity
    assert attributes["fleetroute.energy.source"] == "model"
    assert attributes["fleetroute.energy.measured"] is False
    intensity = {"llm/llama-70b-decode": 350, "llm/qwen-14b-a10g": 420}.get(pool, 120)
    assert attributes["fleetroute.carbon.intensity_g_per_kwh"] == intensity
    assert attributes["fleetroute.carbon.intensity_source"] == "config"
    assert attributes["fleetroute.carbon.grams"] == pytest.approx(
        float(attributes["fleetroute.energy.joules"]) / 3.6e6 * intensity
    )
    assert float(attributes["fleetroute.carbon.grams"]) > 0
    assert not any(
        "secret" in str(v) for s in spans.values() for v in (s.attributes or {}).values()
    )
    ttft = [
        sample
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
        if sample.name == "fleetroute_router_ttft_seconds_bucket" and sample.exemplar
    ]
    assert ttft
    assert ttft[0].exemplar.labels["trace_id"] == CALLER_TRACE


async def test_a_grpc_route_continues_the_callers_trace(router: Router) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{router.grpc_port}") as channel:
        stub = router_pb2_grpc.RouterStub(channel)
        await stub.Route(
            router_pb2.RouteRequest(model="fleet/chat", prompt="hello"),
            metadata=(("traceparent", TRACEPARENT),),
        )
    spans = by_name(router.spans())
    call = spans["/fleetroute.v1alpha1.Router/Route"]
    assert call.kind is SpanKind.SERVER
    assert call.instrumentation_scope is not None
    assert call.instrumentation_scope.name == "opentelemetry.instrumentation.grpc"
    assert format(call.context.trace_id, "032x") == CALLER_TRACE
    assert spans["fleetroute.decide"].parent is not None
    assert spans["fleetroute.decide"].parent.span_id == call.context.span_id


class _DropHttpRoots(Sampler):
    """Samples out the HTTP server span of a request and whatever descends from it, and
    samples everything else in: a span started outside that request's trace is recorded."""

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        parent = trace.get_current_span(parent_context).get_span_context()
        if name.startswith("POST ") or (parent.is_valid and not parent.trace_flags.sampled):
            return SamplingResult(Decision.DROP)
        return SamplingResult(Decision.RECORD_AND_SAMPLE)

    def get_description(self) -> str:
        return "drop HTTP roots"


async def test_a_request_sampled_out_makes_no_span_at_all() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=_DropHttpRoots())
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    async with _router(Tracing(provider), exporter) as router:
        body = {"model": "fleet/chat", "messages": [{"role": "user", "content": "hi"}]}
        async with (
            aiohttp.ClientSession() as session,
            session.post(f"http://{router.proxy.address}/v1/chat/completions", json=body) as reply,
        ):
            assert reply.status == 200
            await reply.read()
        # every span of the request belongs to the instrumentation's unsampled trace
        assert router.spans() == []
