"""Fuzzed request bodies to the proxy and to ext_proc: a proper 4xx, or served; never a 5xx.

The router runs in a background event loop in front of a stub upstream that answers every
request at once, so a 5xx can only come from the router itself.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import threading
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

import grpc
import pytest
from aiohttp import web
from envoy.config.core.v3 import base_pb2
from envoy.extensions.filters.http.ext_proc.v3 import processing_mode_pb2
from envoy.service.ext_proc.v3 import external_processor_pb2 as ext
from envoy.service.ext_proc.v3 import external_processor_pb2_grpc as ext_grpc
from hypothesis import event, given, settings
from hypothesis import strategies as st

from fleetroute.v1alpha1 import config_pb2
from fleetroute_router import openai_api
from fleetroute_router.dataplane import DataPlane
from fleetroute_router.extproc.server import ExtProcServer
from fleetroute_router.fleet import Fleet
from fleetroute_router.proxy.app import ProxyServer
from fleetroute_router.proxy.upstream import Timeouts
from tests.fuzzing import SCALARS, examples, json_values

MODEL = "test/small-8B"
ALIAS = "fleet/chat"
PATHS = (openai_api.CHAT_PATH, openai_api.COMPLETIONS_PATH)
T = TypeVar("T")


async def _stub_upstream(request: web.Request) -> web.StreamResponse:
    """A model server that answers anything parseable at once (JSON, or SSE when asked)."""
    try:
        body = json.loads(await request.read())
    except ValueError:
        return web.json_response({"error": {"message": "bad json"}}, status=400)
    usage = {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
    if isinstance(body, dict) and body.get("stream"):
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(b'data: {"choices":[{"delta":{"content":"ok"}}]}\n\n')
        await response.write(b"data: " + json.dumps({"usage": usage}).encode() + b"\n\n")
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response
    return web.json_response(
        {
            "object": "chat.completion",
            "model": MODEL,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}}],
            "usage": usage,
        }
    )


class Router:
    """Stub upstream, data plane, proxy and ext_proc in an event loop of their own thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self.proxy: ProxyServer | None = None
        self.extproc: ExtProcServer | None = None

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=60)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", _stub_upstream)
        self._upstream = web.AppRunner(app, access_log=None)
        await self._upstream.setup()
        site = web.TCPSite(self._upstream, "127.0.0.1", 0)
        await site.start()
        port = self._upstream.addresses[0][1]
        config = config_pb2.RouterConfig()
        pool = config.pools.add(
            name="small",
            model=MODEL,
            engine=config_pb2.ENGINE_VLLM,
            role=config_pb2.ROLE_UNIFIED,
            gpus_per_replica=1,
            gpu=config_pb2.GpuFigures(product="NVIDIA-L4", idle_watts=16, max_watts=72),
        )
        pool.endpoints.add(address=f"127.0.0.1:{port}", ready=True)
        config.policies.add(
            name=ALIAS,
            model_alias=ALIAS,
            candidates=["small"],
            objective=config_pb2.Objective(quality=1, latency=1),
            algorithm=config_pb2.Algorithm(name="round-robin"),
        )
        self.dataplane = DataPlane(Fleet.from_config(config), scrape=False)
        self.dataplane.start()
        self.proxy = ProxyServer(
            self.dataplane,
            "127.0.0.1:0",
            timeouts=Timeouts(connect_s=2.0, first_byte_s=10.0, idle_s=10.0),
        )
        await self.proxy.start()
        self.extproc = ExtProcServer(self.dataplane, "127.0.0.1:0")
        await self.extproc.start()

    async def stop(self) -> None:
        if self.extproc is not None:
            await self.extproc.stop(0)
        if self.proxy is not None:
            await self.proxy.stop()
        await self.dataplane.close()
        await self._upstream.cleanup()

    def close(self) -> None:
        try:
            self.run(self.stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=10)
            self.loop.close()


@pytest.fixture(scope="module")
def router() -> Iterator[Router]:
    instance = Router()
    try:
        instance.run(instance.start())
        yield instance
    finally:
        instance.close()


