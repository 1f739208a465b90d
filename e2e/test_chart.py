"""The Helm chart on the real cluster: install, least-privilege RBAC, upgrade and uninstall."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from e2e import chart_support
from e2e.chart_support import (
    CHART,
    EXPECTED_RBAC,
    ROOT,
    Helm,
    always_rules,
    can_i_list,
    denied_lines,
    expected_rules,
    get,
    ready,
)
from e2e.localcluster import Cluster
from e2e.operator_process import OperatorProcess
from e2e.waiting import wait_for

pytestmark = pytest.mark.e2e

RELEASE = "fleetroute"
NAMESPACE = "fleetroute-chart-e2e"
FLEET_NAMESPACE = "fleetroute-chart-fleet"
SERVICE_ACCOUNT = f"{RELEASE}-operator"
USER = f"system:serviceaccount:{NAMESPACE}:{SERVICE_ACCOUNT}"
ROUTER_USER = f"system:serviceaccount:{NAMESPACE}:{RELEASE}-router"
ROUTER_CONFIG = "fleetroute-router-config"
GPU_POOL_PREFIX = "chart-e2e-"
CRDS = ("gpupools.fleetroute.dev", "modelpools.fleetroute.dev", "routingpolicies.fleetroute.dev")


def fleet_objects() -> list[dict[str, Any]]:
    """The example fleet, renamed so that it cannot clash with other tests' fleets on the cluster:
    namespaced objects in FLEET_NAMESPACE, GPUPools prefixed with GPU_POOL_PREFIX."""
    objects: list[dict[str, Any]] = []
    for path in sorted((ROOT / "examples" / "fleet").glob("*.yaml")):
        for obj in yaml.safe_load_all(path.read_text()):
            if not obj or obj["kind"] == "Namespace":
                continue
            if "namespace" in obj["metadata"]:
                obj["metadata"]["namespace"] = FLEET_NAMESPACE
            if obj["kind"] == "GPUPool":
                obj["metadata"]["name"] = GPU_POOL_PREFIX + obj["metadata"]["name"]
            for how in ("deploy", "adopt"):
                source = obj.get("spec", {}).get(how) or {}
                if "gpuPool" in source:
                    source["gpuPool"] = GPU_POOL_PREFIX + source["gpuPool"]
            objects.append(obj)
    return objects


def manifest_objects(helm: Helm) -> list[tuple[str, str, str | None]]:
    """(kind, name, namespace) of every object of the release."""
    text = helm("get", "manifest", RELEASE, "-n", NAMESPACE).stdout
    return [
        (d["kind"], d["metadata"]["name"], d["metadata"].get("namespace"))
        for d in yaml.safe_load_all(text)
        if d
    ]


def delete_fleet(cluster: Cluster, timeout: str = "90s") -> None:
    """Delete the fleet's objects (they carry no finalizers: deleting needs no operator)."""
    cluster.kubectl(
        "delete",
        "modelpools,routingpolicies",
        "--all",
        "-n",
        FLEET_NAMESPACE,
        "--ignore-not-found",
        f"--timeout={timeout}",
        check=False,
    )
    names = [o["metadata"]["name"] for o in fleet_objects() if o["kind"] == "GPUPool"]
    cluster.kubectl(
        "delete", "gpupools", *names, "--ignore-not-found", f"--timeout={timeout}", check=False
    )


