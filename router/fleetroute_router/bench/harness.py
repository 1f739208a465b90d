"""Shared pieces of the data-plane benchmarks: child processes, ports, open-loop load."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import IO, Any

import aiohttp

from fleetroute import routerconfig
from fleetroute.v1alpha1 import config_pb2


def free_ports(count: int) -> list[int]:
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket())
            sock.bind(("127.0.0.1", 0))
            ports.append(sock.getsockname()[1])
        return ports


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(pid: int) -> float:
    """CPU time of a process and its live children (serve --workers: supervisor + workers)."""
    total = cpu_seconds(pid)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        if int(fields[1]) == pid:
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) by nearest rank; 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100.0 * len(ordered) + 0.5) - 1))
    return ordered[rank]


class Children:
    """Child processes started for a benchmark; all killed on exit."""

    def __init__(self) -> None:
        self._processes: list[asyncio.subprocess.Process] = []
        self._dir = tempfile.TemporaryDirectory(prefix="fleetroute-bench-")

    def path(self, name: str) -> Path:
        return Path(self._dir.name) / name

    def write_config(self, config: config_pb2.RouterConfig) -> Path:
        path = self.path("router-config.json")
        path.write_text(routerconfig.dumps(config))
        return path

    async def start(
        self, *args: str, env: dict[str, str] | None = None, log: str = ""
    ) -> asyncio.subprocess.Process:
        """Start a child; with `log`, its stdout and stderr go to that file of the temporary
        directory (read it with `log_tail`), else nowhere."""
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        with contextlib.ExitStack() as stack:
            output: int | IO[bytes] = asyncio.subprocess.DEVNULL
            if log:
                output = stack.enter_context(self.path(log).open("ab"))
            process = await asyncio.create_subprocess_exec(
                *args, stdout=output, stderr=output, env=env
            )
        self._processes.append(process)
        return process

    def log_tail(self, log: str, lines: int = 40) -> str:
        """The last lines a child started with `log` wrote ("" when it wrote nothing)."""
        path = self.path(log)
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    async def python(self, *args: str, log: str = "") -> asyncio.subprocess.Process:
        return await self.start(sys.executable, *args, log=log)

    async def close(self) -> None:
        for process in self._processes:
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.terminate()
        for process in self._processes:
            try:
                async with asyncio.timeout(10):
                    await process.wait()
            except TimeoutError:
                process.kill()
                await process.wait()
        self._dir.cleanup()


async def wait_ready(url: str, timeout_s: float = 60.0) -> None:
    """Poll url until it answers 200."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    async with aiohttp.ClientSession() as session:
        while loop.time() < deadline:
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(url) as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} did not become ready within {timeout_s}s")


async def open_loop(
    send: Callable[[int], Coroutine[Any, Any, Any]], rate: float, count: int
) -> tuple[list[Any], float]:
    """Start send(i) at i / rate seconds whatever the earlier ones do; (results, seconds)."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    tasks: list[asyncio.Task[Any]] = []
    for i in range(count):
        delay = start + i / rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(send(i)))
    results = await asyncio.gather(*tasks)
    return list(results), loop.time() - start


async def chat_load(
    session: aiohttp.ClientSession, url: str, model: str, rate: float, seconds: float
) -> tuple[list[float], int, float]:
    """An open-loop load of one-token chat requests: latencies of the answered ones (s), the
    count that failed, and the elapsed time."""
    body = {"model": model, "messages": [{"role": "user", "content": "ping"}], "max_tokens": 1}

    async def send(_: int) -> float | None:
        started = time.perf_counter()
        try:
            async with session.post(url, json=body) as response:
                await response.read()
                if response.status != 200:
                    return None
        except aiohttp.ClientError:
            return None
        return time.perf_counter() - started

    results, elapsed = await open_loop(send, rate, int(rate * seconds))
    latencies = [r for r in results if r is not None]
    return latencies, len(results) - len(latencies), elapsed


# After an answer: what the load generator does next with it (e.g. send feedback); not timed.
AfterAnswer = Callable[[aiohttp.ClientResponse], Coroutine[Any, Any, None]]


async def request_load(
    session: aiohttp.ClientSession,
    url: str,
    body: bytes,
    rate: float,
    seconds: float,
    *,
    stream: bool = False,
    after: AfterAnswer | None = None,
) -> tuple[list[float], int, float]:
    """An open-loop load of one JSON body: latencies of the answered ones (s; to the first
    chunk of the body when `stream`), the count that failed, and the elapsed time."""
    headers = {"Content-Type": "application/json"}

    async def send(_: int) -> float | None:
        started = time.perf_counter()
        try:
            async with session.post(url, data=body, headers=headers) as response:
                if stream:
                    first = await response.content.readany()
                    latency = time.perf_counter() - started
                    while await response.content.readany():
                        pass
                    ok = bool(first)
                else:
                    await response.read()
                    latency = time.perf_counter() - started
                    ok = True
                if response.status != 200 or not ok:
                    return None
                if after is not None:
                    await after(response)
        except aiohttp.ClientError:
            return None
        return latency

    results, elapsed = await open_loop(send, rate, int(rate * seconds))
    latencies = [r for r in results if r is not None]
    return latencies, len(results) - len(latencies), elapsed


def emit(result: dict[str, Any], as_json: bool, title: str) -> None:
    if as_json:
        print(json.dumps(result, sort_keys=True))
        return
    print(title)
    for key, value in result.items():
        print(f"  {key}: {value}")
