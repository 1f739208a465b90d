"""Faults: retries before the first byte, circuit breakers, fail-open/close, 429, cancellation."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import aiohttp

from fleetroute.v1alpha1 import config_pb2
from fleetroute_router.proxy.app import Limits
from fleetroute_router.proxy.upstream import Timeouts

from .conftest import eventually

Chat = Callable[..., dict[str, Any]]
MODEL = "test/model-8B"


async def _load(bed: Any, make_chat: Chat, count: int, concurrency: int, **extra: Any) -> list[int]:
    """Send `count` chat requests, `concurrency` at a time; the statuses in order."""
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int) -> int:
        async with gate:
            body = make_chat(MODEL, f"request {i}", max_tokens=4, **extra)
            status, _, _ = await bed.post("/v1/chat/completions", body)
            return int(status)

    return list(await asyncio.gather(*(one(i) for i in range(count))))


async def test_a_dead_endpoint_is_retried_elsewhere(bed: Any, make_chat: Chat) -> None:
    await bed.pool("p", MODEL, count=1, dead=2)
    await bed.serve(scrape=False)
    for _ in range(6):
        status, headers, _ = await bed.post("/v1/chat/completions", make_chat(MODEL))
        assert status == 200
        assert headers["x-fleetroute-endpoint"] in bed.sims


async def test_5xx_is_retried_and_the_breaker_opens(bed: Any, make_chat: Chat) -> None:
    bad, good = await bed.pool("p", MODEL, count=2)
    bad.faults.error_status = 503
    await bed.serve(scrape=False)
    for _ in range(40):  # ties between the two go either way; the bad one fails 3 times
        status, headers, _ = await bed.post("/v1/chat/completions", make_chat(MODEL))
        assert status == 200
        assert headers["x-fleetroute-endpoint"] == good.address
        if bed.dataplane.breakers.is_open(bad.address):
            break
    assert bed.dataplane.breakers.is_open(bad.address)


async def test_a_hung_endpoint_times_out_before_the_first_byte(bed: Any, make_chat: Chat) -> None:
    hung, _ = await bed.pool("p", MODEL, count=2)
    hung.faults.hang = True
    await bed.serve(timeouts=Timeouts(connect_s=0.5, first_byte_s=0.3, idle_s=1.0))
    for stream in (False, True, False, True):
        status, headers, _ = await bed.post("/v1/chat/completions", make_chat(MODEL, stream=stream))
        assert status == 200
        assert headers["x-fleetroute-endpoint"] != hung.address


async def test_no_request_is_lost_while_one_endpoint_stays_healthy(
    bed: Any, make_chat: Chat
) -> None:
    """Under load: one endpoint killed mid-way, one hung, one slowed; every request succeeds."""
    healthy, killed, hung, slow = await bed.pool("p", MODEL, count=4)
    hung.faults.hang = True
    slow.faults.slowdown = 5.0
    await bed.serve(timeouts=Timeouts(connect_s=0.5, first_byte_s=0.5, idle_s=2.0))

    async def kill_soon() -> None:
        await asyncio.sleep(0.15)
        await killed.stop()

    statuses, _ = await asyncio.gather(_load(bed, make_chat, 120, 16), kill_soon())
    assert statuses == [200] * 120
    assert healthy.stats.served > 0
    stream_statuses = await _load(bed, make_chat, 40, 8, stream=True)
    assert stream_statuses == [200] * 40


async def test_fail_close_answers_503_when_nothing_is_healthy(bed: Any, make_chat: Chat) -> None:
    await bed.pool("p", MODEL, count=0, dead=2)
    bed.policy("fleet/x", ["p"], failure_mode=config_pb2.FAIL_CLOSE)
    await bed.serve()
    breakers = bed.dataplane.breakers
    addresses = [e.address for e in bed.config.pools[0].endpoints]
    assert await eventually(lambda: all(breakers.is_open(a) for a in addresses))
    status, _, body = await bed.post("/v1/chat/completions", make_chat("fleet/x"))
    assert status == 503
    assert body["error"]["code"] == "no_capacity"


async def test_fail_open_passes_through_to_unready_endpoints(bed: Any, make_chat: Chat) -> None:
    await bed.pool("open", "test/open-8B", ready=False)
    await bed.pool("closed", "test/closed-8B", ready=False)
    bed.policy("fleet/open", ["open"], failure_mode=config_pb2.FAIL_OPEN)
    bed.policy("fleet/closed", ["closed"], failure_mode=config_pb2.FAIL_CLOSE)
    await bed.serve()
    status, headers, _ = await bed.post("/v1/chat/completions", make_chat("fleet/open"))
    assert status == 200
    assert headers["x-fleetroute-pool"] == "open"
    status, _, _ = await bed.post("/v1/chat/completions", make_chat("fleet/closed"))
    assert status == 503


async def test_every_endpoint_failing_is_a_502(bed: Any, make_chat: Chat) -> None:
    servers = await bed.pool("p", MODEL, count=2)
    for server in servers:
        server.faults.error_status = 500
    await bed.serve(scrape=False)
    status, _, body = await bed.post("/v1/chat/completions", make_chat(MODEL))
    assert status == 502
    assert body["error"]["code"] == "upstream_failed"


async def test_a_full_queue_answers_429(bed: Any, make_chat: Chat) -> None:
    (server,) = await bed.pool("p", MODEL)
    server.faults.slowdown = 50.0  # about a second per request
    await bed.serve(limits=Limits(max_in_flight=1, max_queue=1))

    async def one() -> tuple[int, Any]:
        status, _, body = await bed.post("/v1/chat/completions", make_chat(MODEL, max_tokens=2))
        return status, body

    first = asyncio.create_task(one())
    await eventually(lambda: server.running == 1)
    results = await asyncio.gather(first, *(one() for _ in range(4)))
    statuses = sorted(status for status, _ in results)
    assert statuses == [200, 200, 429, 429, 429]
    rejected = next(body for status, body in results if status == 429)
    assert rejected["error"]["type"] == "rate_limit_error"


async def test_client_disconnect_cancels_the_upstream_request(bed: Any, make_chat: Chat) -> None:
    (server,) = await bed.pool("p", MODEL)
    server.faults.slowdown = 1000.0
    await bed.serve()
    for stream in (False, True):
        before = server.stats.cancelled
        async with aiohttp.ClientSession() as client:
            try:
                async with asyncio.timeout(0.3):
                    url, body = bed.url("/v1/chat/completions"), make_chat(MODEL, stream=stream)
                    async with client.post(url, json=body) as response:
                        await response.read()
            except TimeoutError:
                pass
        assert await eventually(lambda b=before: server.stats.cancelled == b + 1)
    assert await eventually(lambda: bed.dataplane.core.load.in_flight(server.address) == 0)


async def test_a_200_that_is_not_json_is_a_failure_retried_elsewhere(
    bed: Any, make_chat: Any
) -> None:
    from aiohttp import web

    async def broken(request: web.Request) -> web.Response:
        return web.Response(text="<html>proxy error page</html>", content_type="application/json")

    app = web.Application()
    app.router.add_post("/v1/chat/completions", broken)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        bad = f"127.0.0.1:{runner.addresses[0][1]}"
        (good,) = await bed.pool("good", "test/small-8B")
        bed.external_pool("bad", "test/small-8B", [bad])
        await bed.serve(scrape=False)
        for _ in range(8):  # the two pools take turns: the broken one is tried until its
            status, headers, body = await bed.post(  # breaker opens
                "/v1/chat/completions", make_chat("test/small-8B")
            )
            assert status == 200
            assert headers["x-fleetroute-endpoint"] == good.address
            assert body["choices"]
        assert bed.dataplane.breakers.is_open(bad)
    finally:
        await runner.cleanup()
