"""Load signals plugins derive from a candidate, falling back to the router's own counts."""

from __future__ import annotations

from fleetroute_router.endpoints.interfaces import Candidate

# How much a running sequence delays a new request's first token, relative to a queued one.
RUNNING_WEIGHT = 0.25


def queue_depth(candidate: Candidate) -> float:
    """Waiting requests: scraped, plus requests this router sent that no scrape saw yet."""
    metrics = candidate.metrics
    if metrics is None:
        return float(candidate.in_flight)
    unseen = max(0.0, candidate.in_flight - metrics.running - metrics.waiting)
    return metrics.waiting + unseen


def load(candidate: Candidate) -> float:
    """Queue depth plus running sequences weighted by RUNNING_WEIGHT."""
    running = candidate.metrics.running if candidate.metrics is not None else 0.0
    return queue_depth(candidate) + RUNNING_WEIGHT * running
