"""The data-plane contract: the router in front of model servers, run against fleetroute's own
simulator and against llm-d-inference-sim (`sim` marker), so the two simulators cannot drift.

Each test gets a `backend` (conftest.py) and talks to the servers through the proxy: chat and
completions, streaming and not; endpoint picking from the servers' scraped `vllm:*` metrics;
prefix affinity seen in `vllm:prefix_cache_hits_total`; the remote-prefill exchange
(`x-prefiller-host-port` decision, `kv_transfer_params` both ways); injected 5xx retried
elsewhere without losing a request.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest

from .conftest import CONTRACT_MODEL as MODEL
from .conftest import Backend, Bed, eventually

LONG = "Summarise this document for the board, briefly. " * 120  # ~1,400 tokens


async def _metrics(address: str) -> dict[str, float]:
    """A server's /metrics samples (summed over label sets), by sample name."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://{address}/metrics") as response,
    ):
        assert response.status == 200
        text = await response.text()
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, _, value = line.rpartition(" ")
        name = name.split("{", 1)[0]
        samples[name] = samples.get(name, 0.0) + float(value)
    return samples


def _body(path: str, text: str, **extra: Any) -> dict[str, Any]:
    if path == "/v1/chat/completions":
        return {"model": MODEL, "messages": [{"role": "user", "content": text}], **extra}
    return {"model": MODEL, "prompt": text, **extra}


async def test_models_metrics_and_unknown_model(backend: Backend) -> None:
    (address,) = await backend.start()
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://{address}/v1/models") as response:
            assert response.status == 200
            assert MODEL in [m["id"] for m in (await response.json())["data"]]
        body = {"model": "no/such-model", "prompt": "hi", "max_tokens": 2}
        async with session.post(f"http://{address}/v1/completions", json=body) as response:
            assert response.status == 404
            assert "error" in await response.json()
    samples = await _metrics(address)
    for name in (
        "vllm:num_requests_running",
        "vllm:num_requests_waiting",
        "vllm:kv_cache_usage_perc",
    ):
        assert samples[name] == 0.0, name


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/completions"])
async def test_non_streaming_through_the_proxy(bed: Bed, backend: Backend, path: str) -> None:
    addresses = await backend.start(2)
    bed.external_pool("p", MODEL, addresses)
    await bed.serve()
    status, headers, document = await bed.post(
        path, _body(path, "Hello there", max_tokens=5, ignore_eos=True)
    )
    assert status == 200, document
    assert headers["x-fleetroute-endpoint"] in addresses
    assert headers["x-fleetroute-pool"] == "p"
    choice = document["choices"][0]
    text = choice["message"]["content"] if "chat" in path else choice["text"]
    assert isinstance(text, str)
    assert text
    assert choice["finish_reason"] == "length"
    usage = document["usage"]
    assert usage["prompt_tokens"] > 0
    assert usage["completion_tokens"] == 5


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/completions"])
async def test_streaming_through_the_proxy(bed: Bed, backend: Backend, path: str) -> None:
    addresses = await backend.start(2)
    bed.external_pool("p", MODEL, addresses)
    await bed.serve()
    assert bed.session is not None
    body = _body(
        path,
        "Hello there",
        max_tokens=6,
        ignore_eos=True,
        stream=True,
        stream_options={"include_usage": True},
    )
    async with bed.session.post(bed.url(path), json=body) as response:
        assert response.status == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["x-fleetroute-endpoint"] in addresses
        events = [
            line.removeprefix(b"data: ").strip()
            async for line in response.content
            if line.startswith(b"data: ")
        ]
    assert events[-1] == b"[DONE]"
    chunks = [json.loads(event) for event in events[:-1]]
    pieces = [
        c["choices"][0]["delta"].get("content", "") if "chat" in path else c["choices"][0]["text"]
        for c in chunks
        if c.get("choices")
    ]
    assert "".join(pieces)
    usage = [c["usage"] for c in chunks if c.get("usage")][-1]
    assert usage["completion_tokens"] == 6
    # The router read the stream's usage: the request counts as served with its tokens.
    assert await eventually(lambda: bed.dataplane is not None and _served(bed) == 1)


def _served(bed: Bed) -> float:
    assert bed.dataplane is not None
    return sum(
        sample.value
        for metric in bed.dataplane.telemetry.registry.collect()
        if metric.name == "fleetroute_router_requests"
        for sample in metric.samples
        if sample.name.endswith("_total") and sample.labels.get("outcome") == "success"
    )


QUEUE_ONLY = {
    "plugins": [
        {"name": "queue", "type": "queue-scorer"},
        {"name": "kv", "type": "kv-cache-utilization-scorer"},
        {"name": "picker", "type": "max-score-picker"},
    ],
    "profiles": [
        {
            "name": "default",
            "plugins": [
                {"pluginRef": "queue", "weight": 2},
                {"pluginRef": "kv", "weight": 1},
                {"pluginRef": "picker"},
            ],
        }
    ],
}


