"""Fixtures for router tests: the embedded example fleet as a config, core and served gRPC API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from fleetroute import routerconfig
from fleetroute.v1alpha1 import config_pb2, router_pb2_grpc
from fleetroute_router.core import RoutingCore
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
async def served(core: RoutingCore) -> AsyncIterator[RouterServer]:
    server = RouterServer(core, "127.0.0.1:0")
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
