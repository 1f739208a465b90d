"""Crashes, hangs and slow processes among llm-d-inference-sim endpoints (the binary comes from
the e2e harness); what both simulators must do is in test_contract.py."""

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
Chat = Callable[..., dict[str, Any]]


@pytest.fixture
async def sims(llmd_binary: Path) -> AsyncIterator[Callable[..., Any]]:
    started: list[llmd.SimProcess] = []

    async def start(count: int, **kwargs: Any) -> list[llmd.SimProcess]:
        batch = [llmd.SimProcess(llmd_binary, MODEL, **kwargs) for _ in range(count)]
        for process in batch:
            started.append(process)
            await process.start()
        return batch

    yield start
    for process in started:
        await process.stop()


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
