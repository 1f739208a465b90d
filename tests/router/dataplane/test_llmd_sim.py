"""P/D and faults against llm-d-inference-sim processes (the binary comes from the e2e harness)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from fleetroute_router.bench import llmd
from fleetroute_router.proxy.upstream import Timeouts

pytestmark = pytest.mark.sim
MODEL = "Qwen/Qwen2.5-1.5B-Instruct"
LONG = "Summarise this document. " * 200
Chat = Callable[..., dict[str, Any]]


@pytest.fixture(scope="module")
def binary() -> Path:
    try:
        return llmd.find_binary()
    except llmd.Unavailable as error:
        pytest.skip(f"llm-d-inference-sim unavailable: {error}")


@pytest.fixture
async def sims(binary: Path) -> AsyncIterator[Callable[..., Any]]:
    started: list[llmd.SimProcess] = []

    async def start(count: int, **kwargs: Any) -> list[llmd.SimProcess]:
        batch = [llmd.SimProcess(binary, MODEL, **kwargs) for _ in range(count)]
        for process in batch:
            await process.start()
            started.append(process)
        return batch

    yield start
    for process in started:
        await process.stop()


async def test_remote_prefill_exchange(bed: Any, sims: Any, make_chat: Chat) -> None:
    (prefill,) = await sims(1, ttft_ms=20, itl_ms=5)
    (decode,) = await sims(1, ttft_ms=20, itl_ms=5)
    bed.external_pool("prefill", MODEL, [prefill.address], role="prefill", peer="decode")
    bed.external_pool("decode", MODEL, [decode.address], role="decode", peer="prefill")
    bed.policy("fleet/pd", ["decode"], min_uncached_prompt_tokens=256)
    await bed.serve()
    for stream in (False, True):
        body = make_chat("fleet/pd", LONG, max_tokens=4, stream=stream)
        async with bed.session.post(bed.url("/v1/chat/completions"), json=body) as response:
            assert response.status == 200
            assert response.headers["x-fleetroute-prefill-endpoint"] == prefill.address
            await response.read()
    # The prefiller answered with kv_transfer_params both times (else its breaker counts).
    assert not bed.dataplane.breakers.is_open(prefill.address)
    assert prefill.address not in bed.dataplane.breakers._states


async def test_no_request_is_lost_when_processes_die_hang_or_slow(
    bed: Any, sims: Any, make_chat: Chat
) -> None:
    healthy, killed, hung = await sims(3, ttft_ms=10, itl_ms=2)
    (slow,) = await sims(1, ttft_ms=200, itl_ms=50)
    bed.external_pool("p", MODEL, [p.address for p in (healthy, killed, hung, slow)])
    await bed.serve(timeouts=Timeouts(connect_s=0.5, first_byte_s=1.0, idle_s=5.0))
    hung.pause()
    gate = asyncio.Semaphore(16)

    async def one(i: int) -> int:
        async with gate:
            status, _, _ = await bed.post(
                "/v1/chat/completions", make_chat(MODEL, f"request {i}", max_tokens=4)
            )
            return int(status)

    async def kill_soon() -> None:
        await asyncio.sleep(0.3)
        await killed.stop()

    statuses, _ = await asyncio.gather(asyncio.gather(*(one(i) for i in range(150))), kill_soon())
    hung.resume()
    assert list(statuses) == [200] * 150
