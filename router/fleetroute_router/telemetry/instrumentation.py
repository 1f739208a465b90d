"""OpenTelemetry's own instrumentations of the router's transports, on the router's tracer
provider (never the global one): aiohttp server spans for the proxy's API requests, aiohttp
client spans for upstream calls to model servers, gRPC server spans for the Router API.

Each helper returns nothing to install while tracing is off, so no span objects are made.
"""

from __future__ import annotations

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
from opentelemetry.trace import Span

from fleetroute_router.telemetry.tracing import Tracing

AIOHTTP_SERVER_SCOPE: Final = "opentelemetry.instrumentation.aiohttp_server"
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
        return await traced(request, handler)

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


def is_http_server_span(span: Span) -> bool:
    """Whether `span` is a SERVER span the aiohttp server instrumentation started (the
    request span the recorder then annotates instead of starting its own)."""
    scope: Any = getattr(span, "instrumentation_scope", None)
    return span.is_recording() and getattr(scope, "name", None) == AIOHTTP_SERVER_SCOPE
