"""The ext_proc service, driven through a real gRPC Process stream as Envoy drives it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from envoy.config.core.v3 import base_pb2
from envoy.extensions.filters.http.ext_proc.v3 import processing_mode_pb2
from envoy.service.ext_proc.v3 import external_processor_pb2 as ext
from envoy.service.ext_proc.v3 import external_processor_pb2_grpc as ext_grpc
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from fleetroute.v1alpha1 import config_pb2
from fleetroute_router.extproc.server import ExtProcServer
from fleetroute_router.telemetry import tracing
from fleetroute_router.telemetry.tracing import Tracing

MODEL = "test/small-8B"
Mode = processing_mode_pb2.ProcessingMode


def _headers(pairs: dict[str, str], end: bool = False) -> ext.HttpHeaders:
    return ext.HttpHeaders(
        headers=base_pb2.HeaderMap(
            headers=[base_pb2.HeaderValue(key=k, raw_value=v.encode()) for k, v in pairs.items()]
        ),
        end_of_stream=end,
    )


def _subset_metadata(subset: list[str] | None) -> base_pb2.Metadata:
    metadata = base_pb2.Metadata()
    if subset is not None:
        hint = metadata.filter_metadata["envoy.lb.subset_hint"]
        hint.fields["x-gateway-destination-endpoint-subset"].list_value.extend(subset)
    return metadata


def _served_metadata(served: str) -> base_pb2.Metadata:
    metadata = base_pb2.Metadata()
    if served:
        lb = metadata.filter_metadata["envoy.lb"]
        lb.fields["x-gateway-destination-endpoint-served"].string_value = served
    return metadata


def _set_headers(common: ext.CommonResponse) -> dict[str, str]:
    return {o.header.key: o.header.raw_value.decode() for o in common.header_mutation.set_headers}


class Envoy:
    """Starts the ext_proc server over the bed's data plane once the bed serves."""

    def __init__(self, bed: Any) -> None:
        self.bed = bed
        self.server: ExtProcServer | None = None
        self.channel: grpc.aio.Channel | None = None

    async def stub(self) -> ext_grpc.ExternalProcessorStub:
        self.server = ExtProcServer(self.bed.dataplane, "127.0.0.1:0")
        await self.server.start()
        self.channel = grpc.aio.insecure_channel(f"127.0.0.1:{self.server.port}")
        return ext_grpc.ExternalProcessorStub(self.channel)

    async def close(self) -> None:
        if self.channel is not None:
            await self.channel.close()
        if self.server is not None:
            await self.server.stop(0)


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
async def envoy(bed: Any) -> AsyncIterator[Envoy]:
    instance = Envoy(bed)
    yield instance
    await instance.close()


async def _exchange(
    stub: ext_grpc.ExternalProcessorStub,
    body: dict[str, Any],
    answer: bytes,
    *,
    mode: int = Mode.BUFFERED,
    status: str = "200",
    content_type: str = "application/json",
    subset: list[str] | None = None,
    served: str = "",
    raw: bytes | None = None,
) -> list[ext.ProcessingResponse]:
    """One HTTP request as Envoy reports it (with an `envoy.lb.subset_hint` on the request and
    the served endpoint on the response when given); returns the processor's answers in order."""
    raw = json.dumps(body).encode() if raw is None else raw
    call = stub.Process()
    answers: list[ext.ProcessingResponse] = []
    await call.write(
        ext.ProcessingRequest(
            request_headers=_headers({":path": "/v1/chat/completions", ":method": "POST"}),
            protocol_config=ext.ProtocolConfiguration(request_body_mode=mode),  # type: ignore[arg-type]
            metadata_context=_subset_metadata(subset),
        )
    )
    if mode == Mode.BUFFERED:
        answers.append(await call.read())
    await call.write(ext.ProcessingRequest(request_body=ext.HttpBody(body=raw, end_of_stream=True)))
    answers.append(await call.read())
    if mode == Mode.FULL_DUPLEX_STREAMED:
        answers.append(await call.read())
    if answers[-1].HasField("immediate_response"):
        await call.done_writing()
        return answers
    await call.write(
        ext.ProcessingRequest(
            response_headers=_headers({":status": status, "content-type": content_type}),
            metadata_context=_served_metadata(served),
        )
    )
    answers.append(await call.read())
    await call.write(
        ext.ProcessingRequest(response_body=ext.HttpBody(body=answer, end_of_stream=True))
    )
    answers.append(await call.read())
    await call.done_writing()
    return answers


USAGE = json.dumps({"usage": {"prompt_tokens": 3, "completion_tokens": 7}}).encode()