@pytest.fixture(scope="module")
def helm(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Helm:
    return Helm(cluster, tmp_path_factory.mktemp("helm"))


@pytest.fixture(scope="module")
def release(cluster: Cluster, helm: Helm) -> Iterator[str]:
    """The chart installed with its defaults (CRDs included, kept on uninstall)."""
    # Leftovers of an interrupted run: namespaces still terminating would refuse new objects.
    helm("uninstall", RELEASE, "-n", NAMESPACE, "--wait", check=False)
    delete_fleet(cluster, timeout="30s")
    cluster.kubectl(
        "delete", "namespace", NAMESPACE, FLEET_NAMESPACE, f"{NAMESPACE}-bare",
        "--ignore-not-found", "--wait=true", "--timeout=120s",
    )  # fmt: skip
    cluster.kubectl("create", "namespace", FLEET_NAMESPACE)
    # --take-ownership: CRDs applied earlier with `kubectl apply -f crds/` (by other tests or by
    # hand) become the release's, as README.md describes. KWOK makes the chart's pods Ready.
    helm(
        "install", RELEASE, str(CHART), "-n", NAMESPACE, "--create-namespace",
        "--take-ownership", "--wait", "--timeout", "180s",
    )  # fmt: skip
    try:
        yield RELEASE
    finally:
        helm("uninstall", RELEASE, "-n", NAMESPACE, "--wait", check=False)
        cluster.kubectl("delete", "namespace", NAMESPACE, "--wait=false", check=False)


@pytest.fixture(scope="module")
def service_account_kubeconfig(
    cluster: Cluster, release: str, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A kubeconfig holding a token of the chart's ServiceAccount."""
    path = tmp_path_factory.mktemp("sa") / "kubeconfig"
    return chart_support.service_account_kubeconfig(cluster, SERVICE_ACCOUNT, NAMESPACE, path)


@pytest.fixture(scope="module")
def operator(
    service_account_kubeconfig: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    process = OperatorProcess(
        service_account_kubeconfig,
        tmp_path_factory.mktemp("operator") / "operator.log",
        "--router-config-namespace",
        NAMESPACE,
    )
    process.start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="module")
def fleet(cluster: Cluster, operator: OperatorProcess) -> Iterator[list[dict[str, Any]]]:
    objects = fleet_objects()
    cluster.kubectl(
        "apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": objects})
    )
    try:
        yield objects
    finally:
        delete_fleet(cluster)
        cluster.kubectl("delete", "namespace", FLEET_NAMESPACE, "--wait=false", check=False)


def test_install_creates_every_object(cluster: Cluster, helm: Helm, release: str) -> None:
    objects = manifest_objects(helm)
    kinds = sorted({kind for kind, _, _ in objects})
    assert kinds == [
        "ClusterRole",
        "ClusterRoleBinding",
        "ConfigMap",
        "CustomResourceDefinition",
        "Deployment",
        "NetworkPolicy",
        "Role",
        "RoleBinding",
        "Service",
        "ServiceAccount",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
    ]
    for kind, name, namespace in objects:
        assert get(cluster, kind, name, namespace) is not None, (kind, name)
    for name in CRDS:
        crd = get(cluster, "crd", name, None)
        assert crd is not None
        assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
        assert crd["metadata"]["annotations"]["meta.helm.sh/release-namespace"] == NAMESPACE
    for name in (f"{RELEASE}-operator", f"{RELEASE}-router"):
        deployment = get(cluster, "deployment", name, NAMESPACE)
        assert deployment is not None
        assert deployment["status"].get("readyReplicas") == deployment["spec"]["replicas"]


def test_operator_token_is_the_charts_service_account(
    cluster: Cluster, service_account_kubeconfig: Path
) -> None:
    whoami = cluster.kubectl(
        f"--kubeconfig={service_account_kubeconfig}", "auth", "whoami", "-o", "json"
    )
    assert json.loads(whoami.stdout)["status"]["userInfo"]["username"] == USER
    secrets = cluster.kubectl(
        f"--kubeconfig={service_account_kubeconfig}", "get", "secrets", "-n", NAMESPACE, check=False
    )
    assert secrets.returncode != 0
    assert "Forbidden" in secrets.stderr


def test_operator_with_the_charts_rbac_reconciles_the_fleet(
    cluster: Cluster, operator: OperatorProcess, fleet: list[dict[str, Any]]
) -> None:
    pools = [o["metadata"]["name"] for o in fleet if o["kind"] == "ModelPool"]
    for name in pools:
        try:
            wait_for(
                f"ModelPool {name} Ready",
                lambda name=name: ready(get(cluster, "modelpool", name, FLEET_NAMESPACE)),
                timeout=90,
            )
        except AssertionError as error:
            raise AssertionError(f"{error}; operator log:\n{operator.log_tail(20)}") from None
    deployed = [o["metadata"]["name"] for o in fleet if "deploy" in o.get("spec", {})]
    for name in deployed:
        assert get(cluster, "deployment", name, FLEET_NAMESPACE) is not None
        assert get(cluster, "service", name, FLEET_NAMESPACE) is not None
    # At least this fleet's GPUs are allocated (other tests may run pods on the same nodes).
    fleet_gpus = {"h100": (32, 12), "l4": (16, 3), "a10g": (8, 2)}
    for pool, (capacity, gpus) in fleet_gpus.items():

        def counted(name: str = GPU_POOL_PREFIX + pool, gpus: int = gpus) -> dict[str, Any] | None:
            status = (get(cluster, "gpupool", name, None) or {}).get("status", {})
            return (
                status if status.get("allocated", 0) >= gpus and ready({"status": status}) else None
            )

        status = wait_for(f"GPUPool {pool} accounting", counted)
        assert status["capacity"] == capacity
        assert status["free"] == max(capacity - status["allocated"], 0)
    wait_for(
        "RoutingPolicy Ready", lambda: ready(get(cluster, "routingpolicy", "chat", FLEET_NAMESPACE))
    )

    def config() -> dict[str, Any] | None:
        configmap = get(cluster, "configmap", ROUTER_CONFIG, NAMESPACE)
        data = (configmap or {}).get("data") or {}
        return json.loads(data["config.json"]) if "config.json" in data else None

    def complete() -> dict[str, Any] | None:
        found = config()
        names = {p["name"] for p in (found or {}).get("pools", [])}
        return found if {f"{FLEET_NAMESPACE}/{n}" for n in pools} <= names else None

    written = wait_for("router config with the fleet in the release namespace", complete)
    assert {f"{FLEET_NAMESPACE}/{n}" for n in pools} <= {p["name"] for p in written["pools"]}
    assert operator.running(), operator.log_tail()
    assert denied_lines(operator) == []


