"""EndpointPicker: a profile's filters, weighted scorers and picker over a pool's endpoints."""

from __future__ import annotations

from fleetroute.v1alpha1 import config_pb2
from fleetroute_router.endpoints import config
from fleetroute_router.endpoints.breaker import CircuitBreakers
from fleetroute_router.endpoints.context import PluginContext
from fleetroute_router.endpoints.interfaces import EndpointMetrics
from fleetroute_router.endpoints.scheduler import EndpointPicker
from fleetroute_router.features import RequestInfo
from fleetroute_router.load import LoadTracker

POOL = config_pb2.Pool(
    name="p",
    model="m",
    endpoints=[config_pb2.Endpoint(address=a, ready=True) for a in ("a:1", "b:1", "c:1")],
)
REQUEST = RequestInfo(model="m", prompt="hello")


class Metrics:
    def __init__(self, found: dict[str, EndpointMetrics]) -> None:
        self.found = found

    def get(self, address: str) -> EndpointMetrics | None:
        return self.found.get(address)


def _picker(
    metrics: dict[str, EndpointMetrics], breakers: CircuitBreakers | None = None
) -> tuple[EndpointPicker, LoadTracker]:
    load = LoadTracker()
    profiles = config.load(
        config.default_document(), PluginContext(breakers=breakers or CircuitBreakers())
    )
    return EndpointPicker(profiles, load, Metrics(metrics)), load


def test_the_least_loaded_endpoint_by_its_metrics_wins() -> None:
    picker, _ = _picker(
        {
            "a:1": EndpointMetrics(waiting=5, running=8, kv_cache_usage=0.9),
            "b:1": EndpointMetrics(waiting=0, running=1, kv_cache_usage=0.1),
            "c:1": EndpointMetrics(waiting=3, running=8, kv_cache_usage=0.5),
        }
    )
    pick = picker.choose(POOL, REQUEST)
    assert pick is not None
    assert pick.address == "b:1"


def test_without_metrics_the_routers_own_counts_decide() -> None:
    picker, load = _picker({})
    for _ in range(2):
        load.start("a:1", POOL.name)
        load.start("b:1", POOL.name)
    pick = picker.choose(POOL, REQUEST)
    assert pick is not None
    assert pick.address == "c:1"


def test_open_breakers_and_exclusions_leave_the_rest_or_nothing() -> None:
    breakers = CircuitBreakers(failure_threshold=1)
    picker, _ = _picker({}, breakers)
    breakers.failure("a:1")
    breakers.failure("b:1")
    pick = picker.choose(POOL, REQUEST)
    assert pick is not None
    assert pick.address == "c:1"
    assert picker.choose(POOL, REQUEST, exclude={"c:1"}) is None
    # Failing open, an endpoint whose breaker is open is better than none.
    fallback = picker.choose(POOL, REQUEST, exclude={"c:1"}, include_unready=True)
    assert fallback is not None
    assert fallback.address in {"a:1", "b:1"}


def test_a_repeated_long_prompt_sticks_to_its_endpoint_and_counts_as_cached() -> None:
    picker, _ = _picker({})
    long = RequestInfo(model="m", prompt="The same long system prompt. " * 40)
    first = picker.choose(POOL, long)
    second = picker.choose(POOL, long)
    assert first is not None
    assert second is not None
    assert second.address == first.address
    assert first.cached_tokens == 0
    assert second.cached_tokens > 200