def _requests(bed: Any, pool: str, outcome: str) -> float:
    """Requests to a pool with an outcome, as the router's metrics count them."""
    registry = bed.dataplane.telemetry.registry
    return sum(
        sample.value
        for metric in registry.collect()
        if metric.name == "fleetroute_router_requests"
        for sample in metric.samples
        if sample.name.endswith("_total")
        and sample.labels.get("pool") == pool
        and sample.labels.get("outcome") == outcome
    )


async def test_buffered_request_gets_destination_metadata_and_a_rewritten_model(
    bed: Any, envoy: Envoy
) -> None:
    (server,) = await bed.pool("small", MODEL)
    bed.policy("fleet/chat", ["small"])
    await bed.serve()
    stub = await envoy.stub()
    body = {"model": "fleet/chat", "messages": [{"role": "user", "content": "Hi"}]}
    answers = await _exchange(stub, body, USAGE)
    headers_answer, body_answer, response_headers, response_body = answers
    assert headers_answer.HasField("request_headers")
    common = body_answer.request_body.response
    assert common.clear_route_cache
    set_headers = _set_headers(common)
    assert set_headers["x-gateway-destination-endpoint"] == server.address
    new_body = json.loads(common.body_mutation.body)
    assert new_body["model"] == MODEL
    assert set_headers["content-length"] == str(len(common.body_mutation.body))
    lb = body_answer.dynamic_metadata.fields["envoy.lb"].struct_value
    assert lb.fields["x-gateway-destination-endpoint"].string_value == server.address
    added = _set_headers(response_headers.response_headers.response)
    assert added["x-fleetroute-pool"] == "small"
    assert response_body.HasField("response_body")
    # The usage fed the policy: the decision is settled and its endpoint free again.
    assert bed.dataplane.core.load.in_flight(server.address) == 0
    assert _requests(bed, "small", "success") == 1


async def test_full_duplex_streamed_mode_answers_headers_after_the_body(
    bed: Any, envoy: Envoy
) -> None:
    (server,) = await bed.pool("small", MODEL)
    await bed.serve()
    stub = await envoy.stub()
    body = {"model": MODEL, "prompt": "Hi", "stream": True}
    sse = b'data: {"choices":[{"text":"a"}]}\n\ndata: [DONE]\n\n'
    answers = await _exchange(
        stub, body, sse, mode=Mode.FULL_DUPLEX_STREAMED, content_type="text/event-stream"
    )
    headers_answer, body_answer = answers[0], answers[1]
    assert (
        _set_headers(headers_answer.request_headers.response)["x-gateway-destination-endpoint"]
        == server.address
    )
    streamed = body_answer.request_body.response.body_mutation.streamed_response
    assert streamed.end_of_stream
    assert json.loads(streamed.body)["model"] == MODEL
    assert answers[-1].response_body.response.body_mutation.streamed_response.body == sse


async def test_a_split_request_names_the_prefiller(bed: Any, envoy: Envoy) -> None:
    (prefill,) = await bed.pool("prefill", MODEL, role="prefill", peer="decode")
    (decode,) = await bed.pool("decode", MODEL, role="decode", peer="prefill")
    bed.policy("fleet/big", ["decode"], min_uncached_prompt_tokens=100)
    await bed.serve()
    stub = await envoy.stub()
    body = {"model": "fleet/big", "prompt": "long " * 400}
    answers = await _exchange(stub, body, USAGE)
    set_headers = _set_headers(answers[1].request_body.response)
    assert set_headers["x-prefiller-host-port"] == prefill.address
    assert set_headers["x-gateway-destination-endpoint"] == decode.address


@pytest.mark.parametrize(
    ("mode", "expected"), [(config_pb2.FAIL_CLOSE, 503), (config_pb2.FAIL_OPEN, None)]
)
async def test_no_capacity_honours_the_failure_mode(
    bed: Any, envoy: Envoy, mode: int, expected: int | None
) -> None:
    bed.config.pools.add(name="empty", model=MODEL)
    bed.policy("fleet/x", ["empty"], failure_mode=mode)
    await bed.serve()
    stub = await envoy.stub()
    answers = await _exchange(stub, {"model": "fleet/x", "prompt": "Hi"}, USAGE)
    body_answer = answers[1]
    if expected is None:
        assert body_answer.HasField("request_body")
        assert not _set_headers(body_answer.request_body.response)
    else:
        assert body_answer.immediate_response.status.code == expected
        error = json.loads(body_answer.immediate_response.body)["error"]
        assert error["code"] == "no_capacity"


