"""In-memory stand-ins for the API server and for cluster objects, for operator unit tests."""

from __future__ import annotations

import copy
from typing import Any

Manifest = dict[str, Any]


class FakeKube:
    """A Kube that stores applied objects and serves reads from them (and from seeded objects)."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str | None, str], Manifest] = {}
        self.applied: list[Manifest] = []
        self.status_patches: list[tuple[str, str, Manifest]] = []

    def _key(
        self, api_version: str, kind: str, namespace: str | None, name: str
    ) -> tuple[str, str, str | None, str]:
        return (api_version, kind, namespace, name)

    def seed(self, manifest: Manifest) -> None:
        meta = manifest["metadata"]
        self.objects[
            self._key(manifest["apiVersion"], manifest["kind"], meta.get("namespace"), meta["name"])
        ] = manifest

    def apply(self, manifest: Manifest) -> Manifest:
        self.applied.append(copy.deepcopy(manifest))
        meta = manifest["metadata"]
        key = self._key(
            manifest["apiVersion"], manifest["kind"], meta.get("namespace"), meta["name"]
        )
        live = {**self.objects.get(key, {}), **copy.deepcopy(manifest)}
        self.objects[key] = live
        return live

    def get(
        self, api_version: str, kind: str, name: str, namespace: str | None = None
    ) -> Manifest | None:
        return self.objects.get(self._key(api_version, kind, namespace, name))

    def list(
        self,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        label_selector: str | None = None,
    ) -> list[Manifest]:
        wanted = dict(
            part.split("=", 1) for part in (label_selector or "").split(",") if "=" in part
        )
        return [
            obj
            for (v, k, ns, _), obj in self.objects.items()
            if v == api_version
            and k == kind
            and (namespace is None or ns == namespace)
            and all(obj["metadata"].get("labels", {}).get(a) == b for a, b in wanted.items())
        ]

    def patch_status(
        self, api_version: str, kind: str, name: str, namespace: str | None, status: Manifest
    ) -> None:
        self.status_patches.append((kind, name, copy.deepcopy(status)))


def node(
    name: str, product: str | None, gpus: int, *, ready: bool = True, cordoned: bool = False
) -> Manifest:
    """A Node as the API server returns it, optionally with GPUs of a product."""
    labels = {"kubernetes.io/hostname": name}
    allocatable = {"cpu": "32", "memory": "256Gi", "pods": "110"}
    if product:
        labels["nvidia.com/gpu.product"] = product
        allocatable["nvidia.com/gpu"] = str(gpus)
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": labels},
        "spec": {"unschedulable": True} if cordoned else {},
        "status": {
            "allocatable": allocatable,
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


def pod(
    name: str,
    *,
    namespace: str = "llm",
    labels: dict[str, str] | None = None,
    node_name: str | None = None,
    gpus: int = 0,
    ip: str | None = None,
    host_ip: str | None = None,
    ready: bool = False,
    phase: str = "Running",
    unschedulable: str | None = None,
) -> Manifest:
    """A Pod in a given state: scheduled or Pending, ready or not."""
    status: Manifest = {"phase": phase, "conditions": []}
    if ip:
        status["podIP"] = ip
    if host_ip:
        status["hostIP"] = host_ip
    if ready:
        status["conditions"].append({"type": "Ready", "status": "True"})
    if unschedulable:
        status["phase"] = "Pending"
        status["conditions"].append(
            {
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": unschedulable,
            }
        )
    spec: Manifest = {
        "containers": [
            {
                "name": "server",
                "resources": {"limits": {"nvidia.com/gpu": str(gpus)}} if gpus else {},
            }
        ]
    }
    if node_name:
        spec["nodeName"] = node_name
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": labels or {}},
        "spec": spec,
        "status": status,
    }


def with_identity(obj: Manifest, uid: str = "uid-1", generation: int = 1) -> Manifest:
    """An example object as the API server holds it: with a uid and a generation."""
    live = copy.deepcopy(obj)
    live["metadata"].update(uid=uid, generation=generation)
    return live
