"""Who may call the Router service's control rpcs: a bearer token, or a verified client cert."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from fleetroute.v1alpha1 import router_pb2
from fleetroute_router import errors
from fleetroute_router.auth import TokenFile

SERVICE = router_pb2.DESCRIPTOR.services_by_name["Router"].full_name
# The data path stays open: Route is what every client calls (bounded by the unreported-route
# limits instead), and SubmitFeedback has its own token (--feedback-token-file), like
# POST /v1/feedback. Every other rpc of the service, today and added later, is a control rpc.
OPEN_METHODS = frozenset({f"/{SERVICE}/Route", f"/{SERVICE}/SubmitFeedback"})
Context = grpc.aio.ServicerContext[Any, Any]


def authorization(context: Context) -> str | None:
    """The call's `authorization` metadata, if any."""
    for key, value in context.invocation_metadata() or ():
        if key == "authorization":
            return value if isinstance(value, str) else value.decode()
    return None


def verified_client(context: Context) -> bool:
    """The peer presented a client certificate that the server verified (mTLS: the server
    requires and verifies client certificates, so a TLS peer with an identity has one)."""
    security = context.auth_context().get("transport_security_type") or []
    return b"ssl" in security and bool(context.peer_identities())


class ControlGuard:
    """Checks a control call: with a token, `Bearer <token>` (or, when mTLS is on, a verified
    client certificate) is required; with neither configured, control calls are open."""

    def __init__(self, token: TokenFile | None = None, *, client_certs: bool = False) -> None:
        self.token, self.client_certs = token, client_certs

    @property
    def enabled(self) -> bool:
        return self.token is not None or self.client_certs

    def check(self, context: Context) -> None:
        """Unauthenticated unless the call may use a control rpc."""
        if not self.enabled:
            return
        if self.client_certs and verified_client(context):
            return
        if self.token is None:
            raise errors.Unauthenticated("this call needs a verified client certificate")
        self.token.check(authorization(context))


class ControlAuth(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    """Refuses the Router service's control rpcs (all but OPEN_METHODS) with UNAUTHENTICATED
    unless the guard accepts the call."""

    def __init__(
        self,
        guard: ControlGuard,
        on_refused: Callable[[errors.Unauthenticated], None] | None = None,
    ) -> None:
        self.guard, self._on_refused = guard, on_refused

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if (
            not self.guard.enabled
            or handler is None
            or not method.startswith(f"/{SERVICE}/")
            or method in OPEN_METHODS
        ):
            return handler
        if handler.unary_unary is None:  # every Router rpc is unary; refuse anything else
            raise RuntimeError(f"{method}: only unary control rpcs can be guarded")
        inner = handler.unary_unary
        guard, refused = self.guard, self._on_refused

        async def checked(request: Any, context: Context) -> Any:
            try:
                guard.check(context)
            except errors.Unauthenticated as error:
                if refused is not None:
                    refused(error)
                await context.abort(grpc.StatusCode.UNAUTHENTICATED, str(error))
            return await inner(request, context)  # type: ignore[arg-type]

        return grpc.unary_unary_rpc_method_handler(
            checked,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
