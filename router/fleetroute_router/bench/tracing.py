"""`fleetroute bench tracing`: the latency tracing adds to the router, on vs off, in one run.

An instant simulated backend and two `fleetroute serve --config` processes on 127.0.0.1 run
side by side: one without OTEL_* variables (tracing off: no spans are created) and one exporting
every request's spans (sampler always_on unless $OTEL_TRACES_SAMPLER says otherwise; the other
OTEL_* variables, e.g. OTEL_BSP_MAX_EXPORT_BATCH_SIZE, apply too) over OTLP/gRPC, to
$OTEL_EXPORTER_OTLP_ENDPOINT when
set (e.g. a real Jaeger), else to an OTLP sink (a child process) that accepts and drops them.
Open-loop load at --rate alternates between the two routers in rounds; the cost of tracing is
the difference of their latency percentiles.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from fleetroute_router.bench import harness
from fleetroute_router.bench.proxy import MODEL, _config

ALIAS = "bench/alias"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rate", type=float, default=300.0, help="requests per second")
    parser.add_argument("--seconds", type=float, default=3.0, help="per router and round")
    parser.add_argument("--rounds", type=int, default=3)


class Sink(trace_service_pb2_grpc.TraceServiceServicer):
    """An OTLP trace receiver that counts spans (into a file) and drops them."""

    def __init__(self, count_file: Path) -> None:
        self.spans, self.count_file = 0, count_file

    async def Export(
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: Any
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        for resource in request.resource_spans:
            self.spans += sum(len(scope.spans) for scope in resource.scope_spans)
        self.count_file.write_text(str(self.spans))
        return trace_service_pb2.ExportTraceServiceResponse()


async def sink(port: int, count_file: Path) -> None:
    """Serve the OTLP sink on 127.0.0.1:port until terminated."""
    server = grpc.aio.server()
    servicer = Sink(count_file)
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(servicer, server)  # type: ignore[no-untyped-call]
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


async def _wait_port(port: int, timeout_s: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while loop.time() < deadline:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.1)
            continue
        writer.close()
        await writer.wait_closed()
        return
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout_s}s")


@contextlib.contextmanager
def _environment(values: dict[str, str | None]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    try:
        for key, value in values.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


async def measure(rate: float, seconds: float, rounds: int) -> dict[str, Any]:
    backend_port, off_port, on_port, sink_port = harness.free_ports(4)
    backend = f"127.0.0.1:{backend_port}"
    routers = {"off": f"127.0.0.1:{off_port}", "on": f"127.0.0.1:{on_port}"}
    otel_vars = [k for k in os.environ if k.startswith("OTEL_")]
    endpoint = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    children = harness.Children()
    count_file = children.path("spans")
    spans: int | None = None
    try:
        if not endpoint:
            await children.python(
                "-m", "fleetroute_router.bench.tracing", str(sink_port), str(count_file)
            )
            await _wait_port(sink_port)
            endpoint = f"http://127.0.0.1:{sink_port}"
        await children.python(
            "-m", "fleetroute_router.sim", "--port", str(backend_port), "--model", MODEL,
            "--speed", "0", "--max-batch", "4096",
        )  # fmt: skip
        config = str(children.write_config(_config(backend)))
        for name, address in routers.items():
            env: dict[str, str | None] = dict.fromkeys(otel_vars)  # off: no OTEL_* at all
            if name == "on":  # the caller's OTEL_* (e.g. OTEL_BSP_*) apply, with these defaults
                env = {
                    "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
                    "OTEL_TRACES_SAMPLER": os.environ.get("OTEL_TRACES_SAMPLER", "always_on"),
                    "OTEL_SERVICE_NAME": os.environ.get("OTEL_SERVICE_NAME", "fleetroute-bench"),
                }
            with _environment(env):
                await children.python(
                    "-m", "fleetroute", "--log-level", "WARNING", "serve", "--config", config,
                    "--no-simulate", "--http", address, "--grpc", "127.0.0.1:0",
                    "--ext-proc", "", "--admin", "",
                )  # fmt: skip
        for address in [backend, *routers.values()]:
            await harness.wait_ready(f"http://{address}/health")
        latencies: dict[str, list[float]] = {name: [] for name in routers}
        failures = dict.fromkeys(routers, 0)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1024)) as session:
            for address in routers.values():  # warm-up
                await harness.chat_load(
                    session, f"http://{address}/v1/chat/completions", ALIAS, rate, 0.5
                )
            for _ in range(rounds):
                for name, address in routers.items():
                    url = f"http://{address}/v1/chat/completions"
                    found, failed, _ = await harness.chat_load(session, url, ALIAS, rate, seconds)
                    latencies[name] += found
                    failures[name] += failed
        await asyncio.sleep(6.0)  # the exporter's batch delay (5 s): let the last spans arrive
        spans = int(count_file.read_text()) if count_file.is_file() else None
    finally:
        await children.close()
    ms = {
        name: {q: 1000 * harness.percentile(values, q) for q in (50, 90, 99)}
        for name, values in latencies.items()
    }
    result: dict[str, Any] = {
        "added_p50_ms": round(ms["on"][50] - ms["off"][50], 3),
        "added_p90_ms": round(ms["on"][90] - ms["off"][90], 3),
        "added_p99_ms": round(ms["on"][99] - ms["off"][99], 3),
        "off_p50_ms": round(ms["off"][50], 3),
        "off_p99_ms": round(ms["off"][99], 3),
        "on_p50_ms": round(ms["on"][50], 3),
        "on_p99_ms": round(ms["on"][99], 3),
        "target_rps": rate,
        "requests_per_router": len(latencies["on"]) + failures["on"],
        "failed_off": failures["off"],
        "failed_on": failures["on"],
        "exported_to": "OTLP sink process" if spans is not None else endpoint,
    }
    if spans is not None:
        result["spans_received"] = spans
    return result


def main(argv: list[str]) -> None:
    """`python -m fleetroute_router.bench.tracing PORT COUNT_FILE`: the OTLP sink process."""
    asyncio.run(sink(int(argv[0]), Path(argv[1])))


def run(args: argparse.Namespace) -> int:
    result = asyncio.run(measure(args.rate, args.seconds, args.rounds))
    harness.emit(result, args.json, "fleetroute bench tracing (router latency, tracing on - off)")
    return 0


if __name__ == "__main__":
    main(sys.argv[1:])
