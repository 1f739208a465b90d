"""Settings of the local cluster: repository paths, network and GPU constants, errors, logging."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Final

E2E_DIR: Final = Path(__file__).resolve().parent.parent
GO_MODULE_DIR: Final = E2E_DIR / "cluster"
VERSIONS_FILE: Final = GO_MODULE_DIR / "versions.env"

LOCALHOST: Final = "127.0.0.1"
# Pod IPs handed out by KWOK are loopback addresses, so anything that dials a pod IP stays on this
# machine (a test may even bind a real process to a pod's IP).  The price: EndpointSlices reject
# loopback addresses, so Services that select KWOK pods get no endpoints.
DEFAULT_POD_CIDR: Final = "127.244.0.1/16"
SERVICE_CIDR: Final = "10.96.0.0/16"
KWOK_NODE_ANNOTATION: Final = "kwok.x-k8s.io/node"
KWOK_NODE_ANNOTATION_VALUE: Final = "fake"
GPU_RESOURCE: Final = "nvidia.com/gpu"
GPU_PRODUCT_LABEL: Final = "nvidia.com/gpu.product"
GPU_TAINT: Final[Mapping[str, str]] = {
    "key": GPU_RESOURCE,
    "value": "present",
    "effect": "NoSchedule",
}

Logger = Callable[[str], None]


class ClusterError(RuntimeError):
    """Raised when the local cluster cannot be built, started, stopped or queried."""


def stderr_log(message: str) -> None:
    print(f"[localcluster] {message}", file=sys.stderr, flush=True)


def tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        return f"(no log: {exc})"
    return "\n".join(text.splitlines()[-lines:])


def cache_dir() -> Path:
    """Persistent cache (binaries, build logs): ``$FLEETROUTE_CACHE`` or ~/.cache/fleetroute."""
    env = os.environ.get("FLEETROUTE_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "fleetroute"


def default_state_dir() -> Path:
    """Directory of the running cluster: ``$FLEETROUTE_CLUSTER_DIR`` or <cache>/cluster."""
    env = os.environ.get("FLEETROUTE_CLUSTER_DIR")
    return Path(env).expanduser() if env else cache_dir() / "cluster"
