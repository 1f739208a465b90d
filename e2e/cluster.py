"""CLI of the local e2e Kubernetes cluster: ``python e2e/cluster.py up|down|env|status|build``."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from e2e.localcluster import Cluster, ClusterError, format_env


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cluster.py", description=__doc__)
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help="state directory (default: $FLEETROUTE_CLUSTER_DIR or ~/.cache/fleetroute/cluster)",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="build and cache the pinned binaries")
    build.add_argument("components", nargs="*", help="only these (default: all)")
    build.add_argument("--force", action="store_true", help="rebuild even if cached")
    up = sub.add_parser("up", help="start the cluster (idempotent) and create the fake GPU fleet")
    up.add_argument("--timeout", type=float, default=240.0, help="seconds to wait for the cluster")
    sub.add_parser("down", help="stop every cluster process and remove the state directory")
    sub.add_parser("env", help="print shell exports for using the cluster")
    status = sub.add_parser("status", help="show the cluster processes")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    cluster = Cluster(args.state_dir)
    try:
        if args.command == "build":
            started = time.monotonic()
            durations = cluster.build(args.components or None, force=args.force)
            for name, seconds in durations.items():
                print(f"{name:28s} {seconds:7.1f}s")
            print(f"{'total':28s} {time.monotonic() - started:7.1f}s ({len(durations)} built)")
        elif args.command == "up":
            cluster.up(timeout=args.timeout)
            print(format_env(cluster.env()))
        elif args.command == "down":
            cluster.down()
        elif args.command == "env":
            if not cluster.kubeconfig.exists():
                print(
                    f"no cluster in {cluster.state_dir}; run: python e2e/cluster.py up",
                    file=sys.stderr,
                )
                return 1
            print(format_env(cluster.env()))
        elif args.command == "status":
            info = cluster.status()
            if args.json:
                print(json.dumps(info, indent=2))
            else:
                print(f"state dir : {info['state_dir']}")
                print(f"server    : {info['server'] or '-'} (ready: {info['api_ready']})")
                print(f"kubeconfig: {info['kubeconfig'] or '-'}")
                for name, comp in info["components"].items():
                    state = "running" if comp["alive"] else "DEAD"
                    print(
                        f"  {name:24s} pid {comp['pid']:<8} port {comp['port'] or '-':<6} {state}"
                    )
                if not info["components"]:
                    print("  (no processes)")
            if not info["components"]:
                return 0
            healthy = info["api_ready"] and all(
                comp["alive"] for comp in info["components"].values()
            )
            return 0 if healthy else 1
    except ClusterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
