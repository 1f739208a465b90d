"""Control rpcs (Report, GetStats, any later one) need the control token; Route stays open."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from fleetroute.v1alpha1 import config_pb2, router_pb2, router_pb2_grpc
from fleetroute_router.auth import TokenFile
from fleetroute_router.control_auth import OPEN_METHODS, SERVICE, ControlGuard
from fleetroute_router.dataplane import DataPlane
from fleetroute_router.fleet import Fleet
from fleetroute_router.server import RouterServer

GOOD = (("authorization", "Bearer c0ntrol"),)
BAD = ((), (("authorization", "Bearer guess"),), (("authorization", "c0ntrol"),))


@pytest.fixture
def guarded(example_config: config_pb2.RouterConfig) -> DataPlane:
    return DataPlane(Fleet.from_config(example_config), scrape=False)


@pytest.fixture
async def control_stub(
    guarded: DataPlane, tmp_path: Path
) -> AsyncIterator[router_pb2_grpc.RouterStub]:
    token = tmp_path / "control-token"
    token.write_text("c0ntrol\n")
    server = RouterServer(guarded, "127.0.0.1:0", guard=ControlGuard(TokenFile(token)))
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            yield router_pb2_grpc.RouterStub(channel)
    finally:
        await server.drain(0)


async def _code(call: object) -> grpc.StatusCode:
    try:
        await call  # type: ignore[misc]
    except grpc.aio.AioRpcError as error:
        return error.code()
    return grpc.StatusCode.OK


async def test_report_without_the_token_is_refused_and_poisons_nothing(
    control_stub: router_pb2_grpc.RouterStub, guarded: DataPlane
) -> None:
    decision = await control_stub.Route(router_pb2.RouteRequest(model="fleet/chat", prompt="Hi"))
    poison = router_pb2.Feedback(decision_id=decision.decision_id, success=True, quality=0.0)
    for metadata in BAD:
        assert await _code(control_stub.Report(poison, metadata=metadata)) == (
            grpc.StatusCode.UNAUTHENTICATED
        )
    stats = guarded.core.stats("llm/chat")["llm/chat"]
    assert stats.quality_observations == 0
    assert sum(a.observations.get("quality", 0) for a in stats.arms) == 0
    refused = guarded.telemetry.metrics.rejected.labels("unauthenticated")
    assert refused._value.get() == len(BAD)
    # The owner's Report, quality included, is learned without the feedback token.
    honest = router_pb2.Feedback(decision_id=decision.decision_id, success=True, quality=0.75)
    await control_stub.Report(honest, metadata=GOOD)
    assert guarded.core.stats("llm/chat")["llm/chat"].quality_observations == 1


async def test_get_stats_needs_the_token(control_stub: router_pb2_grpc.RouterStub) -> None:
    for metadata in BAD:
        code = await _code(control_stub.GetStats(router_pb2.StatsRequest(), metadata=metadata))
        assert code == grpc.StatusCode.UNAUTHENTICATED
    stats = await control_stub.GetStats(router_pb2.StatsRequest(), metadata=GOOD)
    assert [p.policy for p in stats.policies] == ["llm/chat"]


async def test_every_rpc_but_the_open_ones_is_guarded(
    control_stub: router_pb2_grpc.RouterStub,
) -> None:
    service = router_pb2.DESCRIPTOR.services_by_name["Router"]
    guarded = {f"/{SERVICE}/{m.name}" for m in service.methods} - OPEN_METHODS
    assert guarded >= {f"/{SERVICE}/Report", f"/{SERVICE}/GetStats"}
    for method in service.methods:
        call = getattr(control_stub, method.name)
        request = router_pb2.__dict__[method.input_type.name]()
        code = await _code(call(request))
        if f"/{SERVICE}/{method.name}" in OPEN_METHODS:
            assert code != grpc.StatusCode.UNAUTHENTICATED, method.name
        else:
            assert code == grpc.StatusCode.UNAUTHENTICATED, method.name


async def test_route_stays_open(control_stub: router_pb2_grpc.RouterStub) -> None:
    decision = await control_stub.Route(router_pb2.RouteRequest(model="fleet/chat", prompt="Hi"))
    assert decision.pool


async def test_without_a_token_control_rpcs_are_open(stub: router_pb2_grpc.RouterStub) -> None:
    stats = await stub.GetStats(router_pb2.StatsRequest())
    assert stats.policies
