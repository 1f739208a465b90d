"""What is kept per endpoint goes when the endpoint has left the fleet for a grace period."""

from __future__ import annotations

from typing import Any

from fleetroute.v1alpha1 import config_pb2
from fleetroute_router import reward
from fleetroute_router.dataplane import DataPlane
from fleetroute_router.endpoints.plugins.prefix_scorer import PrefixCacheScorer
from fleetroute_router.endpoints.plugins.ttft_scorer import TtftScorer
from fleetroute_router.features import RequestInfo
from fleetroute_router.fleet import Fleet
from fleetroute_router.pruning import EndpointPruner

EIGHT_B = "meta-llama/Llama-3.1-8B-Instruct"
L4_POOL = "llm/llama-8b-l4"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _plugin(dataplane: DataPlane, kind: type[Any]) -> Any:
    assert dataplane.picker is not None
    (found,) = {
        id(p): p
        for profile in dataplane.picker._profiles.values()
        for p in profile.plugins
        if isinstance(p, kind)
    }.values()
    return found


def _series(dataplane: DataPlane, address: str) -> int:
    families = dataplane.telemetry.metrics.requests.collect()
    return sum(1 for f in families for s in f.samples if s.labels.get("endpoint") == address)


def _without(config: config_pb2.RouterConfig, address: str) -> Fleet:
    smaller = config_pb2.RouterConfig()
    smaller.CopyFrom(config)
    for pool in smaller.pools:
        kept = [e for e in pool.endpoints if e.address != address]
        del pool.endpoints[:]
        pool.endpoints.extend(kept)
    return Fleet.from_config(smaller)


def _use_every_endpoint(dataplane: DataPlane) -> set[str]:
    """Serve the 8B pool's endpoints, teach their TTFT, and fail one attempt on each."""
    used = set()
    for _ in range(6):
        decision = dataplane.route_remote(RequestInfo(model=EIGHT_B, prompt="same prefix " * 40))
        dataplane.report_remote(
            decision.id,
            reward.Outcome(success=True, ttft_s=0.1, e2e_s=0.5, prompt_tokens=5),
        )
        dataplane.breakers.failure(decision.endpoint)
        used.add(decision.endpoint)
    return used


def test_state_of_a_departed_endpoint_is_forgotten_after_the_grace(
    example_config: config_pb2.RouterConfig,
) -> None:
    clock = Clock()
    dataplane = DataPlane(
        Fleet.from_config(example_config), scrape=False, clock=clock, prune_grace_s=60
    )
    used = _use_every_endpoint(dataplane)
    gone = sorted(used)[0]
    ttft, prefix = _plugin(dataplane, TtftScorer), _plugin(dataplane, PrefixCacheScorer)
    assert gone in ttft._unit
    assert any(gone in holders for holders in prefix._index.values())
    assert gone in dataplane.breakers._states
    assert _series(dataplane, gone) > 0
    children = dataplane.telemetry.metrics.children
    assert any(gone in values for _, values in children._children)
    dataplane.set_fleet(_without(example_config, gone))
    clock.now = 59  # within the grace: a pod coming back keeps what was learned
    dataplane.route(RequestInfo(model=EIGHT_B, prompt="x"))
    assert gone in ttft._unit
    assert gone in dataplane.pruner.leaving
    clock.now = 60 + dataplane.pruner.every_s  # past the grace, by at most one sweep period
    dataplane.route(RequestInfo(model=EIGHT_B, prompt="x"))
    assert gone not in ttft._unit
    assert not any(gone in holders for holders in prefix._index.values())
    assert gone not in dataplane.breakers._states
    assert _series(dataplane, gone) == 0
    assert not any(gone in values for _, values in children._children)  # nor its cached children
    for kept in used - {gone}:  # the others keep theirs
        assert kept in ttft._unit
        assert _series(dataplane, kept) > 0
    assert dataplane.pruner.forgotten == 1


def test_an_endpoint_back_within_the_grace_is_not_forgotten() -> None:
    clock, forgotten = Clock(), []
    pruner = EndpointPruner([forgotten.extend], grace_s=10, every_s=1, clock=clock)
    pruner.set_endpoints({"a:1", "b:1"})
    pruner.set_endpoints({"a:1"})
    clock.now = 5
    pruner.set_endpoints({"a:1", "b:1"})  # back
    pruner.set_endpoints({"b:1"})  # a leaves at 5
    clock.now = 14
    assert pruner.sweep() == []
    clock.now = 15
    assert pruner.sweep() == ["a:1"]
    assert forgotten == ["a:1"]
    clock.now = 40
    assert pruner.sweep() == []  # forgotten once
    assert not pruner.leaving
