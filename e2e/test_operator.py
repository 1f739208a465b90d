"""The operator on a real API server, scheduler and controllers, with KWOK GPU nodes."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml

from e2e.localcluster import Cluster, free_ports
from e2e.localcluster.processes import stop_child
from e2e.operator_process import OperatorProcess
from e2e.waiting import wait_for
from fleetroute.v1alpha1 import router_pb2, router_pb2_grpc
from tests.crd_cases import INVALID, example

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parent.parent
NAMESPACE = "llm"
PRODUCT_LABEL = "nvidia.com/gpu.product"
CONFIGMAP = ("fleetroute-system", "fleetroute-router-config")


def _examples() -> list[dict[str, Any]]:
    objects: list[dict[str, Any]] = []
    for path in sorted((ROOT / "examples" / "fleet").glob("*.yaml")):
        objects.extend(d for d in yaml.safe_load_all(path.read_text()) if d)
    return objects


EXAMPLES = _examples()


def apply(cluster: Cluster, *objects: dict[str, Any]) -> None:
    cluster.kubectl(
        "apply",
        "-f",
        "-",
        input=json.dumps({"apiVersion": "v1", "kind": "List", "items": list(objects)}),
    )


def get(
    cluster: Cluster, kind: str, name: str, namespace: str | None = NAMESPACE
) -> dict[str, Any] | None:
    args = ["get", kind, name, "-o", "json", "--ignore-not-found"]
    if namespace:
        args += ["-n", namespace]
    out = cluster.kubectl(*args).stdout.strip()
    return json.loads(out) if out else None


def pods_of(cluster: Cluster, pool: str) -> list[dict[str, Any]]:
    found = cluster.kubectl_json(
        "get", "pods", "-n", NAMESPACE, "-l", f"fleetroute.dev/modelpool={pool}"
    )
    return [p for p in found["items"] if not p["metadata"].get("deletionTimestamp")]


def node_products(cluster: Cluster) -> dict[str, str | None]:
    nodes = cluster.kubectl_json("get", "nodes")["items"]
    return {n["metadata"]["name"]: n["metadata"]["labels"].get(PRODUCT_LABEL) for n in nodes}


def ready_condition(obj: dict[str, Any] | None) -> dict[str, Any] | None:
    for condition in (obj or {}).get("status", {}).get("conditions", []):
        if condition["type"] == "Ready":
            return dict(condition)
    return None


def wait_ready(
    cluster: Cluster, kind: str, name: str, namespace: str | None = NAMESPACE, timeout: float = 90
) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        obj = get(cluster, kind, name, namespace)
        condition = ready_condition(obj)
        return obj if condition and condition["status"] == "True" else None

    return wait_for(f"{kind} {name} Ready", probe, timeout=timeout)


def router_config(cluster: Cluster) -> dict[str, Any] | None:
    configmap = get(cluster, "configmap", CONFIGMAP[1], CONFIGMAP[0])
    return json.loads(configmap["data"]["config.json"]) if configmap else None


def small_pool(name: str, replicas: int) -> dict[str, Any]:
    """A copy of the example 8B-on-L4 ModelPool under another name."""
    pool = example(EXAMPLES, "ModelPool", "llama-8b-l4")
    pool["metadata"]["name"] = name
    pool["spec"]["deploy"]["replicas"] = replicas
    return pool


@pytest.fixture(scope="module")
def crds(cluster: Cluster) -> None:
    cluster.kubectl("apply", "-f", str(ROOT / "crds"))
    for path in (ROOT / "crds").glob("*.yaml"):
        name = yaml.safe_load(path.read_text())["metadata"]["name"]
        cluster.kubectl("wait", "--for=condition=Established", f"crd/{name}", "--timeout=60s")
    for namespace in (NAMESPACE, CONFIGMAP[0]):
        cluster.kubectl("create", "namespace", namespace, check=False)


@pytest.fixture(scope="module")
def operator(
    cluster: Cluster, crds: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    process = OperatorProcess(
        cluster.kubeconfig, tmp_path_factory.mktemp("operator") / "operator.log"
    )
    process.start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def fleet(cluster: Cluster, operator: OperatorProcess) -> Iterator[list[dict[str, Any]]]:
    objects = [o for o in EXAMPLES if o["kind"] != "Namespace"]
    apply(cluster, *objects)
    yield objects
    cluster.kubectl(
        "delete",
        "modelpools,routingpolicies",
        "--all",
        "-n",
        NAMESPACE,
        "--wait=true",
        "--timeout=90s",
        check=False,
    )
    cluster.kubectl("delete", "gpupools", "--all", check=False)


def test_crds_are_established_with_printer_columns(cluster: Cluster, crds: None) -> None:
    apply(cluster, *[o for o in EXAMPLES if o["kind"] == "GPUPool"])
    header = cluster.kubectl("get", "gpupools").stdout.splitlines()[0].split()
    assert header[:5] == ["NAME", "PRODUCT", "NODES", "CAPACITY", "FREE"]
    rows = cluster.kubectl("get", "gpupools", "-o", "wide").stdout
    assert "NVIDIA-H100-80GB-HBM3" in rows
    assert "ALLOCATED" in rows.splitlines()[0]
    header = cluster.kubectl("get", "modelpools", "-A").stdout.splitlines()
    assert (
        header == []
        or "No resources" in "".join(header)
        or header[0].split()[:4] == ["NAMESPACE", "NAME", "MODEL", "ROLE"]
    )
    for short in ("gpool", "mpool", "rpol"):
        assert cluster.kubectl("get", short, "-A", check=False).returncode == 0


# How the API server words the schema errors the unit tests' validator words differently.
APISERVER_WORDS = {
    "does not match": "should match",
    "minimum": "should be greater than",
    "maximum": "should be less than",
    "should be non-empty": "should have at least 1 items",
    "is a required": "Required value",
}


def apiserver_words(expected: str) -> str:
    return next((words for key, words in APISERVER_WORDS.items() if key in expected), expected)


@pytest.mark.parametrize(
    ("kind", "name", "mutate", "expected"),
    [pytest.param(k, n, m, e, id=f"{k}-{case}") for k, n, case, m, e in INVALID],
)
def test_api_server_rejects_invalid_objects(
    cluster: Cluster, crds: None, kind: str, name: str, mutate: Any, expected: str
) -> None:
    obj = example(EXAMPLES, kind, name)
    mutate(obj)
    result = cluster.kubectl(
        "apply", "--dry-run=server", "-f", "-", input=json.dumps(obj), check=False
    )
    assert result.returncode != 0, result.stdout
    assert apiserver_words(expected) in result.stderr, result.stderr


def test_api_server_rejects_duplicate_candidates(cluster: Cluster, crds: None) -> None:
    policy = example(EXAMPLES, "RoutingPolicy", "chat")
    policy["spec"]["candidates"].append({"modelPool": "llama-8b-l4"})
    result = cluster.kubectl(
        "apply", "--dry-run=server", "-f", "-", input=json.dumps(policy), check=False
    )
    assert result.returncode != 0
    assert "Duplicate value" in result.stderr


def test_operator_reconciles_the_example_fleet(
    cluster: Cluster, fleet: list[dict[str, Any]]
) -> None:
    products = node_products(cluster)
    expected = {
        "llama-70b-prefill": ("NVIDIA-H100-80GB-HBM3", 1),
        "llama-70b-decode": ("NVIDIA-H100-80GB-HBM3", 2),
        "llama-8b-l4": ("NVIDIA-L4", 3),
        "qwen-14b-a10g": ("NVIDIA-A10G", 1),
    }
    for name, (product, replicas) in expected.items():
        pool = wait_ready(cluster, "modelpool", name)
        assert pool["status"]["readyReplicas"] == replicas
        assert pool["status"]["gpuProduct"] == product
        pods = pods_of(cluster, name)
        assert len(pods) == replicas
        assert {products[p["spec"]["nodeName"]] for p in pods} == {product}
        assert sorted(e["address"] for e in pool["status"]["endpoints"]) == sorted(
            f"{p['status']['podIP']}:8000" for p in pods
        )
        assert get(cluster, "deployment", name) is not None
        assert get(cluster, "service", name) is not None
    adopted = wait_ready(cluster, "modelpool", "mistral-7b-external")
    assert adopted["status"]["endpoints"] == [{"address": "127.0.0.1:8401", "ready": True}]
    allocated = {"h100": 12, "l4": 3, "a10g": 2}
    capacity = {"h100": 32, "l4": 16, "a10g": 8}
    for name in allocated:

        def settled(name: str = name) -> dict[str, Any] | None:
            pool = get(cluster, "gpupool", name, None)
            status = (pool or {}).get("status", {})
            return pool if status.get("allocated") == allocated[name] else None

        status = wait_for(f"GPUPool {name} accounting", settled)["status"]
        assert (status["capacity"], status["free"]) == (
            capacity[name],
            capacity[name] - allocated[name],
        )
    wait_ready(cluster, "routingpolicy", "chat")


def test_no_model_server_lands_on_a_cpu_node(cluster: Cluster, fleet: list[dict[str, Any]]) -> None:
    products = node_products(cluster)
    pods = cluster.kubectl_json(
        "get", "pods", "-n", NAMESPACE, "-l", "app.kubernetes.io/managed-by=fleetroute-operator"
    )
    assert pods["items"]
    assert all(products[p["spec"]["nodeName"]] for p in pods["items"] if p["spec"].get("nodeName"))


def test_router_config_matches_the_fleet(cluster: Cluster, fleet: list[dict[str, Any]]) -> None:
    wait_ready(cluster, "modelpool", "llama-8b-l4")

    def complete() -> dict[str, Any] | None:
        config = router_config(cluster)
        pools = {p["name"]: p for p in (config or {}).get("pools", [])}
        l4 = pools.get("llm/llama-8b-l4", {})
        return config if len(l4.get("endpoints", [])) == 3 else None

    config = wait_for("router config with the fleet's endpoints", complete)
    assert {p["name"] for p in config["pools"]} == {
        f"llm/{o['metadata']['name']}" for o in fleet if o["kind"] == "ModelPool"
    }
    (policy,) = config["policies"]
    assert policy["modelAlias"] == "fleet/chat"
    l4_ips = {f"{p['status']['podIP']}:8000" for p in pods_of(cluster, "llama-8b-l4")}
    assert {
        e["address"]
        for p in config["pools"]
        if p["name"] == "llm/llama-8b-l4"
        for e in p["endpoints"]
    } == l4_ips


def test_oversubscribed_pool_stays_pending_and_says_why(
    cluster: Cluster, fleet: list[dict[str, Any]]
) -> None:
    big = example(EXAMPLES, "ModelPool", "qwen-14b-a10g")
    big["metadata"]["name"] = "qwen-72b-a10g"
    big["spec"]["deploy"].update(replicas=3, gpusPerReplica=4)
    apply(cluster, big)
    try:

        def explained() -> dict[str, Any] | None:
            condition = ready_condition(get(cluster, "modelpool", "qwen-72b-a10g"))
            return condition if condition and condition["reason"] == "InsufficientGPUs" else None

        condition = wait_for("InsufficientGPUs condition", explained, timeout=60)
        assert condition["status"] == "False"
        assert condition["message"].startswith("needs 12 GPUs of NVIDIA-A10G (3 replicas x 4)")
        pending = [
            p for p in pods_of(cluster, "qwen-72b-a10g") if p["status"].get("phase") == "Pending"
        ]
        assert pending
    finally:
        cluster.kubectl(
            "delete", "modelpool", "qwen-72b-a10g", "-n", NAMESPACE, "--wait=true", "--timeout=60s"
        )


def test_scaling_up_and_down(cluster: Cluster, fleet: list[dict[str, Any]]) -> None:
    for replicas in (5, 1, 3):
        cluster.kubectl(
            "patch",
            "modelpool",
            "llama-8b-l4",
            "-n",
            NAMESPACE,
            "--type=merge",
            "-p",
            json.dumps({"spec": {"deploy": {"replicas": replicas}}}),
        )

        def scaled(replicas: int = replicas) -> bool:
            pool = get(cluster, "modelpool", "llama-8b-l4") or {}
            ready = (pool.get("status") or {}).get("readyReplicas")
            return ready == replicas and len(pods_of(cluster, "llama-8b-l4")) == replicas

        wait_for(f"llama-8b-l4 at {replicas} replicas", scaled, timeout=90)

        def accounted(replicas: int = replicas) -> bool:
            return ((get(cluster, "gpupool", "l4", None) or {}).get("status") or {}).get(
                "allocated"
            ) == replicas

        wait_for(f"GPUPool l4 allocating {replicas}", accounted)


def test_changing_the_gpu_pool_moves_the_pods(
    cluster: Cluster, fleet: list[dict[str, Any]]
) -> None:
    name = "mistral-on-l4"
    pool = small_pool(name, replicas=1)
    apply(cluster, pool)
    try:
        wait_ready(cluster, "modelpool", name)
        cluster.kubectl(
            "patch",
            "modelpool",
            name,
            "-n",
            NAMESPACE,
            "--type=merge",
            "-p",
            json.dumps({"spec": {"deploy": {"gpuPool": "h100"}}}),
        )
        products = node_products(cluster)

        def moved() -> bool:
            pods = pods_of(cluster, name)
            return (
                len(pods) == 1
                and products.get(pods[0]["spec"].get("nodeName", "")) == "NVIDIA-H100-80GB-HBM3"
            )

        wait_for("pod moved to an H100 node", moved, timeout=90)
        assert (
            wait_ready(cluster, "modelpool", name)["status"]["gpuProduct"]
            == "NVIDIA-H100-80GB-HBM3"
        )
    finally:
        cluster.kubectl(
            "delete", "modelpool", name, "-n", NAMESPACE, "--wait=true", "--timeout=60s"
        )


def test_deleting_a_modelpool_collects_what_it_owned(
    cluster: Cluster, fleet: list[dict[str, Any]]
) -> None:
    name = "short-lived"
    pool = small_pool(name, replicas=1)
    apply(cluster, pool)
    wait_ready(cluster, "modelpool", name)
    cluster.kubectl("delete", "modelpool", name, "-n", NAMESPACE, "--wait=true", "--timeout=60s")
    wait_for("Deployment collected", lambda: get(cluster, "deployment", name) is None, timeout=60)
    wait_for("Service collected", lambda: get(cluster, "service", name) is None, timeout=60)
    wait_for("pods collected", lambda: not pods_of(cluster, name), timeout=60)


def test_operator_killed_mid_reconcile_converges(
    cluster: Cluster, fleet: list[dict[str, Any]], operator: OperatorProcess
) -> None:
    name = "crash-test"
    pool = small_pool(name, replicas=2)
    operator.kill()
    apply(cluster, pool)
    operator.start()
    wait_for("Deployment created", lambda: get(cluster, "deployment", name) is not None, timeout=60)
    operator.kill()
    operator.start()
    try:
        wait_ready(cluster, "modelpool", name)
        deployments = cluster.kubectl_json(
            "get", "deployments", "-n", NAMESPACE, "-l", f"fleetroute.dev/modelpool={name}"
        )
        services = cluster.kubectl_json(
            "get", "services", "-n", NAMESPACE, "-l", f"fleetroute.dev/modelpool={name}"
        )
        assert len(deployments["items"]) == 1
        assert len(services["items"]) == 1
        assert len(pods_of(cluster, name)) == 2
        owners = deployments["items"][0]["metadata"]["ownerReferences"]
        assert [o["name"] for o in owners] == [name]
    finally:
        cluster.kubectl(
            "delete", "modelpool", name, "-n", NAMESPACE, "--wait=true", "--timeout=60s"
        )


def test_router_config_follows_fleet_changes(cluster: Cluster, fleet: list[dict[str, Any]]) -> None:
    before = wait_for("router config", lambda: router_config(cluster))
    policy = copy.deepcopy(example(EXAMPLES, "RoutingPolicy", "chat"))
    policy["spec"]["candidates"] = [{"modelPool": "llama-8b-l4"}]
    policy["metadata"]["name"] = "small"
    policy["spec"]["modelAlias"] = "fleet/small"
    apply(cluster, policy)
    try:

        def has_small() -> dict[str, Any] | None:
            config = router_config(cluster)
            # The chat policy is there all along: a config without it would drop its traffic.
            assert config is None or config.get("policies"), f"config lost its policies: {config}"
            return (
                config
                if config and any(p["modelAlias"] == "fleet/small" for p in config["policies"])
                else None
            )

        after = wait_for("policy in router config", has_small)
        assert after["revision"] != before["revision"]
        small = next(p for p in after["policies"] if p["modelAlias"] == "fleet/small")
        assert small["candidates"] == ["llm/llama-8b-l4"]
    finally:
        cluster.kubectl("delete", "routingpolicy", "small", "-n", NAMESPACE)
    wait_for(
        "policy gone from router config",
        lambda: all(
            p["modelAlias"] != "fleet/small"
            for p in (router_config(cluster) or {"policies": []})["policies"]
        ),
    )


def test_objects_carry_no_finalizers(cluster: Cluster, fleet: list[dict[str, Any]]) -> None:
    """Status is refreshed without kopf timers, so deleting needs no running operator."""
    wait_ready(cluster, "modelpool", "llama-8b-l4")
    for kind, namespace in (
        ("gpupools", None),
        ("modelpools", NAMESPACE),
        ("routingpolicies", NAMESPACE),
    ):
        args = ["get", kind] + (["-n", namespace] if namespace else [])
        items = cluster.kubectl_json(*args)["items"]
        assert items
        assert [o["metadata"]["name"] for o in items if o["metadata"].get("finalizers")] == []


def test_routing_policy_status_shows_what_the_router_learned(
    cluster: Cluster,
    fleet: list[dict[str, Any]],
    operator: OperatorProcess,
    tmp_path: Path,
) -> None:
    """The whole loop: the operator's ConfigMap feeds a router (simulated servers on the pods'
    loopback IPs), the router learns from requests, and the operator shows it in status."""

    def complete() -> dict[str, Any] | None:
        config = router_config(cluster)
        pools = (config or {}).get("pools", [])
        return config if len(pools) == 5 and all(p.get("endpoints") for p in pools) else None

    config_file = tmp_path / "config.json"
    config_file.write_text(json.dumps(wait_for("router config with endpoints", complete)))
    (port,) = free_ports(1)
    with (tmp_path / "router.log").open("wb") as router_log:
        router = subprocess.Popen(
            [sys.executable, "-m", "fleetroute", "serve", "--config", str(config_file),
             "--simulate", "--sim-speed", "0", "--http", "", "--ext-proc", "", "--admin", "",
             "--grpc", f"127.0.0.1:{port}"],
            stdout=subprocess.DEVNULL, stderr=router_log,
        )  # fmt: skip
    learning = OperatorProcess(
        cluster.kubeconfig, tmp_path / "operator.log", "--router-address", f"127.0.0.1:{port}"
    )
    operator.stop()
    learning.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            grpc.channel_ready_future(channel).result(timeout=30)
            stub = router_pb2_grpc.RouterStub(channel)
            for i in range(20):
                decision = stub.Route(
                    router_pb2.RouteRequest(model="fleet/chat", prompt=f"question {i}"), timeout=5
                )
                stub.Report(
                    router_pb2.Feedback(
                        decision_id=decision.decision_id, success=True, quality=0.9
                    ),
                    timeout=5,
                )

        def learned() -> dict[str, Any] | None:
            status = (get(cluster, "routingpolicy", "chat") or {}).get("status", {})
            return status if status.get("topArm") and status.get("arms") else None

        status = wait_for("RoutingPolicy arms in status", learned, timeout=60)
        candidates = {
            c["modelPool"] for c in example(EXAMPLES, "RoutingPolicy", "chat")["spec"]["candidates"]
        }
        assert {a["modelPool"] for a in status["arms"]} <= candidates
        assert status["topArm"] == status["arms"][0]["modelPool"]
        assert sum(float(a["share"]) for a in status["arms"]) == pytest.approx(1.0, abs=0.02)
        row = cluster.kubectl("get", "routingpolicy", "chat", "-n", NAMESPACE).stdout
        assert status["topArm"] in row

        def quality_observed() -> dict[str, Any] | None:
            status = (get(cluster, "routingpolicy", "chat") or {}).get("status", {})
            found = [c for c in status.get("conditions", []) if c["type"] == "QualityObserved"]
            return found[0] if found and found[0]["status"] == "True" else None

        # The Reports carried quality: the policy has now seen what its answers are worth.
        assert wait_for("QualityObserved=True", quality_observed, timeout=60)["reason"] == (
            "QualityFeedback"
        )
    finally:
        learning.stop()
        stop_child(router)
        operator.start()
