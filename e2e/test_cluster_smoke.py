"""Smoke test of the local e2e cluster: version, GPU fleet, scheduling, controllers, GC and RBAC."""

from __future__ import annotations

import ipaddress
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from e2e.localcluster import (
    FLEET,
    GPU_PRODUCT_LABEL,
    GPU_RESOURCE,
    GPU_TAINT,
    Cluster,
    fleet_node_names,
)
from e2e.waiting import wait_for

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def namespace(cluster: Cluster) -> Iterator[str]:
    name = f"smoke-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", name)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


def gpu_pod(name: str, gpus: int, product: str | None, tolerate: bool) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "containers": [
            {
                "name": "model",
                "image": "registry.k8s.io/pause:3.10",
                "resources": {
                    "limits": {GPU_RESOURCE: str(gpus)},
                    "requests": {GPU_RESOURCE: str(gpus)},
                },
            }
        ],
    }
    if tolerate:
        spec["tolerations"] = [
            {"key": GPU_TAINT["key"], "operator": "Exists", "effect": GPU_TAINT["effect"]}
        ]
    if product is not None:
        term = {
            "matchExpressions": [{"key": GPU_PRODUCT_LABEL, "operator": "In", "values": [product]}]
        }
        spec["affinity"] = {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [term]}
            }
        }
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


def test_server_version(cluster: Cluster) -> None:
    version = json.loads(cluster.kubectl("version", "-o", "json").stdout)
    assert version["serverVersion"]["gitVersion"].startswith("v1.34.")
    assert version["clientVersion"]["gitVersion"] == version["serverVersion"]["gitVersion"]
    assert cluster.server.startswith("https://127.0.0.1:")


def test_fleet_nodes_ready(cluster: Cluster) -> None:
    nodes = {n["metadata"]["name"]: n for n in cluster.kubectl_json("get", "nodes")["items"]}
    assert sorted(nodes) == sorted(fleet_node_names())
    assert len(nodes) == 12
    for name, node in nodes.items():
        ready = [c for c in node["status"]["conditions"] if c["type"] == "Ready"]
        assert ready, name
        assert ready[0]["status"] == "True", name
        assert node["metadata"]["labels"]["type"] == "kwok"
        address = node["status"]["addresses"][0]["address"]
        assert ipaddress.ip_address(address).is_loopback, (name, address)


def test_gpu_nodes(cluster: Cluster) -> None:
    nodes = {n["metadata"]["name"]: n for n in cluster.kubectl_json("get", "nodes")["items"]}
    for pool in FLEET:
        for name in pool.names():
            node = nodes[name]
            labels = node["metadata"]["labels"]
            allocatable = node["status"]["allocatable"]
            taints = node["spec"].get("taints", [])
            gpu_taints = [t for t in taints if t["key"] == GPU_TAINT["key"]]
            if pool.gpu_product is None:
                assert GPU_RESOURCE not in allocatable, name
                assert GPU_PRODUCT_LABEL not in labels, name
                assert not gpu_taints, name
            else:
                assert allocatable[GPU_RESOURCE] == str(pool.gpus), name
                assert node["status"]["capacity"][GPU_RESOURCE] == str(pool.gpus), name
                assert labels[GPU_PRODUCT_LABEL] == pool.gpu_product, name
                assert labels["nvidia.com/gpu.count"] == str(pool.gpus), name
                assert gpu_taints == [dict(GPU_TAINT)], name


def test_gpu_pod_scheduled_on_l4_and_running(cluster: Cluster, namespace: str) -> None:
    pod = gpu_pod("l4-pod", gpus=2, product="NVIDIA-L4", tolerate=True)
    cluster.kubectl("-n", namespace, "create", "-f", "-", input=json.dumps(pod))

    def running() -> dict[str, Any] | None:
        obj: dict[str, Any] = cluster.kubectl_json("-n", namespace, "get", "pod", "l4-pod")
        return obj if obj["status"].get("phase") == "Running" else None

    obj = wait_for("l4-pod Running", running)
    assert obj["spec"]["nodeName"].startswith("l4-")
    assert ipaddress.ip_address(obj["status"]["podIP"]).is_loopback


def test_gpu_pod_without_toleration_stays_pending(cluster: Cluster, namespace: str) -> None:
    pod = gpu_pod("untolerated", gpus=1, product=None, tolerate=False)
    cluster.kubectl("-n", namespace, "create", "-f", "-", input=json.dumps(pod))

    def unschedulable() -> dict[str, Any] | None:
        obj: dict[str, Any] = cluster.kubectl_json("-n", namespace, "get", "pod", "untolerated")
        for condition in obj["status"].get("conditions", []):
            if condition["type"] == "PodScheduled" and condition.get("reason") == "Unschedulable":
                return obj
        return None

    obj = wait_for("scheduler to mark the pod Unschedulable", unschedulable)
    assert obj["status"]["phase"] == "Pending"
    assert not obj["spec"].get("nodeName")


def test_deployment_and_garbage_collection(cluster: Cluster, namespace: str) -> None:
    cluster.kubectl(
        "-n",
        namespace,
        "create",
        "deployment",
        "web",
        "--image=registry.k8s.io/pause:3.10",
        "--replicas=3",
    )

    def running_pods() -> list[dict[str, Any]] | None:
        pods: list[dict[str, Any]] = cluster.kubectl_json(
            "-n", namespace, "get", "pods", "-l", "app=web"
        )["items"]
        ok = [p for p in pods if p["status"].get("phase") == "Running"]
        return pods if len(ok) == 3 else None

    pods = wait_for("3 Running pods of the Deployment", running_pods)
    replicasets = cluster.kubectl_json("-n", namespace, "get", "replicasets", "-l", "app=web")[
        "items"
    ]
    assert len(replicasets) == 1
    assert replicasets[0]["metadata"]["ownerReferences"][0]["kind"] == "Deployment"
    for pod in pods:
        assert pod["metadata"]["ownerReferences"][0]["name"] == replicasets[0]["metadata"]["name"]
        assert pod["spec"]["nodeName"].startswith("cpu-")  # GPU nodes are tainted

    cluster.kubectl("-n", namespace, "delete", "deployment", "web", "--wait=false")

    def collected() -> bool:
        rs = cluster.kubectl_json("-n", namespace, "get", "replicasets", "-l", "app=web")["items"]
        left = cluster.kubectl_json("-n", namespace, "get", "pods", "-l", "app=web")["items"]
        return not rs and not left

    wait_for("garbage collection of the ReplicaSet and its pods", collected, timeout=90)


def test_rbac_enforced(cluster: Cluster, namespace: str) -> None:
    path = f"/api/v1/namespaces/{namespace}/pods"
    status, _ = cluster.api_get(path)
    assert status == 200
    user = f"system:serviceaccount:{namespace}:nobody"
    status, body = cluster.api_get(path, headers=[("Impersonate-User", user)])
    assert status == 403, body
    assert json.loads(body)["reason"] == "Forbidden"
    denied = cluster.kubectl("--as", user, "-n", namespace, "get", "pods", check=False)
    assert denied.returncode != 0
    assert "Forbidden" in denied.stderr
