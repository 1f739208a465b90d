"""The `fleetroute top` subcommand: poll a router and redraw its view until Ctrl-C."""

from __future__ import annotations

import argparse
import time
import urllib.error
from pathlib import Path

import grpc
from rich.console import Console
from rich.live import Live

from fleetroute.top import render, snapshot, view
from fleetroute.v1alpha1 import router_pb2_grpc


def configure(parser: argparse.ArgumentParser) -> None:
    parser.epilog = (
        "Shows per policy and pool: decisions per second, the split of the last interval and "
        "since start, mean reward, watts and joules per request (and how much of it DCGM "
        "measured), gCO2e per hour and errors. Reads the router's GetStats rpc and /metrics."
    )
    parser.add_argument("--router", default="127.0.0.1:50051", help="router gRPC address")
    parser.add_argument(
        "--metrics",
        default="http://127.0.0.1:9091/metrics",
        help="the router's /metrics URL, on its admin listener ('' shows no energy)",
    )
    parser.add_argument("--policy", default="", help="show only this policy")
    parser.add_argument("--interval", type=float, default=2.0, help="seconds between readings")
    parser.add_argument(
        "--once", action="store_true", help="print one view (two readings apart) and exit"
    )
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds per reading")
    parser.add_argument(
        "--token-file",
        type=Path,
        default=None,
        help="bearer token for GetStats (the router's --control-token-file)",
    )
    parser.add_argument(
        "--ca-file", type=Path, default=None, help="CA of the router's certificate: use TLS"
    )


def run(args: argparse.Namespace, console: Console | None = None) -> int:
    console = console or Console()
    channel = (
        grpc.secure_channel(args.router, grpc.ssl_channel_credentials(args.ca_file.read_bytes()))
        if args.ca_file is not None
        else grpc.insecure_channel(args.router)
    )
    token = args.token_file.read_text().strip() if args.token_file is not None else None
    with channel:
        stub = router_pb2_grpc.RouterStub(channel)

        def read() -> snapshot.Snapshot:
            return snapshot.take(
                stub, args.metrics, policy=args.policy, timeout_s=args.timeout, token=token
            )

        try:
            before = read()
            if args.once:
                time.sleep(args.interval)
                console.print(render.render(view.compute(before, read()), args.router))
                return 0
            with Live(console=console, auto_refresh=False, screen=False) as live:
                while True:
                    time.sleep(args.interval)
                    after = read()
                    live.update(render.render(view.compute(before, after), args.router))
                    live.refresh()
                    before = after
        except KeyboardInterrupt:
            return 0
        except grpc.RpcError as error:
            console.print(f"error: router {args.router}: {error.code().name}: {error.details()}")
            return 1
        except (urllib.error.URLError, OSError, ValueError) as error:
            console.print(f"error: metrics {args.metrics}: {error}")
            return 1
