"""`fleetroute bench soak`: the router's memory while endpoints come and go under load.

`fleetroute serve --config` runs as a child process on 127.0.0.1 in front of simulated model
servers that this process starts and stops: every --churn seconds one endpoint is replaced by
a new one on a new port (as pods are rescheduled) and the config file is rewritten. An
open-loop load of one-token chat requests at --rate runs throughout, half through a policy
alias. The router's RSS is sampled; the growth is reported from the end of --warmup to the end.
The policy's feedback window is short (--feedback-window): decisions awaiting feedback are
bounded by window x rate by design, and would otherwise still be filling up after the warm-up.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

from fleetroute import routerconfig
from fleetroute.v1alpha1 import config_pb2
from fleetroute_router.bench import harness
from fleetroute_router.sim.model import ServerModel
from fleetroute_router.sim.server import SimServer

MODEL = "bench/soak-1B"
ALIAS = "bench/soak"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rate", type=float, default=300.0, help="requests per second")
    parser.add_argument(
        "--seconds", type=float, default=360.0, help="whole run (a multiple of --sample)"
    )
    parser.add_argument("--warmup", type=float, default=60.0, help="seconds before the baseline")
    parser.add_argument("--churn", type=float, default=1.0, help="seconds between replacements")
    parser.add_argument("--endpoints", type=int, default=4, help="endpoints at any time")
    parser.add_argument("--sample", type=float, default=30.0, help="seconds between RSS samples")
    parser.add_argument(
        "--prune-grace", type=float, default=5.0, help="the router's --prune-grace (seconds)"
    )
    parser.add_argument(
        "--feedback-window", type=float, default=15.0, help="the policy's feedbackWindow (s)"
    )


def rss_mib(pid: int) -> float:
    """Resident set size of a process (Linux /proc), MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def _config(addresses: list[str], window_s: float) -> config_pb2.RouterConfig:
    config = config_pb2.RouterConfig()
    pool = config.pools.add(name="soak", model=MODEL, gpus_per_replica=1)
    pool.gpu.product, pool.gpu.idle_watts, pool.gpu.max_watts = "NVIDIA-L4", 16, 72
    for address in addresses:
        pool.endpoints.add(address=address, ready=True)
    config.policies.add(
        name="soak", model_alias=ALIAS, candidates=["soak"],
        objective=config_pb2.Objective(latency=1, energy=1),
        algorithm=config_pb2.Algorithm(name="linucb"),
    )  # fmt: skip
    config.policies[0].feedback_window.FromMilliseconds(round(window_s * 1000))
    return config


class Churn:
    """Simulated servers, one replaced every period; the router's config file follows."""

    def __init__(self, path: Path, count: int, window_s: float) -> None:
        self.path, self.count, self.window_s = path, count, window_s
        self.timing = ServerModel.of(MODEL, "NVIDIA-L4", max_batch=4096, speed=0.0)
        self.live: list[SimServer] = []
        self.started = 0
        self._retiring: set[asyncio.Task[None]] = set()

    async def _new(self) -> SimServer:
        server = SimServer(MODEL, self.timing)
        await server.start()
        self.started += 1
        return server

    def _write(self) -> None:
        temporary = self.path.with_suffix(".tmp")
        config = _config([s.address for s in self.live], self.window_s)
        temporary.write_text(routerconfig.dumps(config))
        temporary.replace(self.path)  # atomic, as a ConfigMap update

    async def start(self) -> None:
        self.live = [await self._new() for _ in range(self.count)]
        self._write()

    async def run(self, period_s: float) -> None:
        """Replace the oldest server every period: the new one enters the config first, the old
        one leaves it, and stops a little later (requests still on their way finish)."""
        while True:
            await asyncio.sleep(period_s)
            old = self.live.pop(0)
            self.live.append(await self._new())
            self._write()
            task = asyncio.create_task(self._retire(old))
            self._retiring.add(task)
            task.add_done_callback(self._retiring.discard)

    @staticmethod
    async def _retire(server: SimServer) -> None:
        await asyncio.sleep(3.0)
        await server.stop()

    async def stop(self) -> None:
        for task in list(self._retiring):
            task.cancel()
        for server in self.live:
            await server.stop()


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    (proxy_port,) = harness.free_ports(1)
    proxy = f"127.0.0.1:{proxy_port}"
    children = harness.Children()
    churn = Churn(children.path("router-config.json"), args.endpoints, args.feedback_window)
    samples: list[tuple[float, float]] = []
    answered = failed = 0
    try:
        await churn.start()
        router = await children.python(
            "-m", "fleetroute", "--log-level", "WARNING", "serve",
            "--config", str(churn.path), "--no-simulate", "--http", proxy,
            "--grpc", "127.0.0.1:0", "--ext-proc", "", "--admin", "",
            "--reload-interval", "0.5", "--prune-grace", str(args.prune_grace),
        )  # fmt: skip
        await harness.wait_ready(f"http://{proxy}/health")
        churning = asyncio.create_task(churn.run(args.churn))
        started = time.monotonic()
        connector = aiohttp.TCPConnector(limit=1024)
        async with aiohttp.ClientSession(connector=connector) as session:
            url = f"http://{proxy}/v1/chat/completions"
            for chunk in range(max(1, round(args.seconds / args.sample))):
                model = ALIAS if chunk % 2 else MODEL
                found, lost, _ = await harness.chat_load(
                    session, url, model, args.rate, args.sample
                )
                answered, failed = answered + len(found), failed + lost
                samples.append((round(time.monotonic() - started, 1), rss_mib(router.pid)))
                print(  # progress on stderr: a run cut short still shows what it measured
                    f"soak {samples[-1][0]:.0f} s: RSS {samples[-1][1]:.1f} MiB, "
                    f"{answered} answered, {failed} failed",
                    file=sys.stderr,
                    flush=True,
                )
        churning.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await churning
    finally:
        await children.close()
        await churn.stop()
    after_warmup = [rss for at, rss in samples if at >= args.warmup] or [samples[-1][1]]
    return {
        "seconds": args.seconds,
        "prune_grace_s": args.prune_grace,
        "feedback_window_s": args.feedback_window,
        "target_rps": args.rate,
        "answered": answered,
        "failed": failed,
        "endpoints_started": churn.started,
        "rss_start_mib": round(samples[0][1], 1),
        "rss_after_warmup_mib": round(after_warmup[0], 1),
        "rss_end_mib": round(samples[-1][1], 1),
        "rss_growth_after_warmup_mib": round(samples[-1][1] - after_warmup[0], 2),
        "rss_samples_mib": [rss for _, rss in samples],
    }


def run(args: argparse.Namespace) -> int:
    result = asyncio.run(measure(args))
    harness.emit(
        result, args.json, "fleetroute bench soak (goal: <= 10 MiB RSS growth after warm-up)"
    )
    return 0
