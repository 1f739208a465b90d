"""The `fleetroute` command: one entry point dispatching to the operator, router and tools."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence
from typing import Protocol


class Command(Protocol):
    """A module implementing one subcommand."""

    def configure(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...


# name -> (module, one-line help). Modules load on use, so `fleetroute serve` never imports kopf.
COMMANDS: dict[str, tuple[str, str]] = {
    "serve": (
        "fleetroute_router.command",
        "run the router (gRPC API) on a config file or the embedded fleet",
    ),
    "operator": ("fleetroute_operator.command", "run the Kubernetes operator (kopf)"),
    "route": ("fleetroute.client", "ask a running router where a request would go"),
    "top": ("fleetroute.top", "live view of a router: decisions/s, split, reward, energy"),
    "bench": (
        "fleetroute_router.bench.command",
        "run a benchmark (prints ratios against a baseline)",
    ),
    "replay": (
        "fleetroute_router.replay.command",
        "judge a selection policy offline on logged routing outcomes",
    ),
}


def _load(module: str) -> Command:
    loaded: Command = importlib.import_module(module)
    return loaded


def parser(argv: Sequence[str]) -> argparse.ArgumentParser:
    """The argument parser; only the chosen subcommand's module is imported."""
    top = argparse.ArgumentParser(
        prog="fleetroute",
        description="Kubernetes operator and router for heterogeneous LLM fleets.",
    )
    top.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    chosen = next((a for a in argv if a in COMMANDS), None)
    for name, (module, summary) in COMMANDS.items():
        command_parser = sub.add_parser(name, help=summary, description=summary)
        if name == chosen:
            _load(module).configure(command_parser)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments and run the subcommand; returns the exit code."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    args = parser(arguments).parse_args(arguments)
    logging.basicConfig(
        level=args.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    return _load(COMMANDS[args.command][0]).run(args)


if __name__ == "__main__":
    raise SystemExit(main())
