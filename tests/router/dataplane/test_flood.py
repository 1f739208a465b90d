"""A flood of ext_proc streams: beyond the in-flight bound they are answered 429, beyond the
stream bound refused RESOURCE_EXHAUSTED, and the router keeps answering everything else."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import grpc
from envoy.config.core.v3 import base_pb2
from envoy.service.ext_proc.v3 import external_processor_pb2 as ext
from envoy.service.ext_proc.v3 import external_processor_pb2_grpc as ext_grpc

from fleetroute.v1alpha1 import router_pb2, router_pb2_grpc
from fleetroute_router.extproc.server import ExtProcServer
from fleetroute_router.server import RouterServer

MODEL = "test/flood-8B"
IN_FLIGHT, STREAMS, FLOOD = 8, 24, 40


def _headers() -> ext.HttpHeaders:
    pairs = {":path": "/v1/completions", ":method": "POST"}
    return ext.HttpHeaders(
        headers=base_pb2.HeaderMap(
            headers=[base_pb2.HeaderValue(key=k, raw_value=v.encode()) for k, v in pairs.items()]
        )
    )


async def _open(stub: ext_grpc.ExternalProcessorStub) -> tuple[Any, str]:
    """One request's stream, left open after routing: (the call, how it was answered)."""
    call = stub.Process()
    body = json.dumps({"model": MODEL, "prompt": "x", "max_tokens": 1}).encode()
    try:
        await call.write(ext.ProcessingRequest(request_headers=_headers()))
        await call.read()
        await call.write(
            ext.ProcessingRequest(request_body=ext.HttpBody(body=body, end_of_stream=True))
        )
        answer = await call.read()
    except grpc.aio.AioRpcError as error:
        return call, error.code().name
    if answer is grpc.aio.EOF:
        return call, (await call.code()).name
    if answer.HasField("immediate_response"):
        return call, str(answer.immediate_response.status.code)
    return call, "routed" if answer.HasField("request_body") else "other"


async def test_a_flood_is_shed_with_the_right_status_and_the_router_stays_responsive(
    bed: Any,
) -> None:
    await bed.pool("small", MODEL, count=2)
    proxy = await bed.serve()
    envoy = ExtProcServer(
        bed.dataplane, "127.0.0.1:0", max_in_flight=IN_FLIGHT, max_streams=STREAMS
    )
    await envoy.start()
    api = RouterServer(bed.dataplane, "127.0.0.1:0")
    await api.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{envoy.port}")
    try:
        stub = ext_grpc.ExternalProcessorStub(channel)
        held = [await _open(stub) for _ in range(FLOOD)]
        outcomes = [outcome for _, outcome in held]
        assert outcomes.count("routed") == IN_FLIGHT
        assert outcomes.count("429") == STREAMS - IN_FLIGHT
        assert outcomes.count("RESOURCE_EXHAUSTED") == FLOOD - STREAMS
        assert envoy.processor.in_flight == IN_FLIGHT
        overloaded = bed.dataplane.telemetry.metrics.rejected.labels("overloaded")
        assert overloaded._value.get() == STREAMS - IN_FLIGHT
        # While flooded: the gRPC API routes and the proxy serves.
        async with grpc.aio.insecure_channel(f"127.0.0.1:{api.port}") as api_channel:
            decision = await router_pb2_grpc.RouterStub(api_channel).Route(
                router_pb2.RouteRequest(model=MODEL, prompt="still there?"), timeout=10
            )
            assert decision.endpoint
        body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}
        async with aiohttp.ClientSession() as session:
            url = f"http://{proxy.address}/v1/chat/completions"
            async with session.post(url, json=body) as response:
                assert response.status == 200
        # The flood ends: its slots come back and Envoy's next request is routed.
        for call, _ in held:
            call.cancel()
        async with asyncio.timeout(10):
            while envoy.processor.in_flight:  # noqa: ASYNC110 (server-side state, no event)
                await asyncio.sleep(0.01)
        _, outcome = await _open(stub)
        assert outcome == "routed"
    finally:
        await channel.close()
        await api.drain(0)
        await envoy.stop(0)
