"""Polling tasks keyed by what they read: one task per key, kept in step with a wanted set."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping

log = logging.getLogger(__name__)


class Pollers:
    """Runs `read(key)` every interval for each wanted key; a failed read never stops its task."""

    def __init__(self, read: Callable[[str], Awaitable[object]], what: str) -> None:
        """`what` names the reads in log lines (e.g. "scraping")."""
        self._read, self._what = read, what
        # Each key's task and the interval it polls at.
        self._tasks: dict[str, tuple[asyncio.Task[None], float]] = {}

    def keep(self, wanted: Mapping[str, float]) -> list[str]:
        """Poll exactly the keys of `wanted` (key -> interval in seconds) from now on (needs a
        running event loop); returns the keys no longer polled. A key whose interval changed
        is polled again at once, then at its new interval."""
        dropped = [key for key in self._tasks if key not in wanted]
        for key in dropped:
            self._tasks.pop(key)[0].cancel()
        for key, interval_s in wanted.items():
            running = self._tasks.get(key)
            if running is None or running[1] != interval_s:
                if running is not None:
                    running[0].cancel()
                self._tasks[key] = (asyncio.create_task(self._poll(key, interval_s)), interval_s)
        return dropped

    @property
    def keys(self) -> frozenset[str]:
        """What is polled now."""
        return frozenset(self._tasks)

    async def _poll(self, key: str, interval_s: float) -> None:
        while True:
            try:
                await self._read(key)
            except Exception:  # a failed read must never stop polling
                log.exception("%s %s", self._what, key)
            await asyncio.sleep(interval_s)

    async def close(self) -> None:
        """Cancel every task and wait for them to end."""
        tasks = [task for task, _ in self._tasks.values()]
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