def test_operator_recreates_a_deleted_router_config(
    cluster: Cluster, operator: OperatorProcess, fleet: list[dict[str, Any]]
) -> None:
    cluster.kubectl("delete", "configmap", ROUTER_CONFIG, "-n", NAMESPACE)
    # A fleet change makes a new revision, which the operator applies at once (create: the Role).
    cluster.kubectl(
        "patch", "modelpool", "llama-8b-l4", "-n", FLEET_NAMESPACE, "--type=merge",
        "-p", json.dumps({"spec": {"deploy": {"replicas": 2}}}),
    )  # fmt: skip
    configmap = wait_for(
        "router config recreated",
        lambda: get(cluster, "configmap", ROUTER_CONFIG, NAMESPACE),
        timeout=90,
    )
    assert "config.json" in configmap["data"]
    assert denied_lines(operator) == []


@pytest.mark.parametrize(
    ("namespace", "scopes"),
    [
        pytest.param(NAMESPACE, ("clusterRole", "releaseNamespace"), id="release-namespace"),
        pytest.param(FLEET_NAMESPACE, ("clusterRole",), id="other-namespace"),
    ],
)
def test_rbac_is_exactly_the_expectation(
    cluster: Cluster, release: str, namespace: str, scopes: tuple[str, ...]
) -> None:
    cluster.kubectl("create", "namespace", namespace, check=False)
    granted = can_i_list(cluster, USER, namespace) - always_rules()
    expected = set().union(*(expected_rules(EXPECTED_RBAC["cluster"][s]) for s in scopes))
    missing, excess = sorted(expected - granted), sorted(granted - expected)
    assert (missing, excess) == ([], []), f"missing: {missing}; excess: {excess}"


@pytest.mark.parametrize(
    ("namespace", "scopes"),
    [
        pytest.param(NAMESPACE, ("releaseNamespace",), id="release-namespace"),
        pytest.param(FLEET_NAMESPACE, (), id="other-namespace"),
    ],
)
def test_router_rbac_is_exactly_the_expectation(
    cluster: Cluster, release: str, namespace: str, scopes: tuple[str, ...]
) -> None:
    """The router's ServiceAccount (learning sharing on by default): its own ConfigMaps only."""
    cluster.kubectl("create", "namespace", namespace, check=False)
    granted = can_i_list(cluster, ROUTER_USER, namespace) - always_rules()
    expected = set().union(set(), *(expected_rules(EXPECTED_RBAC["router"][s]) for s in scopes))
    missing, excess = sorted(expected - granted), sorted(granted - expected)
    assert (missing, excess) == ([], []), f"missing: {missing}; excess: {excess}"


def test_router_writes_only_its_learning_configmaps(cluster: Cluster, release: str) -> None:
    """The admission policy narrows the router's configmaps rights (RBAC cannot select by
    label) to replica learning objects: its own config and any other ConfigMap are refused."""
    learning = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "fleetroute-learning-router-0",
            "namespace": NAMESPACE,
            "labels": {"fleetroute.dev/learning": "replica"},
        },
    }
    other = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "not-learning", "namespace": NAMESPACE},
    }

    def apply(obj: dict[str, Any]) -> Any:
        return cluster.kubectl(
            "apply", "--server-side", "--field-manager=fleetroute-router", f"--as={ROUTER_USER}",
            "-f", "-", input=json.dumps(obj), check=False,
        )  # fmt: skip

    created = apply(learning)
    assert created.returncode == 0, created.stderr
    for refused in (other, {**other, "metadata": {**other["metadata"], "name": ROUTER_CONFIG}}):
        result = apply(refused)
        assert result.returncode != 0
        assert "the router writes only its learning ConfigMaps" in result.stderr
    unlabelled = apply({**learning, "metadata": {**learning["metadata"], "labels": {}}})
    assert unlabelled.returncode != 0
    cluster.kubectl("delete", "configmap", learning["metadata"]["name"], "-n", NAMESPACE)


