"""Scraped metrics: vLLM, SGLang and DCGM names; stale figures read as missing."""

from __future__ import annotations

import pytest

from fleetroute_router.endpoints import metrics
from fleetroute_router.endpoints.breaker import CircuitBreakers
from fleetroute_router.endpoints.scraper import (
    DEFAULT_STALE_AFTER_S,
    STALE_SCRAPES,
    MetricsScraper,
)
from fleetroute_router.sim.model import ServerModel
from fleetroute_router.sim.server import SimServer

VLLM = """# HELP vllm:num_requests_running Number of requests running.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{model_name="m"} 3.0
vllm:num_requests_waiting{model_name="m"} 2.0
vllm:gpu_cache_usage_perc{model_name="m"} 0.4
DCGM_FI_DEV_POWER_USAGE{gpu="0"} 300.5
DCGM_FI_DEV_POWER_USAGE{gpu="1"} 299.5
vllm:num_requests_running_other 99
"""
SGLANG = (
    'sglang:num_running_reqs{m="x"} 1\nsglang:num_queue_reqs{m="x"} 4\nsglang:token_usage 0.5\n'
)


def test_vllm_names_and_dcgm_power_summed_over_gpus() -> None:
    found = metrics.parse(VLLM, 1.0)
    assert found is not None
    assert (found.running, found.waiting, found.kv_cache_usage) == (3.0, 2.0, 0.4)
    assert found.power_watts == 600.0
    assert found.scraped_at == 1.0


def test_sglang_names() -> None:
    found = metrics.parse(SGLANG, 0.0)
    assert found is not None
    assert (found.running, found.waiting, found.kv_cache_usage, found.power_watts) == (
        1.0,
        4.0,
        0.5,
        None,
    )


def test_an_exposition_without_queue_metrics_is_no_metrics() -> None:
    assert metrics.parse("up 1\n# nothing\nbroken{", 0.0) is None


async def test_scraper_reads_an_endpoint_and_forgets_stale_figures() -> None:
    now = [0.0]
    server = SimServer("m-8B", ServerModel.of("m-8B", "L4"), engine="sglang")
    await server.start()
    breakers = CircuitBreakers(failure_threshold=1)
    scraper = MetricsScraper(
        interval_s=3600, stale_after_s=1.0, on_unreachable=breakers.failure, clock=lambda: now[0]
    )
    try:
        scraper.set_endpoints([])
        found = await scraper.scrape(server.address)
        assert found is not None
        assert found.power_watts == 16.0  # one idle L4
        assert scraper.get(server.address) == found
        now[0] = 2.0
        assert scraper.get(server.address) is None
        await server.stop()
        assert await scraper.scrape(server.address) is None
        assert breakers.is_open(server.address)  # unreachable counts against the breaker
    finally:
        await scraper.close()
        await server.stop()


def test_figures_go_stale_after_missed_scrapes_whatever_the_interval() -> None:
    assert MetricsScraper().stale_after_s == DEFAULT_STALE_AFTER_S  # 75 ms scrapes: 0.5 s
    assert MetricsScraper(interval_s=1.0).stale_after_s == STALE_SCRAPES * 1.0
    assert MetricsScraper(interval_s=1.0, stale_after_s=0.2).stale_after_s == 0.2
    with pytest.raises(ValueError, match="scrape interval must be above 0"):
        MetricsScraper(interval_s=0.0)
