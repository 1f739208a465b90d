"""A bounded number of requests in flight, a bounded queue behind them, 429 beyond."""

from __future__ import annotations

import asyncio
from types import TracebackType

from fleetroute_router import errors


class Admission:
    """`async with admission:` holds one of max_in_flight slots, waiting in a queue of at most
    max_queue; raises Overloaded when the queue is full."""

    def __init__(self, max_in_flight: int, max_queue: int) -> None:
        self._slots = asyncio.Semaphore(max_in_flight)
        self.max_queue = max_queue
        self.waiting = 0

    async def __aenter__(self) -> None:
        if self._slots.locked():
            if self.waiting >= self.max_queue:
                raise errors.Overloaded(
                    f"router overloaded: {self.waiting} requests already queued"
                )
            self.waiting += 1
            try:
                await self._slots.acquire()
            finally:
                self.waiting -= 1
        else:
            await self._slots.acquire()

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._slots.release()
