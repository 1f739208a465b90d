"""`fleetroute bench proxy`: latency the router adds, against calling the backend directly.

An instant simulated backend and `fleetroute serve --config` run as child processes on
127.0.0.1. Open-loop load at --rate alternates, in rounds, between the backend directly and the
proxy in front of it; the added latency is the difference of the two paths' percentiles.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

import aiohttp

from fleetroute.v1alpha1 import config_pb2
from fleetroute_router.bench import harness

MODEL = "bench/echo-1B"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rate", type=float, default=1000.0, help="requests per second")
    parser.add_argument("--seconds", type=float, default=2.0, help="per path and round")
    parser.add_argument("--rounds", type=int, default=3)


def _config(backend: str) -> config_pb2.RouterConfig:
    config = config_pb2.RouterConfig()
    pool = config.pools.add(
        name="echo", model=MODEL, role=config_pb2.ROLE_UNIFIED, gpus_per_replica=1
    )
    pool.gpu.product, pool.gpu.idle_watts, pool.gpu.max_watts = "NVIDIA-L4", 16, 72
    pool.endpoints.add(address=backend, ready=True)
    config.policies.add(
        name="bench", model_alias="bench/alias", candidates=["echo"],
        objective=config_pb2.Objective(latency=1), algorithm=config_pb2.Algorithm(name="static"),
    )  # fmt: skip
    return config


async def measure(rate: float, seconds: float, rounds: int) -> dict[str, Any]:
    backend_port, proxy_port = harness.free_ports(2)
    backend = f"127.0.0.1:{backend_port}"
    proxy = f"127.0.0.1:{proxy_port}"
    children = harness.Children()
    try:
        await children.python(
            "-m", "fleetroute_router.sim", "--port", str(backend_port), "--model", MODEL,
            "--speed", "0", "--max-batch", "4096",
        )  # fmt: skip
        config = children.write_config(_config(backend))
        router = await children.python(
            "-m", "fleetroute", "--log-level", "WARNING", "serve", "--config", str(config),
            "--no-simulate", "--http", proxy, "--grpc", "127.0.0.1:0", "--ext-proc", "",
            "--admin", "",
        )  # fmt: skip
        await harness.wait_ready(f"http://{backend}/health")
        await harness.wait_ready(f"http://{proxy}/health")
        paths = {"direct": backend, "proxy": proxy}
        latencies: dict[str, list[float]] = {"direct": [], "proxy": []}
        failures = {"direct": 0, "proxy": 0}
        proxy_seconds = 0.0
        connector = aiohttp.TCPConnector(limit=1024)
        async with aiohttp.ClientSession(connector=connector) as session:
            for address in paths.values():  # warm-up: connections, caches
                await harness.chat_load(
                    session, f"http://{address}/v1/chat/completions", MODEL, rate, 1.0
                )
            cpu_before = harness.cpu_seconds(router.pid)
            for _ in range(rounds):
                for name, address in paths.items():
                    url = f"http://{address}/v1/chat/completions"
                    found, failed, elapsed = await harness.chat_load(
                        session, url, MODEL, rate, seconds
                    )
                    latencies[name] += found
                    failures[name] += failed
                    if name == "proxy":
                        proxy_seconds += elapsed
            cpu = harness.cpu_seconds(router.pid) - cpu_before
    finally:
        await children.close()
    ms = {
        name: {q: 1000 * harness.percentile(values, q) for q in (50, 99)}
        for name, values in latencies.items()
    }
    return {
        "added_p50_ms": round(ms["proxy"][50] - ms["direct"][50], 3),
        "added_p99_ms": round(ms["proxy"][99] - ms["direct"][99], 3),
        "achieved_rps": round(len(latencies["proxy"]) / proxy_seconds, 1) if proxy_seconds else 0,
        "target_rps": rate,
        "direct_p50_ms": round(ms["direct"][50], 3),
        "direct_p99_ms": round(ms["direct"][99], 3),
        "proxy_p50_ms": round(ms["proxy"][50], 3),
        "proxy_p99_ms": round(ms["proxy"][99], 3),
        "requests_per_path": len(latencies["proxy"]) + failures["proxy"],
        "proxy_cpu_ms_per_request": round(1000 * cpu / max(len(latencies["proxy"]), 1), 3),
        "failed_direct": failures["direct"],
        "failed_proxy": failures["proxy"],
    }


def run(args: argparse.Namespace) -> int:
    result = asyncio.run(measure(args.rate, args.seconds, args.rounds))
    harness.emit(result, args.json, "fleetroute bench proxy (goal: p50 <= 1 ms, p99 <= 5 ms)")
    return 0
