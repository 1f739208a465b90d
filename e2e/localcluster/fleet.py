"""The fake GPU fleet: KWOK node pools and the Node manifests created for them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from . import settings


@dataclass(frozen=True)
class NodePool:
    """A group of identical fake (KWOK) nodes."""

    prefix: str
    count: int
    gpu_product: str | None
    gpus: int
    cpu: str
    memory: str
    instance_type: str
    gpu_memory_mib: int = 0

    def names(self) -> list[str]:
        return [f"{self.prefix}-{i}" for i in range(self.count)]


FLEET: Final = (
    NodePool("h100", 4, "NVIDIA-H100-80GB-HBM3", 8, "192", "2048Gi", "p5.48xlarge", 81559),
    NodePool("l4", 4, "NVIDIA-L4", 4, "48", "192Gi", "g6.12xlarge", 23034),
    NodePool("a10g", 2, "NVIDIA-A10G", 4, "48", "192Gi", "g5.12xlarge", 23028),
    NodePool("cpu", 2, None, 0, "16", "64Gi", "m6i.4xlarge"),
)


def fleet_node_names() -> list[str]:
    return [name for pool in FLEET for name in pool.names()]


def node_manifest(pool: NodePool, index: int, node_ip: str) -> dict[str, Any]:
    """The Node object (with status, which the API accepts on create) for one fake node."""
    name = f"{pool.prefix}-{index}"
    labels = {
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "node.kubernetes.io/instance-type": pool.instance_type,
        "type": "kwok",
        "fleetroute.dev/pool": pool.prefix,
    }
    resources = {"cpu": pool.cpu, "memory": pool.memory, "pods": "110", "ephemeral-storage": "1Ti"}
    spec: dict[str, Any] = {}
    if pool.gpu_product is not None:
        labels.update(
            {
                settings.GPU_PRODUCT_LABEL: pool.gpu_product,
                "nvidia.com/gpu.count": str(pool.gpus),
                "nvidia.com/gpu.memory": str(pool.gpu_memory_mib),
                "nvidia.com/gpu.present": "true",
            }
        )
        resources[settings.GPU_RESOURCE] = str(pool.gpus)
        spec["taints"] = [dict(settings.GPU_TAINT)]
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": labels,
            "annotations": {
                settings.KWOK_NODE_ANNOTATION: settings.KWOK_NODE_ANNOTATION_VALUE,
                "node.alpha.kubernetes.io/ttl": "0",
            },
        },
        "spec": spec,
        "status": {
            "allocatable": resources,
            "capacity": dict(resources),
            "addresses": [
                {"type": "InternalIP", "address": node_ip},
                {"type": "Hostname", "address": name},
            ],
        },
    }


def fleet_manifests() -> list[dict[str, Any]]:
    """All fleet nodes; node i gets the loopback address 127.0.1.<i+1>."""
    nodes: list[dict[str, Any]] = []
    for pool in FLEET:
        for index in range(pool.count):
            nodes.append(node_manifest(pool, index, f"127.0.1.{len(nodes) + 1}"))
    return nodes
