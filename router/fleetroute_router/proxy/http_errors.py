"""The one place HTTP maps domain errors (and aiohttp's own) to OpenAI-style error bodies."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from fleetroute_router import errors
from fleetroute_router.openai_api import error_body

# error class -> (HTTP status, OpenAI error type, code)
STATUSES: dict[type[errors.RoutingError], tuple[int, str, str]] = {
    errors.InvalidRequest: (400, "invalid_request_error", "invalid_request"),
    errors.UnknownModel: (404, "invalid_request_error", "model_not_found"),
    errors.UnknownDecision: (404, "invalid_request_error", "decision_not_found"),
    errors.InvalidFeedback: (422, "invalid_request_error", "invalid_feedback"),
    errors.ConflictingFeedback: (409, "invalid_request_error", "conflicting_feedback"),
    errors.Unauthenticated: (401, "authentication_error", "invalid_token"),
    errors.NoCapacity: (503, "server_error", "no_capacity"),
    errors.Overloaded: (429, "rate_limit_error", "overloaded"),
    errors.UpstreamFailed: (502, "server_error", "upstream_failed"),
}
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def status_of(error: errors.RoutingError) -> tuple[int, str, str]:
    for kind in type(error).__mro__:
        if kind in STATUSES:
            return STATUSES[kind]
    return 400, "invalid_request_error", "invalid_request"


def response(error: errors.RoutingError) -> web.Response:
    status, kind, code = status_of(error)
    return web.json_response(error_body(str(error), kind, code), status=status)


@web.middleware
async def openai_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Domain errors and aiohttp's HTTP errors (404 path, 405, 413 body too large) as JSON."""
    try:
        return await handler(request)
    except errors.RoutingError as error:
        return response(error)
    except web.HTTPException as error:
        if error.status < 400:
            raise
        kind = "invalid_request_error" if error.status < 500 else "server_error"
        return web.json_response(
            error_body(error.text or error.reason, kind, str(error.status)), status=error.status
        )
