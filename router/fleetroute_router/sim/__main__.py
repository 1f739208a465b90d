"""`python -m fleetroute_router.sim`: run simulated model servers (one per --port) until killed."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal

from fleetroute_router.sim.model import ServerModel
from fleetroute_router.sim.server import SimServer


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m fleetroute_router.sim", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, action="append", required=True, help="repeatable")
    parser.add_argument("--model", default="sim/model-8B")
    parser.add_argument("--gpu", default="NVIDIA-L4", help="GPU product (H100, A100, A10G, L4...)")
    parser.add_argument("--gpus", type=int, default=1)
    parser.add_argument("--role", default="unified", choices=["unified", "prefill", "decode"])
    parser.add_argument("--engine", default="vllm", choices=["vllm", "sglang"])
    parser.add_argument("--max-batch", type=int, default=32)
    parser.add_argument("--speed", type=float, default=1.0, help="latency scale; 0 = instant")
    return parser.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    timing = ServerModel.of(
        args.model, args.gpu, gpus=args.gpus, max_batch=args.max_batch, speed=args.speed
    )
    servers = [
        SimServer(args.model, timing, host=args.host, port=port, role=args.role, engine=args.engine)
        for port in args.port
    ]
    for server in servers:
        await server.start()
    print(" ".join(s.address for s in servers), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    for server in servers:
        await server.stop()


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(parse()))
