"""OpenTelemetry's own instrumentations of the router's transports, on the router's tracer
provider (never the global one): aiohttp server spans for the proxy's API requests, aiohttp
client spans for upstream calls to model servers, gRPC server spans for the Router API.

Each helper returns nothing to install while tracing is off, so no span objects are made.
"""

from __future__ import annotations

import contextvars
import functools
import warnings
from collections.abc import Collection
from typing import TYPE_CHECKING, Any, Final, TypeAlias

import aiohttp
import grpc
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from opentelemetry.instrumentation.aiohttp_client import create_trace_config
from opentelemetry.instrumentation.aiohttp_server import (
    AioHttpServerInstrumentor,
    create_aiohttp_middleware,
)
from opentelemetry.instrumentation.grpc import aio_server_interceptor

from fleetroute_router.telemetry.tracing import Tracing

# Set while a handler runs inside the aiohttp server instrumentation's span.
_IN_HTTP_SERVER_SPAN: Final[contextvars.ContextVar[bool]] = contextvars.ContextVar(
    "fleetroute_in_http_server_span", default=False
)
if TYPE_CHECKING:  # generic only in the type stubs
    Interceptor: TypeAlias = grpc.aio.ServerInterceptor[Any, Any]


def aiohttp_middlewares(tracing: Tracing, paths: Collection[str]) -> list[Middleware]:
    """A SERVER span per request to one of `paths` (the API, not /metrics or /health scrapes),
    continuing the caller's W3C trace context."""
    if tracing.provider is None:
        return []
    _aiohttp_server_settings()
    traced: Middleware = create_aiohttp_middleware(tracer_provider=tracing.provider)
    wanted = frozenset(paths)

    @web.middleware
    async def api_requests(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path not in wanted:
            return await handler(request)

        async def within_span(request: web.Request) -> web.StreamResponse:
            token = _IN_HTTP_SERVER_SPAN.set(True)
            try:
                return await handler(request)
            finally:
                _IN_HTTP_SERVER_SPAN.reset(token)

        return await traced(request, within_span)

    return [api_requests]


@functools.cache
def _aiohttp_server_settings() -> None:
    """Load the aiohttp server instrumentation's settings (excluded URLs, semantic-convention
    mode, its no-op meters), which only its instrumentor sets: instrument() also swaps
    aiohttp's Application class process-wide, which uninstrument() puts back at once, so only
    our middleware (on our provider) traces, and only the proxy."""
    instrumentor = AioHttpServerInstrumentor()
    with warnings.catch_warnings():
        # its Application subclass, which aiohttp discourages; it is never used here
        warnings.simplefilter("ignore", DeprecationWarning)
        instrumentor.instrument()
    instrumentor.uninstrument()


def aiohttp_trace_configs(tracing: Tracing) -> list[aiohttp.TraceConfig]:
    """A CLIENT span per upstream HTTP request, whose context goes out as `traceparent`."""
    if tracing.provider is None:
        return []
    return [create_trace_config(tracer_provider=tracing.provider)]


def grpc_server_interceptors(tracing: Tracing) -> list[Interceptor]:
    """A SERVER span per gRPC call, continuing the caller's `traceparent` metadata."""
    if tracing.provider is None:
        return []
    interceptor: Interceptor = aio_server_interceptor(  # type: ignore[no-untyped-call]
        tracer_provider=tracing.provider
    )
    return [interceptor]


def in_http_server_span() -> bool:
    """Whether the current span is the aiohttp server instrumentation's span of the request
    being handled (sampled or not): the recorder then annotates it instead of starting its
    own, so a request has one SERVER span and one sampling decision."""
    return _IN_HTTP_SERVER_SPAN.get()