async def test_unknown_model_and_bad_json_are_answered_immediately(bed: Any, envoy: Envoy) -> None:
    await bed.pool("small", MODEL)
    await bed.serve()
    stub = await envoy.stub()
    answers = await _exchange(stub, {"model": "nope", "prompt": "x"}, USAGE)
    assert answers[-1].immediate_response.status.code == 404
    call = stub.Process()
    await call.write(ext.ProcessingRequest(request_headers=_headers({":path": "/v1/completions"})))
    await call.read()
    await call.write(
        ext.ProcessingRequest(request_body=ext.HttpBody(body=b"{", end_of_stream=True))
    )
    answer: ext.ProcessingResponse = await call.read()
    await call.done_writing()
    assert answer.immediate_response.status.code == 400


async def test_an_upstream_5xx_counts_as_a_failure(bed: Any, envoy: Envoy) -> None:
    (server,) = await bed.pool("small", MODEL)
    await bed.serve()
    stub = await envoy.stub()
    await _exchange(stub, {"model": MODEL, "prompt": "x"}, b"oops", status="503")
    assert _requests(bed, "small", "failure") == 1
    assert bed.dataplane.core.load.in_flight(server.address) == 0


def _destinations(answer: ext.ProcessingResponse) -> tuple[list[str], list[str]]:
    """The destination list of a buffered-mode body answer: (header, `envoy.lb` metadata)."""
    header = _set_headers(answer.request_body.response)["x-gateway-destination-endpoint"]
    lb = answer.dynamic_metadata.fields["envoy.lb"].struct_value
    metadata = lb.fields["x-gateway-destination-endpoint"].string_value
    return header.split(","), metadata.split(",")


async def test_the_destination_is_an_ordered_list_of_the_pools_endpoints(
    bed: Any, envoy: Envoy
) -> None:
    servers = await bed.pool("small", MODEL, count=3)
    await bed.serve()
    stub = await envoy.stub()
    answers = await _exchange(stub, {"model": MODEL, "prompt": "x"}, USAGE)
    header, metadata = _destinations(answers[1])
    assert header == metadata
    assert sorted(header) == sorted(s.address for s in servers)
    # The first is the chosen endpoint: the response is attributed to it.
    assert _set_headers(answers[2].response_headers.response)["x-fleetroute-endpoint"] == header[0]


async def test_the_subset_hint_restricts_the_choice(bed: Any, envoy: Envoy) -> None:
    servers = await bed.pool("small", MODEL, count=3)
    await bed.serve()
    stub = await envoy.stub()
    allowed = [servers[1].address, servers[2].address]
    for _ in range(6):  # round-robin would reach servers[0] within three requests
        answers = await _exchange(stub, {"model": MODEL, "prompt": "x"}, USAGE, subset=allowed)
        header, metadata = _destinations(answers[1])
        assert header == metadata
        assert set(header) == set(allowed)
    assert all(bed.dataplane.core.load.in_flight(s.address) == 0 for s in servers)


@pytest.mark.parametrize("subset", [[], ["127.0.0.1:1"]], ids=["empty", "ineligible"])
async def test_an_empty_or_ineligible_subset_is_answered_503(
    bed: Any, envoy: Envoy, subset: list[str]
) -> None:
    (server,) = await bed.pool("small", MODEL)
    bed.policy("fleet/open", ["small"], failure_mode=config_pb2.FAIL_OPEN)
    await bed.serve()
    stub = await envoy.stub()
    for model in (MODEL, "fleet/open"):  # failing open does not override the hint
        answers = await _exchange(stub, {"model": model, "prompt": "x"}, USAGE, subset=subset)
        assert answers[-1].immediate_response.status.code == 503
    assert bed.dataplane.core.load.in_flight(server.address) == 0


async def test_shedding_answers_429(bed: Any, envoy: Envoy) -> None:
    await bed.pool("small", MODEL)
    await bed.serve()
    stub = await envoy.stub()
    assert envoy.server is not None
    envoy.server.processor.max_in_flight = 1
    held = stub.Process()  # routed, its response not yet begun: holds the only slot
    await held.write(ext.ProcessingRequest(request_headers=_headers({":path": "/v1/completions"})))
    await held.read()
    raw = json.dumps({"model": MODEL, "prompt": "x"}).encode()
    await held.write(ext.ProcessingRequest(request_body=ext.HttpBody(body=raw, end_of_stream=True)))
    first: ext.ProcessingResponse = await held.read()
    assert first.HasField("request_body")
    answers = await _exchange(stub, {"model": MODEL, "prompt": "x"}, USAGE)
    assert answers[-1].immediate_response.status.code == 429
    assert json.loads(answers[-1].immediate_response.body)["error"]["code"] == "overloaded"
    await held.done_writing()
    assert await held.read() is grpc.aio.EOF  # the stream is over
    answers = await _exchange(stub, {"model": MODEL, "prompt": "x"}, USAGE)
    assert answers[1].HasField("request_body")  # the slot came back with the first stream's end


