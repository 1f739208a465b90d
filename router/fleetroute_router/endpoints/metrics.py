"""Read the load figures of vLLM, SGLang and DCGM out of a Prometheus text exposition."""

from __future__ import annotations

from fleetroute_router.endpoints.interfaces import EndpointMetrics

WAITING = ("vllm:num_requests_waiting", "sglang:num_queue_reqs")
RUNNING = ("vllm:num_requests_running", "sglang:num_running_reqs")
KV_CACHE = ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc", "sglang:token_usage")
POWER = ("DCGM_FI_DEV_POWER_USAGE",)
WANTED = frozenset(WAITING + RUNNING + KV_CACHE + POWER)


def samples(text: str) -> dict[str, float]:
    """Sum of the samples of each wanted metric (over labels, e.g. GPUs or models)."""
    sums: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line[0] == "#":
            continue
        brace = line.find("{")
        end = brace if brace >= 0 else line.find(" ")
        name = line[:end]
        if name not in WANTED:
            continue
        rest = line.rsplit("}", 1)[-1] if brace >= 0 else line[end:]
        try:
            value = float(rest.split()[0])
        except (ValueError, IndexError):
            continue
        sums[name] = sums.get(name, 0.0) + value
    return sums


def _first(found: dict[str, float], names: tuple[str, ...]) -> float | None:
    return next((found[n] for n in names if n in found), None)


def parse(text: str, scraped_at: float) -> EndpointMetrics | None:
    """The endpoint's load, or None when the exposition has none of the known queue metrics."""
    found = samples(text)
    waiting, running = _first(found, WAITING), _first(found, RUNNING)
    if waiting is None and running is None:
        return None
    return EndpointMetrics(
        waiting=waiting or 0.0,
        running=running or 0.0,
        kv_cache_usage=_first(found, KV_CACHE),
        power_watts=_first(found, POWER),
        scraped_at=scraped_at,
    )
