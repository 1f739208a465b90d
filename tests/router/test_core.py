"""The routing core: candidates, fail-open/closed, P/D threshold, load; bounded expiring maps."""

from __future__ import annotations

import pytest

from fleetroute.v1alpha1 import config_pb2
from fleetroute_router import errors, reward
from fleetroute_router.core import RoutingCore
from fleetroute_router.dataplane import DataPlane
from fleetroute_router.features import RequestInfo
from fleetroute_router.fleet import Fleet
from fleetroute_router.unreported import Limits


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _unready(config: config_pb2.RouterConfig) -> None:
    for pool in config.pools:
        for endpoint in pool.endpoints:
            endpoint.ready = False


def test_fail_closed_rejects_when_nothing_is_ready(example_config: config_pb2.RouterConfig) -> None:
    _unready(example_config)
    with pytest.raises(errors.NoCapacity, match="no ready endpoint serves 'fleet/chat'"):
        RoutingCore(Fleet.from_config(example_config)).route(
            RequestInfo(model="fleet/chat", prompt="hi")
        )


def test_fail_open_passes_through_to_an_unready_endpoint(
    example_config: config_pb2.RouterConfig,
) -> None:
    _unready(example_config)
    example_config.policies[0].failure_mode = config_pb2.FAIL_OPEN
    decision = RoutingCore(Fleet.from_config(example_config)).route(
        RequestInfo(model="fleet/chat", prompt="hi")
    )
    assert decision.endpoint.startswith("127.0.0.1:")


def test_unready_pools_are_not_candidates(example_config: config_pb2.RouterConfig) -> None:
    for pool in example_config.pools:
        if pool.name != "llm/qwen-14b-a10g":
            for endpoint in pool.endpoints:
                endpoint.ready = False
    core = RoutingCore(Fleet.from_config(example_config))
    pools = {core.route(RequestInfo(model="fleet/chat", prompt="hi")).pool for _ in range(20)}
    assert pools == {"llm/qwen-14b-a10g"}


def test_short_prompts_stay_on_the_decode_pool(core: RoutingCore) -> None:
    decision = core.route(RequestInfo(model="meta-llama/Llama-3.1-70B-Instruct", prompt="short"))
    assert decision.pool == "llm/llama-70b-decode"
    assert (decision.prefill_pool, decision.prefill_endpoint) == ("", "")


def test_requests_spread_over_a_pools_endpoints(core: RoutingCore) -> None:
    endpoints = [
        core.route(RequestInfo(model="meta-llama/Llama-3.1-8B-Instruct", prompt="x")).endpoint
        for _ in range(6)
    ]
    assert sorted(endpoints) == sorted(["127.0.0.1:8201", "127.0.0.1:8202", "127.0.0.1:8203"] * 2)


def test_released_decisions_free_their_endpoint(core: RoutingCore) -> None:
    decision = core.route(RequestInfo(model="meta-llama/Llama-3.1-8B-Instruct", prompt="x"))
    assert core.load.in_flight(decision.endpoint) == 1
    core.release(decision)
    assert core.load.in_flight(decision.endpoint) == 0


def test_unreported_grpc_routes_expire_and_free_their_endpoint(
    example_config: config_pb2.RouterConfig,
) -> None:
    clock = Clock()
    dataplane = DataPlane(
        Fleet.from_config(example_config),
        scrape=False,
        unreported=Limits(ttl_s=10, floor_s=1),
        clock=clock,
    )
    old = dataplane.route_remote(RequestInfo(model="Qwen/Qwen2.5-14B-Instruct", prompt="x"))
    assert dataplane.load.in_flight(old.endpoint) == 1
    clock.now = 11
    dataplane.route_remote(RequestInfo(model="meta-llama/Llama-3.1-8B-Instruct", prompt="y"))
    assert dataplane.load.in_flight(old.endpoint) == 0
    with pytest.raises(errors.UnknownDecision, match="unknown, reported or expired"):
        dataplane.report_remote(old.id, reward.Outcome(success=True))
    dropped = dataplane.telemetry.metrics.pending_dropped.labels("in_flight", "expired")
    assert dropped._value.get() == 1


def test_reload_keeps_a_policy_whose_algorithm_is_unchanged(
    example_config: config_pb2.RouterConfig,
) -> None:
    core = RoutingCore(Fleet.from_config(example_config))
    before = core._policies["llm/chat"].selector
    example_config.pools[2].endpoints.add(address="127.0.0.1:8204", ready=True)
    core.set_fleet(Fleet.from_config(example_config))
    assert core._policies["llm/chat"].selector is before
    example_config.policies[0].algorithm.CopyFrom(config_pb2.Algorithm(name="round-robin"))
    core.set_fleet(Fleet.from_config(example_config))
    assert core._policies["llm/chat"].selector is not before


def test_pools_serving_the_same_model_share_its_requests(
    example_config: config_pb2.RouterConfig,
) -> None:
    twin = example_config.pools.add()
    twin.CopyFrom(next(p for p in example_config.pools if p.name == "llm/qwen-14b-a10g"))
    twin.name = "llm/qwen-14b-a10g-2"
    twin.endpoints[0].address = "127.0.0.1:8302"
    core = RoutingCore(Fleet.from_config(example_config))
    pools = []
    for _ in range(4):
        decision = core.route(RequestInfo(model="Qwen/Qwen2.5-14B-Instruct", prompt="x"))
        core.release(decision)
        pools.append(decision.pool)
    assert sorted(pools) == ["llm/qwen-14b-a10g"] * 2 + ["llm/qwen-14b-a10g-2"] * 2


def test_a_pools_in_flight_count_follows_route_retry_and_release(core: RoutingCore) -> None:
    request = RequestInfo(model="meta-llama/Llama-3.1-8B-Instruct", prompt="x")
    decisions = [core.route(request) for _ in range(3)]
    pool = core.fleet.pools[decisions[0].pool]
    assert core.load.pool_in_flight(pool) == 3
    moved = core.retry(decisions[0], request, failed={decisions[0].endpoint})
    assert moved is not None
    assert moved.endpoint != decisions[0].endpoint
    assert core.load.pool_in_flight(pool) == 3  # moved within the pool: still three
    for decision in [moved, *decisions[1:]]:
        core.release(decision)
    assert core.load.pool_in_flight(pool) == 0
    assert core.load.by_pool == {}
