"""Fixtures for router tests: the embedded example fleet as a config, core, data plane and
served gRPC API; `serve` runs one request's whole life through the data plane."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from fleetroute import routerconfig
from fleetroute.v1alpha1 import config_pb2, router_pb2_grpc
from fleetroute_router import feedback, reward
from fleetroute_router.core import RoutingCore
from fleetroute_router.dataplane import DataPlane
from fleetroute_router.decisions import Decision
from fleetroute_router.features import RequestInfo
from fleetroute_router.fleet import Fleet
from fleetroute_router.server import RouterServer

EMBEDDED = (
    Path(__file__).resolve().parents[2] / "router/fleetroute_router/defaults/example-fleet.yaml"
)


@pytest.fixture
def example_config() -> config_pb2.RouterConfig:
    return routerconfig.load(EMBEDDED)


@pytest.fixture
def core(example_config: config_pb2.RouterConfig) -> RoutingCore:
    return RoutingCore(Fleet.from_config(example_config))


@pytest.fixture
def dataplane(example_config: config_pb2.RouterConfig) -> DataPlane:
    return DataPlane(Fleet.from_config(example_config), scrape=False)


def serve(
    dataplane: DataPlane,
    prompt: str = "Hello",
    *,
    model: str = "fleet/chat",
    ttft_s: float | None = 0.1,
    e2e_s: float = 1.0,
    tokens: int = 50,
    quality: float | None = None,
    objective: config_pb2.Objective | None = None,
) -> Decision:
    """Route a request, report its outcome as a gRPC caller would, then grade it (if given)."""
    decision = dataplane.route_remote(RequestInfo(model=model, prompt=prompt), objective=objective)
    dataplane.report_remote(
        decision.id,
        reward.Outcome(
            success=True, ttft_s=ttft_s, e2e_s=e2e_s, prompt_tokens=10, completion_tokens=tokens
        ),
    )
    if quality is not None:
        dataplane.feedback(feedback.grade(decision_id=decision.id, score=quality, source="judge"))
    return decision


@pytest.fixture
async def served(dataplane: DataPlane) -> AsyncIterator[RouterServer]:
    server = RouterServer(dataplane, "127.0.0.1:0")
    await server.start()
    yield server
    await server.drain(0)


@pytest.fixture
async def channel(served: RouterServer) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{served.port}") as chan:
        yield chan


@pytest.fixture
def stub(channel: grpc.aio.Channel) -> router_pb2_grpc.RouterStub:
    return router_pb2_grpc.RouterStub(channel)
