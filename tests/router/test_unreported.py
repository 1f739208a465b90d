"""gRPC Routes nobody Reports: a short hold from the policy's SLO, a per-client and a total
limit (RESOURCE_EXHAUSTED beyond), so a flood of them cannot steer traffic off an endpoint."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from google.protobuf import duration_pb2

from fleetroute.v1alpha1 import config_pb2, router_pb2, router_pb2_grpc
from fleetroute_router import errors, reward
from fleetroute_router.dataplane import DataPlane
from fleetroute_router.features import RequestInfo
from fleetroute_router.fleet import Fleet
from fleetroute_router.server import RouterServer
from fleetroute_router.unreported import Limits, Unreported, peer_host

EIGHT_B = "meta-llama/Llama-3.1-8B-Instruct"
ATTACKER, CLIENT = "ipv4:10.0.0.66", "ipv4:10.0.0.7"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _policy(ttft_ms: int, tpot_ms: int) -> config_pb2.Policy:
    policy = config_pb2.Policy(name="p")
    policy.slo.ttft.CopyFrom(duration_pb2.Duration(nanos=ttft_ms * 1_000_000))
    policy.slo.tpot.CopyFrom(duration_pb2.Duration(nanos=tpot_ms * 1_000_000))
    return policy


def test_the_hold_follows_the_slo_within_floor_and_ceiling() -> None:
    limits = Limits(ttl_s=30, floor_s=2, slo_factor=2)
    assert limits.ttl_for(_policy(500, 50), max_tokens=100) == pytest.approx(2 * (0.5 + 5.0))
    assert limits.ttl_for(_policy(500, 50)) == pytest.approx(2 * (0.5 + 0.05 * 256))
    assert limits.ttl_for(_policy(10, 1), max_tokens=10) == 2  # the floor
    assert limits.ttl_for(_policy(900, 500), max_tokens=4096) == 30  # the ceiling
    assert limits.ttl_for(None) == 30
    assert limits.ttl_for(config_pb2.Policy(name="no-slo")) == 30
    with pytest.raises(ValueError, match="floor"):
        Limits(ttl_s=1, floor_s=5)


def test_peers_are_counted_by_host() -> None:
    assert peer_host("ipv4:10.0.0.7:51234") == "ipv4:10.0.0.7"
    assert peer_host("ipv6:[::1]:51234") == "ipv6:[::1]"
    assert peer_host("unix:/tmp/sock") == "unix:/tmp/sock"


def test_each_item_expires_at_its_own_deadline() -> None:
    clock, dropped = Clock(), []
    held: Unreported[str] = Unreported(
        Limits(max_per_peer=2), clock=clock, on_drop=lambda i, r: dropped.append((i, r))
    )
    held.put("long", "long", "a", 10)
    held.put("short", "short", "a", 1)
    with pytest.raises(errors.Overloaded, match="2 routes of this client"):
        held.admit("a")
    held.admit("b")  # another client is not held back
    clock.now = 2
    held.admit("a")  # the short one expired: a slot is free again
    assert dropped == [("short", "expired")]
    assert held.take("long") == "long"
    assert held.take("long") is None
    assert len(held) == 0
    assert not held.per_peer


def test_a_thousand_unreported_routes_do_not_steer_traffic_away(
    example_config: config_pb2.RouterConfig,
) -> None:
    clock = Clock()
    dataplane = DataPlane(
        Fleet.from_config(example_config),
        scrape=False,
        unreported=Limits(ttl_s=10, floor_s=1, max_per_peer=64, max_total=256),
        clock=clock,
    )
    pool = dataplane.fleet.pools["llm/llama-8b-l4"]
    refused = 0
    for _ in range(1000):
        try:
            dataplane.route_remote(RequestInfo(model=EIGHT_B, prompt="x"), peer=ATTACKER)
        except errors.Overloaded:
            refused += 1
    assert refused == 1000 - 64
    assert dataplane.load.pool_in_flight(pool) == 64  # at most its limit, spread over 3
    assert max(dataplane.load.in_flight(e.address) for e in pool.endpoints) <= 22
    # Another client still routes while the attacker is held back.
    honest = dataplane.route_remote(RequestInfo(model=EIGHT_B, prompt="hi"), peer=CLIENT)
    dataplane.report_remote(honest.id, reward.Outcome(success=True, ttft_s=0.1, e2e_s=0.5))
    # Past the hold, the attacker's load is gone: the next request finds idle endpoints.
    clock.now = 11
    flight = dataplane.route(RequestInfo(model=EIGHT_B, prompt="next"))
    assert flight.decision.share == 1.0  # nothing else in flight at its endpoint
    assert dataplane.load.pool_in_flight(pool) == 1
    assert dataplane.unreported == 0
    expired = dataplane.telemetry.metrics.pending_dropped.labels("in_flight", "expired")
    assert expired._value.get() == 64
    overloaded = dataplane.telemetry.metrics.rejected.labels("overloaded")
    assert overloaded._value.get() == 1000 - 64


async def test_routes_beyond_the_limit_get_resource_exhausted(
    example_config: config_pb2.RouterConfig,
) -> None:
    dataplane = DataPlane(
        Fleet.from_config(example_config), scrape=False, unreported=Limits(max_per_peer=50)
    )
    server = RouterServer(dataplane, "127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = router_pb2_grpc.RouterStub(channel)
            request = router_pb2.RouteRequest(model=EIGHT_B, prompt="x")

            async def route() -> grpc.StatusCode | router_pb2.RouteDecision:
                try:
                    return await stub.Route(request)
                except grpc.aio.AioRpcError as error:
                    return error.code()

            results = await asyncio.gather(*(route() for _ in range(1000)))
            decisions = [r for r in results if isinstance(r, router_pb2.RouteDecision)]
            assert len(decisions) == 50
            assert results.count(grpc.StatusCode.RESOURCE_EXHAUSTED) == 950
            await stub.Report(
                router_pb2.Feedback(decision_id=decisions[0].decision_id, success=True)
            )
            assert (await stub.Route(request)).decision_id  # a Report frees a slot
    finally:
        await server.drain(0)
