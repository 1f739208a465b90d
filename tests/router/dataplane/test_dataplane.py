"""DataPlane: a new fleet reaches the routing core and the scraper."""

from __future__ import annotations

from fleetroute.v1alpha1 import config_pb2
from fleetroute_router.dataplane import DataPlane
from fleetroute_router.fleet import Fleet


def _fleet(*addresses: str) -> Fleet:
    config = config_pb2.RouterConfig()
    pool = config.pools.add(name="p", model="m-8B")
    for address in addresses:
        pool.endpoints.add(address=address, ready=True)
    return Fleet.from_config(config)


async def test_a_reloaded_fleet_is_routed_and_scraped() -> None:
    dataplane = DataPlane(_fleet("127.0.0.1:1"), scrape_interval_s=3600)
    try:
        dataplane.start()
        assert dataplane.scraper is not None
        assert set(dataplane.scraper._tasks) == {"127.0.0.1:1"}
        dataplane.set_fleet(_fleet("127.0.0.1:2", "127.0.0.1:3"))
        assert set(dataplane.scraper._tasks) == {"127.0.0.1:2", "127.0.0.1:3"}
        assert [e.address for e in dataplane.core.fleet.pools["p"].endpoints] == [
            "127.0.0.1:2",
            "127.0.0.1:3",
        ]
    finally:
        await dataplane.close()
