"""`fleetroute bench grpc`: gRPC Route (and Route + Report) decisions per second per core.

`fleetroute serve` runs as a child process on 127.0.0.1 with a LinUCB alias over ARMS pools
(every endpoint one instant simulated backend, so scraping and breakers behave as in serving).
A closed loop of --concurrency callers in this process sends Route for a typical prompt, and in
the `route+report` mode also Report with the measured outcome (which teaches every objective).
The same callers then load a bare grpc.aio server with canned answers (bench/grpcfloor.py),
the floor, in the same run. The callers use CHANNELS connections, so that --workers each get
some. Each server's CPU time over its run (Linux /proc, with a supervisor's workers) makes
the per-core figure honest: decisions per server CPU-second, whatever the client and the rest
of the machine take.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import time
from typing import Any

import grpc
from google.protobuf import duration_pb2

from fleetroute.v1alpha1 import config_pb2, router_pb2, router_pb2_grpc
from fleetroute_router import runtime
from fleetroute_router.bench import harness
from fleetroute_router.bench.decision import PROMPT

ALIAS = "bench/alias"
MODEL = "bench/echo-1B"
ARMS = 16
MODES = ("route", "route+report")
GOAL_PER_CORE = 3000.0
CHANNELS = 8
FLOOR_FIELDS = ("decisions_per_s", "decisions_per_core_s", "router_cpu_us_per_decision", "errors")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--mode", action="append", choices=MODES, help="default: both")
    parser.add_argument("--seconds", type=float, default=5.0, help="per mode")
    parser.add_argument("--concurrency", type=int, default=32, help="callers in flight")
    parser.add_argument("--arms", type=int, default=ARMS, help="pools under the alias")
    parser.add_argument("--workers", type=int, default=1, help="fleetroute serve --workers")
    parser.add_argument(
        "--event-loop", choices=runtime.LOOPS, default=runtime.default_loop(),
        help="the router's event loop (fleetroute serve --event-loop)",
    )  # fmt: skip


def bench_config(backend: str, arms: int) -> config_pb2.RouterConfig:
    """A LinUCB alias over `arms` pools whose endpoints are all the one backend."""
    config = config_pb2.RouterConfig()
    for i in range(arms):
        pool = config.pools.add(
            name=f"pool-{i}", model=MODEL, role=config_pb2.ROLE_UNIFIED, gpus_per_replica=1
        )
        pool.gpu.product, pool.gpu.idle_watts, pool.gpu.max_watts = "NVIDIA-L4", 16, 72
        pool.endpoints.add(address=backend, ready=True)
    config.policies.add(
        name="bench", model_alias=ALIAS, candidates=[p.name for p in config.pools],
        objective=config_pb2.Objective(quality=0.5, latency=0.2, energy=0.2, cost=0.1),
        algorithm=config_pb2.Algorithm(name="linucb"),
    )  # fmt: skip
    return config


def _report(decision_id: str) -> router_pb2.Feedback:
    return router_pb2.Feedback(
        decision_id=decision_id,
        success=True,
        ttft=duration_pb2.Duration(nanos=40_000_000),
        e2e_latency=duration_pb2.Duration(nanos=120_000_000),
        prompt_tokens=60,
        completion_tokens=8,
    )


async def _callers(
    target: str, report: bool, seconds: float, concurrency: int, channels: int = CHANNELS
) -> tuple[int, int]:
    """Decisions made and calls failed by `concurrency` closed-loop callers over `seconds`,
    spread over `channels` connections (so that --workers see several)."""
    request = router_pb2.RouteRequest(model=ALIAS, prompt=PROMPT, max_tokens=16)
    made, failed = 0, 0
    async with contextlib.AsyncExitStack() as stack:
        stubs = [
            router_pb2_grpc.RouterStub(
                await stack.enter_async_context(grpc.aio.insecure_channel(target))
            )
            for _ in range(max(1, min(channels, concurrency)))
        ]
        deadline = time.monotonic() + seconds

        async def caller(stub: router_pb2_grpc.RouterAsyncStub) -> None:
            nonlocal made, failed
            while time.monotonic() < deadline:
                try:
                    decision = await stub.Route(request)
                    if report:
                        await stub.Report(_report(decision.decision_id))
                    made += 1
                except grpc.aio.AioRpcError:
                    failed += 1

        await asyncio.gather(*(caller(stubs[i % len(stubs)]) for i in range(concurrency)))
    return made, failed


def _row(
    mode: str, made: int, failed: int, elapsed: float, router_cpu: float, client_cpu: float
) -> dict[str, Any]:
    per_core = made / router_cpu if router_cpu > 0 else 0.0
    return {
        "benchmark": "grpc",
        "mode": mode,
        "decisions": made,
        "errors": failed,
        "seconds": round(elapsed, 2),
        "decisions_per_s": round(made / elapsed, 1) if elapsed else 0.0,
        "router_cpu_s": round(router_cpu, 2),
        "router_cores": round(router_cpu / elapsed, 2) if elapsed else 0.0,
        "client_cpu_s": round(client_cpu, 2),
        "decisions_per_core_s": round(per_core, 1),
        "router_cpu_us_per_decision": round(1e6 * router_cpu / made, 1) if made else 0.0,
        "goal_per_core_s": GOAL_PER_CORE,
        "meets_goal": bool(failed == 0 and per_core >= GOAL_PER_CORE),
    }


async def measure(
    modes: list[str],
    seconds: float,
    concurrency: int,
    arms: int = ARMS,
    event_loop: str = "asyncio",
    workers: int = 1,
) -> list[dict[str, Any]]:
    """One row per mode and server (see the module docstring)."""
    backend_port, http_port, grpc_port, floor_port = harness.free_ports(4)
    backend = f"127.0.0.1:{backend_port}"
    children = harness.Children()
    rows = []
    try:
        await children.python(
            "-m", "fleetroute_router.sim", "--port", str(backend_port), "--model", MODEL,
            "--speed", "0",
        )  # fmt: skip
        floor = await children.python(
            "-m", "fleetroute_router.bench.grpcfloor", "--port", str(floor_port),
            "--arms", str(arms), "--event-loop", event_loop,
        )  # fmt: skip
        config = children.write_config(bench_config(backend, arms))
        router = await children.python(
            "-m", "fleetroute", "--log-level", "WARNING", "serve", "--config", str(config),
            "--no-simulate", "--http", f"127.0.0.1:{http_port}",
            "--grpc", f"127.0.0.1:{grpc_port}", "--ext-proc", "",
            "--event-loop", event_loop, "--workers", str(workers), "--admin", "",
            # The Route row never reports: lift the limit on routes awaiting their Report
            # (a guard against abuse, not part of the decision's cost).
            "--max-unreported", "1000000", "--max-unreported-per-client", "1000000",
        )  # fmt: skip
        for address in (backend, f"127.0.0.1:{http_port}"):
            await harness.wait_ready(f"http://{address}/health")
        servers = {"fleetroute": (f"127.0.0.1:{grpc_port}", router.pid),
                   "floor": (f"127.0.0.1:{floor_port}", floor.pid)}  # fmt: skip
        for target, _ in servers.values():  # warm-up (and the floor's start-up)
            await _ready(target)
            await _callers(target, True, min(1.0, seconds), concurrency)
        for mode in modes:
            found: dict[str, dict[str, Any]] = {}
            for name, (target, pid) in servers.items():
                server_before = harness.tree_cpu_seconds(pid)
                client_before = time.process_time()
                started = time.monotonic()
                made, failed = await _callers(target, mode == "route+report", seconds, concurrency)
                elapsed = time.monotonic() - started
                server_cpu = harness.tree_cpu_seconds(pid) - server_before
                client_cpu = time.process_time() - client_before
                found[name] = _row(mode, made, failed, elapsed, server_cpu, client_cpu)
            row, base = found["fleetroute"], found["floor"]
            row["floor"] = {k: base[k] for k in FLOOR_FIELDS}
            per_core = base["decisions_per_core_s"]
            row["ratio_to_floor_per_core"] = (
                round(row["decisions_per_core_s"] / per_core, 2) if per_core else 0.0
            )
            rows.append(row)
    finally:
        await children.close()
    return rows


async def _ready(target: str, timeout_s: float = 60.0) -> None:
    async with grpc.aio.insecure_channel(target) as channel:
        await asyncio.wait_for(channel.channel_ready(), timeout_s)


def run(args: argparse.Namespace) -> int:
    rows = asyncio.run(
        measure(
            args.mode or list(MODES),
            args.seconds,
            args.concurrency,
            args.arms,
            args.event_loop,
            args.workers,
        )
    )
    for row in rows:
        row["router_event_loop"] = args.event_loop
        row["workers"] = args.workers
    for row in rows:
        if args.json:
            harness.emit(row, True, "")
            continue
        print(
            f"gRPC {row['mode']:>12}: {row['decisions_per_s']:8.1f} decisions/s with the router "
            f"at {row['router_cores']:.2f} cores -> {row['decisions_per_core_s']:8.1f} per core-s "
            f"({row['router_cpu_us_per_decision']:.0f} µs CPU each; goal >= {GOAL_PER_CORE:.0f}), "
            f"{row['errors']} errors; bare grpc.aio floor "
            f"{row['floor']['decisions_per_core_s']:.0f} per core-s "
            f"(x{row['ratio_to_floor_per_core']}); client CPU {row['client_cpu_s']:.1f} s; "
            f"{os.cpu_count()} cores on this machine"
        )
    return 0
