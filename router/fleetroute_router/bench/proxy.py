"""`fleetroute bench proxy`: latency and CPU the router adds, against a minimal proxy (the floor).

An instant simulated backend, a minimal aiohttp pass-through proxy (bench/minproxy.py) and
`fleetroute serve --config` run as child processes on 127.0.0.1. At each rate and mode
(non-streamed; streamed, timed to the first body chunk) an open-loop load alternates, in rounds,
between four paths: the backend directly, the minimal proxy, fleetroute on a concrete model
(least-loaded over two pools) and fleetroute on a LinUCB alias over the same two pools with
quality feedback for every --feedback-every-th answer. Added latency is a path's percentile
minus the direct path's; ratios are against the minimal proxy's added latency and CPU per
request, measured in the same rounds, so whatever else runs on the machine hits both.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from fleetroute.v1alpha1 import config_pb2
from fleetroute_router import runtime
from fleetroute_router.bench import harness

MODEL = "bench/echo-1B"
ALIAS = "bench/alias"
RATES = (50.0, 200.0, 500.0, 1000.0)
MODES = ("non-stream", "stream")
PATHS = ("direct", "minproxy", "concrete", "alias")
GOAL_LATENCY, GOAL_CPU = 1.5, 1.3
# Streamed answers carry a few chunks so that per-chunk work is measured.
STREAM_TOKENS = 8


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--rate", type=float, action="append", help=f"req/s (repeatable; default {RATES})"
    )
    parser.add_argument("--mode", action="append", choices=MODES, help="default: both")
    parser.add_argument("--seconds", type=float, default=2.0, help="per path and round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--feedback-every", type=int, default=10, help="alias path: feedback for every Nth answer"
    )
    parser.add_argument("--workers", type=int, default=1, help="fleetroute serve --workers")
    parser.add_argument(
        "--event-loop", choices=runtime.LOOPS, default=runtime.default_loop(),
        help="the router's event loop (fleetroute serve --event-loop)",
    )  # fmt: skip


def _config(backend: str) -> config_pb2.RouterConfig:
    config = config_pb2.RouterConfig()
    for name in ("echo-a", "echo-b"):
        pool = config.pools.add(
            name=name, model=MODEL, role=config_pb2.ROLE_UNIFIED, gpus_per_replica=1
        )
        pool.gpu.product, pool.gpu.idle_watts, pool.gpu.max_watts = "NVIDIA-L4", 16, 72
        pool.endpoints.add(address=backend, ready=True)
    config.policies.add(
        name="bench", model_alias=ALIAS, candidates=["echo-a", "echo-b"],
        objective=config_pb2.Objective(quality=0.5, latency=0.5),
        algorithm=config_pb2.Algorithm(name="linucb"),
    )  # fmt: skip
    return config


def _body(model: str, stream: bool) -> bytes:
    body: dict[str, Any] = {
        "model": model,
        "messages": [{"role": "user", "content": "ping: what is two plus two?"}],
        "max_tokens": STREAM_TOKENS if stream else 1,
    }
    if stream:
        body["stream"] = True
    return json.dumps(body).encode()


@dataclass
class _Path:
    """What one path gathered over the rounds of one rate and mode."""

    latencies: list[float] = field(default_factory=list)
    failed: int = 0
    seconds: float = 0.0
    cpu_s: float = 0.0


def _feedback(session: aiohttp.ClientSession, url: str, every: int) -> harness.AfterAnswer:
    counter = itertools.count()

    async def after(response: aiohttp.ClientResponse) -> None:
        if every <= 0 or next(counter) % every:
            return
        decision = response.headers.get("x-fleetroute-decision-id", "")
        pool = response.headers.get("x-fleetroute-pool", "")
        grade = {"decision_id": decision, "score": 0.9 if pool == "echo-a" else 0.6}
        async with session.post(url, json=grade) as answer:
            await answer.read()

    return after


def _row(rate: float, mode: str, name: str, paths: dict[str, _Path]) -> dict[str, Any]:
    def ms(path: _Path, q: float) -> float:
        return 1000 * harness.percentile(path.latencies, q)

    direct, floor, path = paths["direct"], paths["minproxy"], paths[name]
    added = {q: ms(path, q) - ms(direct, q) for q in (50, 99)}
    floor_added = {q: ms(floor, q) - ms(direct, q) for q in (50, 99)}
    cpu_us = 1e6 * path.cpu_s / max(len(path.latencies), 1)
    floor_cpu_us = 1e6 * floor.cpu_s / max(len(floor.latencies), 1)

    def ratio(value: float, base: float) -> float:
        return round(value / base, 2) if base > 0 else float("inf")

    row: dict[str, Any] = {
        "benchmark": "proxy",
        "rate": rate,
        "mode": mode,
        "path": name,
        "achieved_rps": round(len(path.latencies) / path.seconds, 1) if path.seconds else 0.0,
        "requests": len(path.latencies) + path.failed,
        "errors": path.failed,
        "direct_p50_ms": round(ms(direct, 50), 3),
        "direct_p99_ms": round(ms(direct, 99), 3),
        "added_p50_ms": round(added[50], 3),
        "added_p99_ms": round(added[99], 3),
        "cpu_us_per_request": round(cpu_us, 1),
    }
    if name != "minproxy":
        row |= {
            "floor_added_p50_ms": round(floor_added[50], 3),
            "floor_added_p99_ms": round(floor_added[99], 3),
            "floor_cpu_us_per_request": round(floor_cpu_us, 1),
            "ratio_p50": ratio(added[50], floor_added[50]),
            "ratio_p99": ratio(added[99], floor_added[99]),
            "ratio_cpu": ratio(cpu_us, floor_cpu_us),
        }
        row["meets_goal"] = bool(
            path.failed == 0
            and row["ratio_p50"] <= GOAL_LATENCY
            and row["ratio_p99"] <= GOAL_LATENCY
            and row["ratio_cpu"] <= GOAL_CPU
        )
    return row


async def measure(
    rates: list[float],
    modes: list[str],
    seconds: float,
    rounds: int,
    feedback_every: int = 10,
    event_loop: str = "asyncio",
    workers: int = 1,
) -> list[dict[str, Any]]:
    """One row per rate, mode and non-direct path (see the module docstring)."""
    backend_port, floor_port, router_port, grpc_port = harness.free_ports(4)
    backend = f"127.0.0.1:{backend_port}"
    floor = f"127.0.0.1:{floor_port}"
    router_address = f"127.0.0.1:{router_port}"
    children = harness.Children()
    rows: list[dict[str, Any]] = []
    try:
        await children.python(
            "-m", "fleetroute_router.sim", "--port", str(backend_port), "--model", MODEL,
            "--speed", "0", "--max-batch", "4096",
        )  # fmt: skip
        minproxy = await children.python(
            "-m", "fleetroute_router.bench.minproxy", "--port", str(floor_port),
            "--backend", backend,
        )  # fmt: skip
        config = children.write_config(_config(backend))
        router = await children.python(
            "-m", "fleetroute", "--log-level", "WARNING", "serve", "--config", str(config),
            "--no-simulate", "--http", router_address, "--grpc", f"127.0.0.1:{grpc_port}",
            "--ext-proc", "", "--event-loop", event_loop, "--workers", str(workers),
            "--admin", "",
        )  # fmt: skip
        for address in (backend, floor, router_address):
            await harness.wait_ready(f"http://{address}/health")
        address_of = {
            "direct": backend,
            "minproxy": floor,
            "concrete": router_address,
            "alias": router_address,
        }
        process_of = {"minproxy": minproxy.pid, "concrete": router.pid, "alias": router.pid}
        connector = aiohttp.TCPConnector(limit=2048)
        async with aiohttp.ClientSession(connector=connector) as session:
            feedback_url = f"http://{router_address}/v1/feedback"
            for rate, mode in itertools.product(rates, modes):
                stream = mode == "stream"
                paths = {name: _Path() for name in PATHS}
                for name in PATHS:  # warm-up: connections, caches, the bandit's first updates
                    await _load(session, name, address_of, stream, rate, 0.5, feedback_url, 1)
                for _ in range(rounds):
                    for name in PATHS:
                        cpu = _cpu(process_of.get(name))
                        before = cpu()
                        found, failed, elapsed = await _load(
                            session, name, address_of, stream, rate, seconds,
                            feedback_url, feedback_every,
                        )  # fmt: skip
                        path = paths[name]
                        path.cpu_s += cpu() - before
                        path.latencies += found
                        path.failed += failed
                        path.seconds += elapsed
                rows += [_row(rate, mode, name, paths) for name in PATHS if name != "direct"]
    finally:
        await children.close()
    return rows


def _cpu(pid: int | None) -> Callable[[], float]:
    """CPU seconds so far of a process (0 for the direct path: no process in between)."""
    if pid is None:
        return lambda: 0.0
    return lambda: harness.tree_cpu_seconds(pid)  # serve --workers: with its workers


async def _load(
    session: aiohttp.ClientSession,
    name: str,
    address_of: dict[str, str],
    stream: bool,
    rate: float,
    seconds: float,
    feedback_url: str,
    feedback_every: int,
) -> tuple[list[float], int, float]:
    model = ALIAS if name == "alias" else MODEL
    after = _feedback(session, feedback_url, feedback_every) if name == "alias" else None
    url = f"http://{address_of[name]}/v1/chat/completions"
    return await harness.request_load(
        session, url, _body(model, stream), rate, seconds, stream=stream, after=after
    )


def _print(rows: list[dict[str, Any]]) -> None:
    print(
        f"fleetroute bench proxy (goal: every fleetroute row <= {GOAL_LATENCY}x the minimal "
        f"proxy's added p50 and p99, 0 errors, CPU/request <= {GOAL_CPU}x)"
    )
    print(
        f"{'rate':>6} {'mode':>10} {'path':>9} {'achieved':>9} {'added p50/p99 ms':>18} "
        f"{'ratio p50/p99':>14} {'CPU µs/req':>10} {'ratio':>6} {'errors':>6}"
    )
    for r in rows:
        ratios = f"{r['ratio_p50']}/{r['ratio_p99']}" if "ratio_p50" in r else "floor"
        print(
            f"{r['rate']:>6.0f} {r['mode']:>10} {r['path']:>9} {r['achieved_rps']:>9.1f} "
            f"{r['added_p50_ms']:>8.3f}/{r['added_p99_ms']:<9.3f} {ratios:>14} "
            f"{r['cpu_us_per_request']:>10.0f} {r.get('ratio_cpu', ''):>6} {r['errors']:>6}"
        )


def run(args: argparse.Namespace) -> int:
    rows = asyncio.run(
        measure(
            args.rate or list(RATES),
            args.mode or list(MODES),
            args.seconds,
            args.rounds,
            args.feedback_every,
            args.event_loop,
            args.workers,
        )
    )
    for row in rows:
        row["router_event_loop"] = args.event_loop
        row["workers"] = args.workers
    if args.json:
        for row in rows:
            print(json.dumps(row, sort_keys=True))
    else:
        _print(rows)
    return 0
