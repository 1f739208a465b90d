"""`fleetroute operator`: run the operator against the current kubeconfig or in-cluster config."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from fleetroute_operator import main
from fleetroute_operator.router_stats import RouterAccess
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
    parser.add_argument(
        "--router-address",
        default=None,
        help="router gRPC host:port; RoutingPolicy status then shows what it learned per arm",
    )
    parser.add_argument(
        "--router-token-file",
        type=Path,
        default=None,
        help="bearer token for the router's control rpcs (its --control-token-file)",
    )
    parser.add_argument(
        "--router-ca-file",
        type=Path,
        default=None,
        help="CA bundle of the router's certificate: GetStats goes over TLS",
    )
    parser.add_argument(
        "--router-cert-file", type=Path, default=None, help="client certificate (mutual TLS)"
    )
    parser.add_argument("--router-key-file", type=Path, default=None, help="its private key")
    parser.add_argument(
        "--metrics", default=None, help="serve Prometheus /metrics on host:port, e.g. 0.0.0.0:8081"
    )
    parser.add_argument(
        "--no-learning-fold",
        dest="learning_fold",
        action="store_false",
        help="leave the routers' learning ConfigMaps alone: no finalizers, no fold into the base "
        "when a replica's Pod goes, RoutingPolicy status from --router-address only",
    )
    parser.add_argument(
        "--learning-stale-after",
        type=float,
        default=60.0,
        help="seconds without a publish after which a router replica is flagged stale",
    )
    parser.add_argument(
        "--no-gpupool-status",
        dest="gpupool_status",
        action="store_false",
        help="never write GPUPool status (a namespace-scoped operator counts only its namespaces' "
        "GPU pods: leave GPUPools to a cluster-wide operator)",
    )


def run(args: argparse.Namespace) -> int:
    settings = Settings(
        router_config_namespace=args.router_config_namespace,
        router_config_name=args.router_config_name,
        status_interval=args.status_interval,
        namespaces=tuple(args.namespaces),
        router_address=args.router_address,
        router_access=RouterAccess(
            args.router_token_file, args.router_ca_file, args.router_cert_file, args.router_key_file
        ),
        gpupool_status=args.gpupool_status,
        learning_fold=args.learning_fold,
        learning_stale_after=args.learning_stale_after,
    )
    main.run(settings, liveness_endpoint=args.liveness, metrics_address=args.metrics)
    return 0