def post(router: Router, path: str, raw: bytes) -> tuple[int, bytes]:
    assert router.proxy is not None
    connection = http.client.HTTPConnection("127.0.0.1", router.proxy.port, timeout=30)
    try:
        connection.request("POST", path, body=raw, headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


# Bodies: near-valid requests with fuzzed fields, arbitrary JSON, and bytes that are not JSON.
MODELS = st.sampled_from([MODEL, ALIAS, "", "no/such-model"]) | SCALARS | json_values(4)
CONTENT = (
    st.text(max_size=60)
    | st.lists(
        st.fixed_dictionaries({"type": st.just("text"), "text": json_values(3)}) | json_values(3),
        max_size=3,
    )
    | json_values(4)
)
MESSAGE = st.fixed_dictionaries(
    {"role": st.sampled_from(["user", "system", "assistant"]) | SCALARS, "content": CONTENT}
) | json_values(4)
OPTIONAL = st.fixed_dictionaries(
    {},
    optional={
        "max_tokens": st.integers(min_value=-(2**70), max_value=2**70) | SCALARS,
        "max_completion_tokens": st.integers(min_value=-(2**70), max_value=2**70) | SCALARS,
        "stream": SCALARS,
        "stream_options": json_values(3),
        "priority": st.integers(min_value=-(2**70), max_value=2**70) | SCALARS,
        "prompt": st.text(max_size=60) | json_values(4),
        "temperature": SCALARS,
    },
)
NEAR_VALID = st.builds(
    lambda model, messages, extra: {"model": model, "messages": messages, **extra},
    MODELS,
    st.lists(MESSAGE, max_size=4) | json_values(3),
    OPTIONAL,
).map(lambda body: json.dumps(body).encode())
DEEP = st.integers(min_value=1, max_value=200_000).map(
    lambda depth: (
        b'{"model": "' + MODEL.encode() + b'", "prompt": ' + b"[" * depth + b"]" * depth + b"}"
    )
)
NON_JSON = (
    st.binary(max_size=200)
    | st.sampled_from(
        [b"", b"null", b"NaN", b"[1, 2]", b'"text"', b"{", b"\xff\xfe{}", b"\xef\xbb\xbf{}"]
    )
    | DEEP
)
# Well-formed for both paths (messages and prompt), with every optional field fuzzed: these get
# past validation, into routing, the features and the upstream call.
SHAPED = st.builds(
    lambda model, messages, prompt, extra: {
        "model": model,
        "messages": messages,
        "prompt": prompt,
        **extra,
    },
    st.sampled_from([MODEL, ALIAS]),
    st.lists(
        st.fixed_dictionaries({"role": st.sampled_from(["user", "system"]), "content": CONTENT}),
        min_size=1,
        max_size=4,
    ),
    st.text(max_size=200) | st.lists(st.text(max_size=40), max_size=3),
    OPTIONAL,
).map(lambda body: json.dumps(body).encode())
BODIES = st.one_of(
    SHAPED, SHAPED, NEAR_VALID, json_values().map(lambda v: json.dumps(v).encode()), NON_JSON
)


def _is_openai_error(raw: bytes) -> bool:
    try:
        document = json.loads(raw)
    except ValueError:
        return False
    error = document.get("error") if isinstance(document, dict) else None
    return isinstance(error, dict) and bool(error.get("message"))


@settings(max_examples=examples(300))
@given(path=st.sampled_from(PATHS), raw=BODIES)
def test_proxy_answers_every_body_with_a_4xx_or_serves_it(
    router: Router, path: str, raw: bytes
) -> None:
    status, answer = post(router, path, raw)
    event(f"HTTP {status}")
    assert status < 500, (status, answer[:300])
    if status >= 400:
        assert 400 <= status < 500
        assert _is_openai_error(answer), answer[:300]
    else:
        assert status == 200


def _header_map(pairs: dict[str, str]) -> base_pb2.HeaderMap:
    return base_pb2.HeaderMap(
        headers=[base_pb2.HeaderValue(key=k, raw_value=v.encode()) for k, v in pairs.items()]
    )


def _extproc_answer(router: Router, raw: bytes, duplex: bool) -> ext.ProcessingResponse:
    """The processor's answer to a request body, as Envoy sends it (one chunk, end of stream)."""
    assert router.extproc is not None
    mode = (
        processing_mode_pb2.ProcessingMode.FULL_DUPLEX_STREAMED
        if duplex
        else processing_mode_pb2.ProcessingMode.BUFFERED
    )
    requests = [
        ext.ProcessingRequest(
            request_headers=ext.HttpHeaders(
                headers=_header_map({":path": openai_api.CHAT_PATH, ":method": "POST"})
            ),
            protocol_config=ext.ProtocolConfiguration(request_body_mode=mode),  # type: ignore[arg-type]
        ),
        ext.ProcessingRequest(request_body=ext.HttpBody(body=raw, end_of_stream=True)),
    ]
    with grpc.insecure_channel(f"127.0.0.1:{router.extproc.port}") as channel:
        stub = ext_grpc.ExternalProcessorStub(channel)
        answers = list(stub.Process(iter(requests), timeout=30))
    # The answer to the body is the last one (BUFFERED answers the headers first).
    return answers[-1]


@settings(max_examples=examples(300))
@given(raw=BODIES, duplex=st.booleans())
def test_extproc_answers_every_body_with_a_4xx_or_routes_it(
    router: Router, raw: bytes, duplex: bool
) -> None:
    try:
        answer = _extproc_answer(router, raw, duplex)
    except grpc.RpcError as error:  # Envoy would turn a failed stream into a 500
        pytest.fail(f"ext_proc stream failed: {error.code()} {error.details()}")
    if answer.HasField("immediate_response"):
        immediate = answer.immediate_response
        event(f"immediate {immediate.status.code}")
        assert 400 <= immediate.status.code < 500, (immediate.status.code, immediate.body[:300])
        assert _is_openai_error(immediate.body), immediate.body[:300]
    else:
        event("routed")
        assert answer.HasField("request_body"), answer
        common = answer.request_body.response
        if duplex:  # the destination went with the deferred headers answer
            assert common.body_mutation.HasField("streamed_response")
        else:
            headers = {h.header.key for h in common.header_mutation.set_headers}
            assert "x-gateway-destination-endpoint" in headers


def test_unreadable_bodies_are_refused_not_crashed(router: Router) -> None:
    """Cases the fuzzer found, kept as plain examples."""
    deep = (
        b'{"model": "' + MODEL.encode() + b'", "prompt": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    )
    for raw in (deep, b"\xff\xfe{}"):
        status, answer = post(router, openai_api.COMPLETIONS_PATH, raw)
        assert status == 400, (status, answer[:200])
        immediate = _extproc_answer(router, raw, duplex=False).immediate_response
        assert immediate.status.code == 400
