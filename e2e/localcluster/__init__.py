"""Local Kubernetes control plane (etcd, apiserver, controllers, scheduler, KWOK) for e2e tests."""

from __future__ import annotations

from .build import (
    BUILD_ORDER,
    COMPONENTS,
    KWOK_STAGE_FILES,
    BinarySpec,
    Builder,
    binary_specs,
    find_go,
)
from .cluster import Cluster
from .fleet import FLEET, NodePool, fleet_manifests, fleet_node_names, node_manifest
from .pki import CLIENTS, PKI, SERVING_SANS, ClientIdentity, write_kubeconfig
from .processes import (
    file_lock,
    format_env,
    free_ports,
    http_get,
    pid_alive,
    reap,
    spawn_detached,
)
from .settings import (
    DEFAULT_POD_CIDR,
    E2E_DIR,
    GO_MODULE_DIR,
    GPU_PRODUCT_LABEL,
    GPU_RESOURCE,
    GPU_TAINT,
    KWOK_NODE_ANNOTATION,
    KWOK_NODE_ANNOTATION_VALUE,
    LOCALHOST,
    SERVICE_CIDR,
    VERSIONS_FILE,
    ClusterError,
    Logger,
    cache_dir,
    default_state_dir,
    tail,
)
from .versions import Versions

__all__ = [
    "BUILD_ORDER",
    "CLIENTS",
    "COMPONENTS",
    "DEFAULT_POD_CIDR",
    "E2E_DIR",
    "FLEET",
    "GO_MODULE_DIR",
    "GPU_PRODUCT_LABEL",
    "GPU_RESOURCE",
    "GPU_TAINT",
    "KWOK_NODE_ANNOTATION",
    "KWOK_NODE_ANNOTATION_VALUE",
    "KWOK_STAGE_FILES",
    "LOCALHOST",
    "PKI",
    "SERVICE_CIDR",
    "SERVING_SANS",
    "VERSIONS_FILE",
    "BinarySpec",
    "Builder",
    "ClientIdentity",
    "Cluster",
    "ClusterError",
    "Logger",
    "NodePool",
    "Versions",
    "binary_specs",
    "cache_dir",
    "default_state_dir",
    "file_lock",
    "find_go",
    "fleet_manifests",
    "fleet_node_names",
    "format_env",
    "free_ports",
    "http_get",
    "node_manifest",
    "pid_alive",
    "reap",
    "spawn_detached",
    "tail",
    "write_kubeconfig",
]