async def test_endpoints_are_picked_from_the_servers_metrics(bed: Bed, backend: Backend) -> None:
    busy, idle = await backend.start(2, max_num_seqs=2)
    bed.external_pool("p", MODEL, [busy, idle])
    await bed.serve(picker_config=QUEUE_ONLY)
    assert bed.session is not None
    assert bed.dataplane is not None
    scraper = bed.dataplane.scraper
    assert scraper is not None
    # Load `busy` behind the router's back: only its /metrics can tell.
    long_body = _body("/v1/completions", "x", max_tokens=400, ignore_eos=True)
    url = f"http://{busy}/v1/completions"
    load = [asyncio.create_task(bed.session.post(url, json=long_body)) for _ in range(6)]
    try:

        def queued() -> bool:
            seen = scraper.get(busy)
            return seen is not None and seen.waiting >= 2 and seen.running >= 1

        assert await eventually(queued, within=10)
        picked = []
        for i in range(4):
            status, headers, _ = await bed.post(
                "/v1/completions", _body("/v1/completions", f"q{i}", max_tokens=2)
            )
            assert status == 200
            picked.append(headers["x-fleetroute-endpoint"])
        assert picked == [idle] * 4
    finally:
        for task in load:
            task.cancel()
        for response in await asyncio.gather(*load, return_exceptions=True):
            if isinstance(response, aiohttp.ClientResponse):
                response.release()


async def test_prefix_affinity_shows_in_the_servers_prefix_cache_hits(
    bed: Bed, backend: Backend
) -> None:
    addresses = await backend.start(2, kvcache=True, per_token=True)
    bed.external_pool("p", MODEL, addresses)
    await bed.serve()
    picked = []
    for i in range(5):
        status, headers, _ = await bed.post(
            "/v1/completions", _body("/v1/completions", f"{LONG} Question {i}?", max_tokens=2)
        )
        assert status == 200
        picked.append(headers["x-fleetroute-endpoint"])
    assert len(set(picked)) == 1, picked  # the shared prefix keeps them on one endpoint
    (home,) = set(picked)
    (other,) = set(addresses) - {home}
    hits = (await _metrics(home))["vllm:prefix_cache_hits_total"]
    queries = (await _metrics(home))["vllm:prefix_cache_queries_total"]
    assert hits > 0.5 * queries * 4 / 5  # the last four found most of their prompt cached
    assert (await _metrics(other)).get("vllm:prefix_cache_hits_total", 0.0) == 0.0


async def test_remote_prefill_exchange(bed: Bed, backend: Backend) -> None:
    (prefill,) = await backend.start(1, profile="H100")
    (decode,) = await backend.start(1, profile="A100")
    bed.external_pool("prefill", MODEL, [prefill], role="prefill", peer="decode")
    bed.external_pool("decode", MODEL, [decode], role="decode", peer="prefill")
    bed.policy("fleet/pd", ["decode"], min_uncached_prompt_tokens=256)
    await bed.serve()
    assert bed.session is not None
    assert bed.dataplane is not None
    for stream in (False, True):
        body = {  # a prompt the decode endpoint has not seen: worth a remote prefill
            "model": "fleet/pd",
            "messages": [{"role": "user", "content": f"Stream {stream}. {LONG}"}],
            "max_tokens": 4,
            "stream": stream,
        }
        async with bed.session.post(bed.url("/v1/chat/completions"), json=body) as response:
            assert response.status == 200
            assert response.headers["x-fleetroute-prefill-endpoint"] == prefill
            assert response.headers["x-fleetroute-endpoint"] == decode
            await response.read()
    # The prefiller answered with kv_transfer_params both times (else its breaker would count).
    assert prefill not in bed.dataplane.breakers._states
    # A short prompt stays on the decode endpoint alone.
    body = {"model": "fleet/pd", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    async with bed.session.post(bed.url("/v1/chat/completions"), json=body) as response:
        assert response.status == 200
        assert "x-fleetroute-prefill-endpoint" not in response.headers


async def test_injected_failures_are_retried_elsewhere(bed: Bed, backend: Backend) -> None:
    flaky = await backend.start(2, failure_rate=50)
    (healthy,) = await backend.start(1)
    bed.external_pool("p", MODEL, [*flaky, healthy])
    await bed.serve()
    gate = asyncio.Semaphore(8)

    async def one(i: int) -> tuple[int, str]:
        async with gate:
            path = "/v1/chat/completions" if i % 2 else "/v1/completions"
            status, headers, _ = await bed.post(path, _body(path, f"request {i}", max_tokens=3))
            return int(status), headers.get("x-fleetroute-endpoint", "")

    results = await asyncio.gather(*(one(i) for i in range(60)))
    assert [status for status, _ in results] == [200] * 60  # nothing lost
    assert {endpoint for _, endpoint in results} <= {*flaky, healthy}
    # The injected failures happened and were retried (half the flaky endpoints' answers).
    assert _counted(bed, "fleetroute_router_retries") >= 5


def _counted(bed: Bed, family: str) -> float:
    assert bed.dataplane is not None
    return sum(
        sample.value
        for metric in bed.dataplane.telemetry.registry.collect()
        if metric.name == family
        for sample in metric.samples
        if sample.name.endswith("_total")
    )
