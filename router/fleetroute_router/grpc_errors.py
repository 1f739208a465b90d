"""One interceptor that maps the routing core's errors to gRPC status codes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from fleetroute_router import errors

STATUS_CODES: dict[type[errors.RoutingError], grpc.StatusCode] = {
    errors.InvalidRequest: grpc.StatusCode.INVALID_ARGUMENT,
    errors.UnknownModel: grpc.StatusCode.NOT_FOUND,
    errors.UnknownDecision: grpc.StatusCode.NOT_FOUND,
    errors.ConflictingFeedback: grpc.StatusCode.ALREADY_EXISTS,
    errors.Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    errors.NoCapacity: grpc.StatusCode.UNAVAILABLE,
    errors.Overloaded: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.UpstreamFailed: grpc.StatusCode.UNAVAILABLE,
}


def status_code(error: errors.RoutingError) -> grpc.StatusCode:
    """The gRPC status of a domain error (its nearest mapped base class)."""
    for kind in type(error).__mro__:
        if kind in STATUS_CODES:
            return STATUS_CODES[kind]
    return grpc.StatusCode.FAILED_PRECONDITION


class DomainErrors(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    """Turns RoutingError raised by a unary handler into an aborted call with its status."""

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        handler = await continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        inner = handler.unary_unary

        async def mapped(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            try:
                return await inner(request, context)  # type: ignore[arg-type]
            except errors.RoutingError as error:
                await context.abort(status_code(error), str(error))

        return grpc.unary_unary_rpc_method_handler(
            mapped,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
