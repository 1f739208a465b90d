"""`fleetroute serve`: run the router on a config file, or on the embedded example fleet."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
from importlib import resources
from pathlib import Path

from fleetroute import routerconfig
from fleetroute_router.config_source import ConfigSource
from fleetroute_router.core import RoutingCore
from fleetroute_router.server import RouterServer

log = logging.getLogger(__name__)
EMBEDDED_CONFIG = "example-fleet.yaml"


def embedded_config_path() -> Path:
    """The example fleet's RouterConfig shipped inside the package."""
    return Path(str(resources.files("fleetroute_router.defaults").joinpath(EMBEDDED_CONFIG)))


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        help="RouterConfig file (JSON or YAML), reloaded on change; default: the embedded fleet",
    )
    parser.add_argument("--grpc", default="127.0.0.1:50051", help="gRPC listen address (host:port)")
    parser.add_argument(
        "--reload-interval", type=float, default=1.0, help="seconds between config checks"
    )
    parser.add_argument("--drain-seconds", type=float, default=10.0, help="grace period on SIGTERM")


async def serve(args: argparse.Namespace) -> None:
    """Serve until SIGTERM or SIGINT, then drain."""
    source = ConfigSource(args.config or embedded_config_path())
    source.reload()
    assert source.fleet is not None  # noqa: S101 (reload raises otherwise)
    core = RoutingCore(source.fleet)
    source.subscribe(core.set_fleet)
    server = RouterServer(core, args.grpc)
    await server.start()
    print(
        f"fleetroute router on {args.grpc.rsplit(':', 1)[0]}:{server.port} "
        f"serving {source.path}\n  try: fleetroute route --router 127.0.0.1:{server.port} "
        f"--model {next(iter(core.fleet.policies), 'MODEL')} 'Hello'",
        flush=True,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    watcher = asyncio.create_task(source.watch(args.reload_interval))
    await stop.wait()
    log.info("draining (up to %.0fs)", args.drain_seconds)
    watcher.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await watcher
    await server.drain(args.drain_seconds)


def run(args: argparse.Namespace) -> int:
    try:
        asyncio.run(serve(args))
    except routerconfig.ConfigError as error:
        log.error("cannot start: %s", error)
        return 2
    return 0