def test_upgrade_applies_changes_and_prunes(cluster: Cluster, helm: Helm, release: str) -> None:
    name = f"{RELEASE}-router"
    before = get(cluster, "configmap", ROUTER_CONFIG, NAMESPACE)
    helm(
        "upgrade", RELEASE, str(CHART), "-n", NAMESPACE, "--reuse-values", "--wait",
        "--set", "router.replicaCount=3", "--set", "router.podDisruptionBudget.enabled=true",
    )  # fmt: skip
    assert get(cluster, "deployment", name, NAMESPACE)["spec"]["replicas"] == 3  # type: ignore[index]
    assert get(cluster, "poddisruptionbudget", name, NAMESPACE) is not None
    # The operator's data in the chart's ConfigMap survives upgrades.
    after = get(cluster, "configmap", ROUTER_CONFIG, NAMESPACE)
    assert (after or {}).get("data") == (before or {}).get("data")

    rejected = helm(
        "upgrade", RELEASE, str(CHART), "-n", NAMESPACE, "--reuse-values",
        "--set", "router.replicas=3", check=False,
    )  # fmt: skip
    assert rejected.returncode != 0
    assert "additional properties 'replicas' not allowed" in rejected.stderr

    helm(
        "upgrade", RELEASE, str(CHART), "-n", NAMESPACE, "--reuse-values", "--wait",
        "--set", "router.podDisruptionBudget.enabled=false",
    )  # fmt: skip
    wait_for("PDB pruned", lambda: get(cluster, "poddisruptionbudget", name, NAMESPACE) is None)
    history = json.loads(helm("history", RELEASE, "-n", NAMESPACE, "-o", "json").stdout)
    assert [h["status"] for h in history][-1] == "deployed"


def test_uninstall_leaves_no_orphans_and_keeps_the_crds(
    cluster: Cluster, helm: Helm, release: str, operator: OperatorProcess
) -> None:
    # Delete the fleet while the operator (and its RBAC) still runs, as a user would.
    delete_fleet(cluster)
    assert denied_lines(operator) == []
    operator.stop()
    objects = manifest_objects(helm)
    result = helm("uninstall", RELEASE, "-n", NAMESPACE, "--wait")
    assert "kept due to the resource policy" in result.stdout
    for kind, name, namespace in objects:
        if kind == "CustomResourceDefinition":
            continue
        assert get(cluster, kind, name, namespace) is None, f"orphan {kind} {name}"
    labelled = cluster.kubectl_json(
        "get",
        "deployments,services,configmaps,serviceaccounts,roles,rolebindings,poddisruptionbudgets",
        "-n",
        NAMESPACE,
        "-l",
        f"app.kubernetes.io/instance={RELEASE}",
    )
    assert labelled["items"] == []
    for kind in ("clusterroles", "clusterrolebindings"):
        left = cluster.kubectl_json("get", kind, "-l", f"app.kubernetes.io/instance={RELEASE}")
        assert left["items"] == []
    for name in CRDS:
        assert get(cluster, "crd", name, None) is not None, f"CRD {name} was not kept"


def test_install_without_crds_beside_crds_applied_with_kubectl(
    cluster: Cluster, helm: Helm, release: str
) -> None:
    """The README's other path: `kubectl apply -f crds/`, then the chart with crds.enabled=false."""
    bare, namespace = "fleetroute-bare", f"{NAMESPACE}-bare"
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds"))
    try:
        helm(
            "install", bare, str(CHART), "-n", namespace, "--create-namespace", "--wait",
            "--set", "crds.enabled=false", "--set", "router.enabled=false",
        )  # fmt: skip
        text = helm("get", "manifest", bare, "-n", namespace).stdout
        kinds = {d["kind"] for d in yaml.safe_load_all(text) if d}
        assert "CustomResourceDefinition" not in kinds
        assert get(cluster, "deployment", f"{bare}-operator", namespace) is not None
    finally:
        helm("uninstall", bare, "-n", namespace, "--wait", check=False)
        cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
    for name in CRDS:
        assert get(cluster, "crd", name, None) is not None
