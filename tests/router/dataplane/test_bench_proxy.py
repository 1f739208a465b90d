"""`fleetroute bench proxy`: its floor passes answers through unchanged, and rows are ratios
against that floor (speed is not asserted)."""

from __future__ import annotations

import json

import aiohttp
from aiohttp import web

from fleetroute_router.bench import minproxy
from fleetroute_router.bench import proxy as bench_proxy
from fleetroute_router.sim.model import ServerModel
from fleetroute_router.sim.server import SimServer

from .conftest import free_port

MODEL = "test/model-8B"


async def test_minimal_proxy_relays_whole_and_streamed_answers() -> None:
    server = SimServer(MODEL, ServerModel.of(MODEL, "NVIDIA-L4", speed=0.0))
    await server.start()
    port = free_port()
    runner = web.AppRunner(minproxy.app(server.address))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3}
    try:
        async with aiohttp.ClientSession() as session:
            async with session.post(url, json=body) as response:
                assert response.status == 200
                document = json.loads(await response.read())
            assert document["usage"]["completion_tokens"] == 3
            async with session.post(url, json={**body, "stream": True}) as response:
                assert response.headers["Content-Type"].startswith("text/event-stream")
                text = (await response.read()).decode()
            async with session.post(url, json={**body, "model": "no/such"}) as response:
                assert response.status == 404
    finally:
        await runner.cleanup()
        await server.stop()
    events = [line for line in text.splitlines() if line.startswith("data:")]
    assert len(events) == 4  # three tokens and [DONE]
    assert events[-1] == "data: [DONE]"


def test_rows_are_added_latency_and_cpu_against_the_floor() -> None:
    paths = {
        "direct": bench_proxy._Path([0.001] * 100, 0, 1.0, 0.0),
        "minproxy": bench_proxy._Path([0.002] * 100, 0, 1.0, 0.05),
        "alias": bench_proxy._Path([0.003] * 99, 1, 1.0, 0.1),
    }
    floor = bench_proxy._row(500.0, "stream", "minproxy", paths)
    assert floor["added_p50_ms"] == 1.0
    assert floor["cpu_us_per_request"] == 500.0
    assert "ratio_p50" not in floor
    row = bench_proxy._row(500.0, "stream", "alias", paths)
    assert (row["added_p50_ms"], row["added_p99_ms"]) == (2.0, 2.0)
    assert (row["ratio_p50"], row["ratio_p99"]) == (2.0, 2.0)
    assert row["ratio_cpu"] == round((0.1 / 99) / (0.05 / 100), 2)
    assert (row["errors"], row["requests"], row["achieved_rps"]) == (1, 100, 99.0)
    assert row["meets_goal"] is False