async def test_the_served_endpoint_is_read_back_for_learning(bed: Any, envoy: Envoy) -> None:
    await bed.pool("small", MODEL, count=2)
    await bed.serve()
    stub = await envoy.stub()
    call = stub.Process()
    await call.write(ext.ProcessingRequest(request_headers=_headers({":path": "/v1/completions"})))
    await call.read()
    raw = json.dumps({"model": MODEL, "prompt": "x"}).encode()
    await call.write(ext.ProcessingRequest(request_body=ext.HttpBody(body=raw, end_of_stream=True)))
    primary, fallback = _destinations(await call.read())[0]
    # Envoy's retry went past the primary and ended on the fallback.
    await call.write(
        ext.ProcessingRequest(
            response_headers=_headers({":status": "200", "content-type": "application/json"}),
            metadata_context=_served_metadata(fallback),
        )
    )
    headers_answer: ext.ProcessingResponse = await call.read()
    await call.write(
        ext.ProcessingRequest(response_body=ext.HttpBody(body=USAGE, end_of_stream=True))
    )
    await call.read()
    await call.done_writing()
    added = _set_headers(headers_answer.response_headers.response)
    assert added["x-fleetroute-endpoint"] == fallback
    # The primary's breaker counts the failure; the success is the fallback's.
    assert bed.dataplane.breakers._states[primary].failures == 1
    assert fallback not in bed.dataplane.breakers._states
    assert _endpoint_requests(bed, fallback, "success") == 1
    assert _endpoint_requests(bed, primary, "success") == 0
    assert bed.dataplane.core.load.in_flight(primary) == 0
    assert bed.dataplane.core.load.in_flight(fallback) == 0


def _endpoint_requests(bed: Any, endpoint: str, outcome: str) -> float:
    registry = bed.dataplane.telemetry.registry
    return sum(
        sample.value
        for metric in registry.collect()
        if metric.name == "fleetroute_router_requests"
        for sample in metric.samples
        if sample.name.endswith("_total")
        and sample.labels.get("endpoint") == endpoint
        and sample.labels.get("outcome") == outcome
    )


async def test_upstream_5xx_opens_the_endpoints_breaker(bed: Any, envoy: Envoy) -> None:
    (server,) = await bed.pool("small", MODEL)
    await bed.serve(scrape=False)
    stub = await envoy.stub()
    threshold = bed.dataplane.breakers.failure_threshold
    for _ in range(threshold):
        await _exchange(stub, {"model": MODEL, "prompt": "x"}, b"oops", status="500")
    assert bed.dataplane.breakers._states[server.address].failures == threshold
    assert bed.dataplane.breakers.is_open(server.address)
    answers = await _exchange(stub, {"model": MODEL, "prompt": "x"}, USAGE)
    assert answers[-1].immediate_response.status.code == 503  # the only endpoint is open


async def test_outcome_usage_and_reward_reach_the_request_span(
    bed: Any, envoy: Envoy, exporter: InMemorySpanExporter
) -> None:
    (server,) = await bed.pool("small", MODEL)
    bed.policy("fleet/chat", ["small"])
    enabled = Tracing.from_env({}, exporter=exporter)
    try:
        with tracing.installed(enabled):
            await bed.serve()
        stub = await envoy.stub()
        await _exchange(stub, {"model": "fleet/chat", "prompt": "x"}, USAGE)
        assert enabled.provider is not None
        enabled.provider.force_flush()
    finally:
        enabled.shutdown()
    (span,) = [s for s in exporter.get_finished_spans() if s.kind == SpanKind.SERVER]
    attributes = dict(span.attributes or {})
    assert attributes["fleetroute.endpoint"] == server.address
    assert attributes["fleetroute.outcome"] == "success"
    assert attributes["gen_ai.usage.input_tokens"] == 3
    assert attributes["gen_ai.usage.output_tokens"] == 7
    assert "fleetroute.reward" in attributes


async def test_a_body_above_grpcs_default_4mib_limit_is_routed(bed: Any, envoy: Envoy) -> None:
    (server,) = await bed.pool("small", MODEL)
    await bed.serve()
    stub = await envoy.stub()
    padding = "x" * (6 * 1024 * 1024)
    body = {"model": MODEL, "prompt": "x", "user": padding}
    answers = await _exchange(stub, body, USAGE)
    assert _destinations(answers[1])[0] == [server.address]
    too_big = {"model": MODEL, "prompt": "x", "user": "x" * (8 * 1024 * 1024 + 1)}
    answers = await _exchange(stub, too_big, USAGE)
    assert answers[-1].immediate_response.status.code == 413  # our limit, not gRPC's
