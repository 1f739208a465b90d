"""Domain errors of the routing core; each transport maps them to its own status codes."""

from __future__ import annotations


class RoutingError(Exception):
    """Base of errors a caller can act on."""


class InvalidRequest(RoutingError):
    """The request is malformed (gRPC INVALID_ARGUMENT, HTTP 400)."""


class UnknownModel(RoutingError):
    """No policy alias and no pool matches the requested model (NOT_FOUND, HTTP 404)."""


class UnknownDecision(RoutingError):
    """Feedback for a decision the router does not hold (never made, or expired)."""


class FeedbackExpired(UnknownDecision):
    """Feedback after the decision's feedback window: not learned (NOT_FOUND, HTTP 404)."""


class InvalidFeedback(InvalidRequest):
    """A feedback body that cannot be learned from (INVALID_ARGUMENT, HTTP 422)."""


class ConflictingFeedback(RoutingError):
    """A second, different score for a decision from the same source (ALREADY_EXISTS, 409)."""


class Unauthenticated(RoutingError):
    """A control call without the token it needs (UNAUTHENTICATED, HTTP 401)."""


class NoCapacity(RoutingError):
    """No candidate has a ready endpoint and the policy fails closed (UNAVAILABLE, HTTP 503)."""


class Overloaded(RoutingError):
    """The router's bounded queue is full (RESOURCE_EXHAUSTED, HTTP 429)."""


class UpstreamFailed(RoutingError):
    """Every endpoint tried failed before answering (UNAVAILABLE, HTTP 502)."""
