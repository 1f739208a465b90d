"""`fleetroute bench NAME`: run one benchmark; `--json` prints one JSON object per result."""

from __future__ import annotations

import argparse
import importlib
from typing import Protocol

# name -> module with configure(parser) and run(args) -> int. Loaded only when chosen.
BENCHMARKS: dict[str, tuple[str, str]] = {
    "proxy": (
        "fleetroute_router.bench.proxy",
        "latency and CPU the HTTP proxy adds, concrete model and bandit alias, streamed or "
        "not, against a minimal pass-through proxy",
    ),
    "fleet": (
        "fleetroute_router.bench.fleet",
        "goodput and energy per request on a heterogeneous simulated fleet vs round-robin "
        "and least-queue",
    ),
    "decision": (
        "fleetroute_router.bench.decision",
        "the served decision (features, LinUCB, endpoint pick) vs a bare-numpy LinUCB, then "
        "decision latency by arms and features vs a random choice",
    ),
    "learn": (
        "fleetroute_router.bench.learn",
        "quality learned live through the proxy with delayed feedback, against the offline "
        "replay of the same policy on real routing data",
    ),
    "tracing": ("fleetroute_router.bench.tracing", "latency tracing adds to the router: on vs off"),
    "grpc": (
        "fleetroute_router.bench.grpc_route",
        "gRPC Route (and Route + Report) decisions per second per router core",
    ),
    "soak": (
        "fleetroute_router.bench.soak",
        "router RSS while endpoints are replaced every second under a few hundred req/s",
    ),
}


class Benchmark(Protocol):
    def configure(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...


def _load(module: str) -> Benchmark:
    loaded: Benchmark = importlib.import_module(module)
    return loaded


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="benchmark", required=True, metavar="BENCHMARK")
    for name, (module, summary) in BENCHMARKS.items():
        bench_parser = sub.add_parser(name, help=summary, description=summary)
        bench_parser.add_argument("--json", action="store_true", help="print JSON results only")
        _load(module).configure(bench_parser)


def run(args: argparse.Namespace) -> int:
    return _load(BENCHMARKS[args.benchmark][0]).run(args)
