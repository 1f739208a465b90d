"""The admin listener serves /metrics, /stats and /health; the public proxy port does not."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from fleetroute_router.admin import AdminServer
from fleetroute_router.dataplane import DataPlane
from fleetroute_router.features import RequestInfo
from fleetroute_router.proxy.app import ProxyServer

from .conftest import serve


@pytest.fixture
async def admin(dataplane: DataPlane) -> AsyncIterator[str]:
    server = AdminServer(dataplane, "127.0.0.1:0")
    await server.start()
    try:
        yield f"http://{server.address}"
    finally:
        await server.stop()


async def test_admin_serves_metrics_stats_and_health(admin: str, dataplane: DataPlane) -> None:
    decision = serve(dataplane)
    dataplane.route_remote(RequestInfo(model="fleet/chat", prompt="unreported"))
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{admin}/metrics") as response:
            assert response.status == 200
            assert "fleetroute_router_decisions_total" in await response.text()
        async with session.get(f"{admin}/stats") as response:
            document = await response.json()
        async with session.get(f"{admin}/stats", params={"policy": "nope"}) as response:
            assert response.status == 404
        async with session.get(f"{admin}/health") as response:
            assert await response.text() == "ok"
    assert document["unreported_routes"] == 1
    arms = {a["pool"]: a for a in document["policies"]["llm/chat"]["arms"]}
    assert arms[decision.pool]["decisions"] >= 1


async def test_the_public_port_hides_metrics_unless_asked(dataplane: DataPlane) -> None:
    async with aiohttp.ClientSession() as session:
        for asked, status in ((False, 404), (True, 200)):
            proxy = ProxyServer(dataplane, "127.0.0.1:0", metrics=asked)
            await proxy.start()
            try:
                for path in ("/metrics", "/stats"):
                    async with session.get(f"http://{proxy.address}{path}") as response:
                        assert response.status == (status if path == "/metrics" else 404), path
            finally:
                await proxy.stop()


def test_a_bad_admin_address_is_refused(dataplane: DataPlane) -> None:
    with pytest.raises(ValueError, match="host:port"):
        AdminServer(dataplane, "9091")
