"""How `fleetroute serve` runs its process: the event loop it runs on and one BLAS thread.

uvloop (libuv) makes the socket reads and writes, callbacks and connects that dominate the
proxy's and gRPC's per-request CPU cheaper than asyncio's default loop (bench/README.md has the
figures); `asyncio` keeps the standard loop. A decision's numpy products are small: OpenBLAS
threads only spin on them and steal the core the event loop needs, so the process keeps one.
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from threadpoolctl import threadpool_limits

LOOPS = ("uvloop", "asyncio")
T = TypeVar("T")


def default_loop() -> str:
    """uvloop when it is installed (every platform but Windows), else asyncio."""
    return "uvloop" if importlib.util.find_spec("uvloop") is not None else "asyncio"


def loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The event loop constructor for `name` (None: asyncio's default)."""
    if name not in LOOPS:
        raise ValueError(f"unknown event loop {name!r} (known: {', '.join(LOOPS)})")
    if name == "asyncio":
        return None
    import uvloop  # optional: not on Windows

    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def single_blas_thread() -> None:
    """Limit the BLAS libraries numpy loaded to one thread, for the rest of the process."""
    threadpool_limits(limits=1, user_api="blas")


def run(main: Coroutine[Any, Any, T], loop: str) -> T:
    """Run `main` to completion on the named event loop."""
    with asyncio.Runner(loop_factory=loop_factory(loop)) as runner:
        return runner.run(main)
