"""Polling tasks: kept in step with the wanted keys, and a failing read does not stop one."""

from __future__ import annotations

import asyncio

import pytest

from fleetroute_router.polling import Pollers


async def test_a_failing_read_keeps_polling_and_dropped_keys_stop(
    caplog: pytest.LogCaptureFixture,
) -> None:
    reads: list[str] = []
    failed_thrice = asyncio.Event()

    async def read(key: str) -> None:
        reads.append(key)
        if key == "bad":
            if reads.count("bad") >= 3:
                failed_thrice.set()
            raise RuntimeError("boom")

    pollers = Pollers(read, "reading")
    assert pollers.keep({"bad": 0.001, "good": 0.001}) == []
    await asyncio.wait_for(failed_thrice.wait(), 5)  # still polled after it failed
    assert "reading bad" in caplog.text
    assert pollers.keep({"good": 0.001}) == ["bad"]
    assert pollers.keys == {"good"}
    await asyncio.sleep(0)  # the cancelled task ends
    seen = reads.count("bad")
    await asyncio.sleep(0.01)
    assert reads.count("bad") == seen
    await pollers.close()
    assert pollers.keys == frozenset()


async def test_a_changed_interval_takes_effect_and_an_unchanged_one_keeps_its_task() -> None:
    reads: list[float] = []
    five = asyncio.Event()

    async def read(key: str) -> None:
        reads.append(asyncio.get_running_loop().time())
        if len(reads) >= 5:
            five.set()

    pollers = Pollers(read, "reading")
    pollers.keep({"source": 3600.0})
    await asyncio.sleep(0.01)
    assert len(reads) == 1  # read once, then asleep for an hour
    pollers.keep({"source": 3600.0})
    await asyncio.sleep(0.01)
    assert len(reads) == 1  # the same interval: the same task, no extra read
    pollers.keep({"source": 0.001})
    # Five reads soon: the new interval, not the hour the old task sleeps.
    await asyncio.wait_for(five.wait(), 5)
    await pollers.close()
