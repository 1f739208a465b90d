"""`fleetroute bench fleet`: goodput and energy per request of fleetroute against round-robin and
least-queue routing, on one heterogeneous fleet and one open-loop trace.

The fleet serves one model on different hardware: a fast H100 pool, a slow L4 pool, a mid A10G
endpoint and an H100 prefill/decode pair. It is made of llm-d-inference-sim processes when the
binary can be had (the H100, L40S and A100 latency profiles of llmd.PROFILES for the fast, slow and
mid pools, per-token prefill time, prefix cache on, KV transfer for the P/D pair), else of
fleetroute's simulated servers (latency from the GPU model, sim/README.md), which also meter
their energy; `--backend` forces one.
Each strategy gets a fresh fleet and the same trace; goodput = requests meeting both the TTFT and
the TPOT SLO per second of trace.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import itertools
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from fleetroute.v1alpha1 import config_pb2
from fleetroute_router.bench import harness, llmd

MODEL = "bench/model-8B"
SYSTEM = "You are the fleet's assistant. Answer briefly and precisely. " * 30


@dataclass(frozen=True)
class PoolSpec:
    name: str
    gpu: str
    count: int
    role: str = "unified"
    peer: str = ""
    # llm-d-inference-sim latency profile (llmd.PROFILES)
    profile: str = "H100"
    idle_watts: float = 16
    max_watts: float = 72


H100 = "NVIDIA-H100-80GB-HBM3"
# fmt: off
POOLS = (
    PoolSpec("fast", H100, 2, idle_watts=70, max_watts=700),
    PoolSpec("slow", "NVIDIA-L4", 4, profile="L40S"),
    PoolSpec("mid", "NVIDIA-A10G", 2, profile="A100", idle_watts=25, max_watts=150),
    PoolSpec("pd-prefill", H100, 1, "prefill", "pd-decode", idle_watts=70, max_watts=700),
    PoolSpec("pd-decode", H100, 1, "decode", "pd-prefill", idle_watts=70, max_watts=700),
)
# The sims' slow-down at full batch (the H100 profile of the sim's docs/latency-profiles.md).
TIME_FACTOR_UNDER_LOAD = 2.0
BACKENDS = ("auto", "llm-d-inference-sim", "fleetroute-sim")
# fmt: on
ROLES = {"unified": 1, "prefill": 2, "decode": 3}


@dataclass(frozen=True)
class Request:
    at: float
    prompt: str
    max_tokens: int


def trace(rate: float, seconds: float, seed: int) -> list[Request]:
    """Poisson arrivals; prompts of 100-2,000 tokens, a third sharing a long system prompt."""
    rng = random.Random(seed)  # noqa: S311 (a benchmark trace)
    requests: list[Request] = []
    now = 0.0
    while True:
        now += rng.expovariate(rate)
        if now >= seconds:
            return requests
        tokens = rng.choice((100, 300, 800, 2000))
        body = " ".join(f"w{rng.randrange(10_000)}" for _ in range(tokens * 4 // 6))
        prompt = (SYSTEM + body) if rng.random() < 1 / 3 else body
        requests.append(Request(now, prompt, rng.randint(16, 64)))


def router_config(addresses: dict[str, list[str]], ttft_s: float, tpot_s: float) -> Any:
    config = config_pb2.RouterConfig()
    for spec in POOLS:
        pool = config.pools.add(
            name=spec.name, model=MODEL, role=ROLES[spec.role], peer_pool=spec.peer,
            gpus_per_replica=1,
            gpu=config_pb2.GpuFigures(
                product=spec.gpu, idle_watts=spec.idle_watts, max_watts=spec.max_watts
            ),
        )  # fmt: skip
        for address in addresses[spec.name]:
            pool.endpoints.add(address=address, ready=True)
    policy = config.policies.add(
        name="bench", model_alias="bench/chat",
        candidates=[s.name for s in POOLS if s.role != "prefill"],
        objective=config_pb2.Objective(latency=0.8, energy=0.2),
        algorithm=config_pb2.Algorithm(name="linucb", parameters={"alpha": 0.5}),
        min_uncached_prompt_tokens=512,
    )  # fmt: skip
    policy.slo.ttft.FromNanoseconds(int(ttft_s * 1e9))
    policy.slo.tpot.FromNanoseconds(int(tpot_s * 1e9))
    return config


def sim_binary(backend: str) -> Path | None:
    """The llm-d-inference-sim binary for `backend` (None: fleetroute's simulator)."""
    if backend == "fleetroute-sim":
        return None
    try:
        return llmd.find_binary()
    except llmd.Unavailable:
        if backend == "auto":
            return None
        raise


async def start_fleet(
    children: harness.Children, speed: float, backend: str = "auto"
) -> tuple[dict[str, list[str]], str]:
    """Start every pool's servers; returns their addresses and the backend's name."""
    addresses: dict[str, list[str]] = {}
    binary = sim_binary(backend)
    for spec in POOLS:
        ports = harness.free_ports(spec.count)
        addresses[spec.name] = [f"127.0.0.1:{p}" for p in ports]
        if binary is not None:
            for port in ports:
                process = llmd.SimProcess(
                    binary, MODEL, port=port, profile=llmd.PROFILES[spec.profile], per_token=True,
                    scale=speed, kvcache=True, max_num_seqs=32,
                    extra=("--time-factor-under-load", str(TIME_FACTOR_UNDER_LOAD)),
                )  # fmt: skip
                await children.start(*process.args, env=llmd.ENV)
        else:
            await children.python(
                "-m", "fleetroute_router.sim", "--model", MODEL, "--gpu", spec.gpu,
                "--role", spec.role, "--speed", str(speed),
                *itertools.chain.from_iterable(("--port", str(p)) for p in ports),
            )  # fmt: skip
    for address in itertools.chain.from_iterable(addresses.values()):
        await harness.wait_ready(f"http://{address}/v1/models")
    return addresses, "llm-d-inference-sim" if binary is not None else "fleetroute-sim"


async def fleet_energy(session: aiohttp.ClientSession, addresses: list[str]) -> float | None:
    """Sum of the simulated servers' energy meters (None when they have none)."""
    total = 0.0
    for address in addresses:
        async with session.get(f"http://{address}/metrics") as response:
            text = await response.text()
        found = [line for line in text.splitlines() if line.startswith("fleetroute_sim_energy")]
        if not found:
            return None
        total += float(found[0].split()[-1])
    return total


@dataclass(frozen=True)
class Served:
    ok: bool
    ttft: float = 0.0
    tpot: float = 0.0
    pool: str = ""


async def stream(session: aiohttp.ClientSession, url: str, model: str, request: Request) -> Served:
    body = {
        "model": model,
        "messages": [{"role": "user", "content": request.prompt}],
        "max_tokens": request.max_tokens,
        "stream": True,
    }
    started = time.perf_counter()
    first = None
    tokens = 0
    try:
        async with session.post(url, json=body) as response:
            if response.status != 200:
                return Served(False)
            pool = response.headers.get("x-fleetroute-pool", "")
            async for line in response.content:
                if line.startswith(b"data: {") and (b'"content"' in line or b'"text"' in line):
                    tokens += 1
                    if first is None:
                        first = time.perf_counter()
    except (aiohttp.ClientError, TimeoutError):
        return Served(False)
    if first is None:
        return Served(False)
    end = time.perf_counter()
    return Served(True, first - started, (end - first) / max(tokens - 1, 1), pool)


Chooser = Callable[[], str]


async def run_strategy(
    strategy: str,
    requests: list[Request],
    speed: float,
    ttft_s: float,
    tpot_s: float,
    backend: str = "auto",
) -> dict[str, Any]:
    children = harness.Children()
    try:
        addresses, backend = await start_fleet(children, speed, backend)
        servers = [a for spec in POOLS for a in addresses[spec.name]]
        serving = [a for spec in POOLS if spec.role != "prefill" for a in addresses[spec.name]]
        in_flight = dict.fromkeys(serving, 0)
        turn = itertools.count()
        if strategy == "fleetroute":
            (port,) = harness.free_ports(1)
            config = children.write_config(router_config(addresses, ttft_s, tpot_s))
            await children.python(
                "-m", "fleetroute", "--log-level", "WARNING", "serve", "--config", str(config),
                "--no-simulate", "--http", f"127.0.0.1:{port}", "--grpc", "127.0.0.1:0",
                "--ext-proc", "", "--admin", "",
            )  # fmt: skip
            await harness.wait_ready(f"http://127.0.0.1:{port}/health")
        timeout = aiohttp.ClientTimeout(total=120)
        async with aiohttp.ClientSession(
            timeout=timeout, connector=aiohttp.TCPConnector(limit=0)
        ) as session:
            energy_before = await fleet_energy(session, servers)

            async def send(i: int) -> Served:
                request = requests[i]
                if strategy == "fleetroute":
                    url = f"http://127.0.0.1:{port}/v1/chat/completions"
                    return await stream(session, url, "bench/chat", request)
                if strategy == "round-robin":
                    target = serving[next(turn) % len(serving)]
                else:
                    fewest = min(in_flight.values())
                    tied = [a for a in serving if in_flight[a] == fewest]
                    target = tied[next(turn) % len(tied)]
                in_flight[target] += 1
                try:
                    url = f"http://{target}/v1/chat/completions"
                    return await stream(session, url, MODEL, request)
                finally:
                    in_flight[target] -= 1

            started = time.perf_counter()
            served = await _replay(send, requests)
            elapsed = time.perf_counter() - started
            energy_after = await fleet_energy(session, servers)
    finally:
        await children.close()
    duration = requests[-1].at if requests else 1.0
    good = [s for s in served if s.ok and s.ttft <= ttft_s and s.tpot <= tpot_s]
    completed = [s for s in served if s.ok]
    energy = (
        (energy_after - energy_before) / max(len(completed), 1)
        if energy_before is not None and energy_after is not None
        else None
    )
    return {
        "backend": backend,
        "goodput_rps": len(good) / duration,
        "completed": len(completed),
        "met_slo": len(good),
        "ttft_p50_s": harness.percentile([s.ttft for s in completed], 50),
        "tpot_p50_s": harness.percentile([s.tpot for s in completed], 50),
        "energy_per_request_j": energy,
        "makespan_s": elapsed,
        "pools": dict(collections.Counter(s.pool for s in completed if s.pool)),
    }


async def _replay(send: Callable[[int], Any], requests: list[Request]) -> list[Served]:
    loop = asyncio.get_running_loop()
    start = loop.time()
    tasks = []
    for i, request in enumerate(requests):
        delay = start + request.at - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(send(i)))
    return list(await asyncio.gather(*tasks))


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rate", type=float, default=12.0, help="mean arrivals per second")
    parser.add_argument("--seconds", type=float, default=30.0, help="trace length")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--speed", type=float, default=1.0, help="simulated latency scale")
    parser.add_argument("--ttft-slo", type=float, default=0.5, help="seconds")
    parser.add_argument("--tpot-slo", type=float, default=0.05, help="seconds per token")
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        default="auto",
        help="model servers: llm-d-inference-sim when it can be had (auto), or force one",
    )


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    requests = trace(args.rate, args.seconds, args.seed)
    runs = {}
    for strategy in ("fleetroute", "round-robin", "least-queue"):
        runs[strategy] = await run_strategy(
            strategy, requests, args.speed, args.ttft_slo, args.tpot_slo, args.backend
        )
    mine, rr, lq = runs["fleetroute"], runs["round-robin"], runs["least-queue"]

    def ratio(a: float | None, b: float | None) -> float | None:
        return round(a / b, 3) if a is not None and b else None

    return {
        "backend": mine["backend"],
        "goodput_vs_round_robin": ratio(mine["goodput_rps"], rr["goodput_rps"]),
        "goodput_vs_least_queue": ratio(mine["goodput_rps"], lq["goodput_rps"]),
        "energy_per_request_ratio_vs_round_robin": ratio(
            mine["energy_per_request_j"], rr["energy_per_request_j"]
        ),
        "requests": len(requests),
        "runs": {
            name: {k: round(v, 4) if isinstance(v, float) else v for k, v in run.items()}
            for name, run in runs.items()
        },
    }


def run(args: argparse.Namespace) -> int:
    result = asyncio.run(measure(args))
    if args.json:
        print(json.dumps(result, sort_keys=True))
    else:
        harness.emit(result, False, "fleetroute bench fleet (goal: >= 1.5x RR, >= 1.2x LQ)")
    return 0
