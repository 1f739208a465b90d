"""Pools whose scheme is https: requests and scrapes go over TLS, verified against the CA
bundle; a server whose certificate the bundle did not sign gets nothing."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from fleetroute import routerconfig
from fleetroute.v1alpha1 import config_pb2
from fleetroute_router.dataplane import DataPlane
from fleetroute_router.fleet import Fleet
from fleetroute_router.proxy.app import ProxyServer
from fleetroute_router.proxy.upstream import Timeouts
from fleetroute_router.sim.model import ServerModel
from fleetroute_router.sim.server import SimServer

from ..certs import Authority

MODEL = "test/secure-8B"


@pytest.fixture
def authority(tmp_path: Path) -> Authority:
    return Authority(tmp_path)


@pytest.fixture
async def https_server(authority: Authority) -> AsyncIterator[str]:
    """A simulated model server answering over TLS only."""
    issued = authority.issue("model-server")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(issued.cert, issued.key)
    sim = SimServer(MODEL, ServerModel.of(MODEL, "NVIDIA-L4", speed=0.0))
    runner = web.AppRunner(sim.app(), shutdown_timeout=0.1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context).start()
    try:
        yield f"127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


def _config(address: str, scheme: str = "https") -> config_pb2.RouterConfig:
    config = config_pb2.RouterConfig()
    pool = config.pools.add(name="secure", model=MODEL, gpus_per_replica=1, scheme=scheme)
    pool.gpu.CopyFrom(config_pb2.GpuFigures(product="NVIDIA-L4", idle_watts=16, max_watts=72))
    pool.endpoints.add(address=address, ready=True)
    return config


async def _chat(dataplane: DataPlane) -> int:
    proxy = ProxyServer(
        dataplane, "127.0.0.1:0", timeouts=Timeouts(connect_s=1, first_byte_s=5, idle_s=5)
    )
    await proxy.start()
    try:
        body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
        async with (
            aiohttp.ClientSession() as session,
            session.post(f"http://{proxy.address}/v1/chat/completions", json=body) as response,
        ):
            await response.read()
            return response.status
    finally:
        await proxy.stop()


async def test_an_https_pool_is_served_and_scraped_over_tls(
    https_server: str, authority: Authority
) -> None:
    dataplane = DataPlane(Fleet.from_config(_config(https_server)), upstream_ca=authority.ca)
    dataplane.start()
    try:
        assert dataplane.fleet.url(https_server, "/v1") == f"https://{https_server}/v1"
        assert await _chat(dataplane) == 200
        assert dataplane.scraper is not None
        assert await dataplane.scraper.scrape(https_server) is not None
    finally:
        await dataplane.close()


async def test_a_server_the_bundle_did_not_sign_is_refused(https_server: str) -> None:
    dataplane = DataPlane(Fleet.from_config(_config(https_server)), scrape=False)  # system CAs
    assert await _chat(dataplane) == 502


async def test_an_http_pool_does_not_speak_tls_to_a_tls_server(
    https_server: str, authority: Authority
) -> None:
    config = _config(https_server, scheme="")
    dataplane = DataPlane(Fleet.from_config(config), scrape=False, upstream_ca=authority.ca)
    assert dataplane.fleet.url(https_server) == f"http://{https_server}"
    assert await _chat(dataplane) == 502


def test_an_unknown_scheme_is_refused() -> None:
    with pytest.raises(routerconfig.ConfigError, match="scheme must be http or https"):
        routerconfig.check(_config("127.0.0.1:1", scheme="gopher"))
