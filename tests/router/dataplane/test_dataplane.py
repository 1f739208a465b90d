"""DataPlane: a new fleet reaches the routing core and the scraper."""

from __future__ import annotations

from fleetroute.v1alpha1 import config_pb2
from fleetroute_router.dataplane import DataPlane
from fleetroute_router.features import RequestInfo
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
        assert dataplane.scraper.scraped == {"127.0.0.1:1"}
        dataplane.set_fleet(_fleet("127.0.0.1:2", "127.0.0.1:3"))
        assert dataplane.scraper.scraped == {"127.0.0.1:2", "127.0.0.1:3"}
        assert [e.address for e in dataplane.core.fleet.pools["p"].endpoints] == [
            "127.0.0.1:2",
            "127.0.0.1:3",
        ]
    finally:
        await dataplane.close()


def _policy_fleet() -> Fleet:
    config = config_pb2.RouterConfig()
    for name in ("a", "b"):
        pool = config.pools.add(name=name, model=f"m-{name}")
        pool.endpoints.add(address=f"127.0.0.1:{10 + len(name) + ord(name)}", ready=True)
    policy = config.policies.add(name="ns/p", model_alias="alias", candidates=["a", "b"])
    policy.objective.latency = 1.0
    policy.slo.ttft.FromMilliseconds(500)
    policy.algorithm.name = "linucb"
    return Fleet.from_config(config)


async def test_a_client_gone_after_its_first_token_still_teaches_latency() -> None:
    dataplane = DataPlane(_policy_fleet(), scrape=False)
    try:
        flight = dataplane.route(
            RequestInfo(model="alias", prompt="hello"), "r1", "/v1/completions"
        )
        dataplane.abandoned(flight, ttft_s=0.2)
        (arm,) = dataplane.core.stats("ns/p")["ns/p"].arms
        assert (arm.decisions, arm.rewards, arm.mean_reward) == (1, 1, 1.0)  # 200 ms meets 500 ms
        assert arm.means == {"latency": 1.0}  # nothing else was measured
        assert dataplane.core.load.in_flight(flight.decision.endpoint) == 0
    finally:
        await dataplane.close()


async def test_a_client_gone_before_any_token_teaches_nothing() -> None:
    dataplane = DataPlane(_policy_fleet(), scrape=False)
    try:
        flight = dataplane.route(
            RequestInfo(model="alias", prompt="hello"), "r1", "/v1/completions"
        )
        dataplane.abandoned(flight)
        (arm,) = dataplane.core.stats("ns/p")["ns/p"].arms
        assert (arm.decisions, arm.rewards) == (1, 0)
    finally:
        await dataplane.close()
