"""`fleetroute operator`: run the operator against the current kubeconfig or in-cluster config."""

from __future__ import annotations

import argparse
import os

from fleetroute_operator import main
from fleetroute_operator.settings import Settings


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--namespace",
        action="append",
        default=[],
        dest="namespaces",
        help="watch only this namespace (repeatable); default: the whole cluster",
    )
    parser.add_argument(
        "--router-config-namespace",
        default=os.environ.get("POD_NAMESPACE", "fleetroute-system"),
        help="namespace of the router ConfigMap (default: $POD_NAMESPACE or fleetroute-system)",
    )
    parser.add_argument("--router-config-name", default="fleetroute-router-config")
    parser.add_argument(
        "--status-interval", type=float, default=5.0, help="seconds between status refreshes"
    )
    parser.add_argument(
        "--liveness", default=None, help="liveness endpoint, e.g. http://0.0.0.0:8080/healthz"
    )


def run(args: argparse.Namespace) -> int:
    settings = Settings(
        router_config_namespace=args.router_config_namespace,
        router_config_name=args.router_config_name,
        status_interval=args.status_interval,
        namespaces=tuple(args.namespaces),
    )
    main.run(settings, liveness_endpoint=args.liveness)
    return 0
