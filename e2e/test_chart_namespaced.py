"""The chart's namespace-scoped operator on the real cluster: exactly the rights of its mode, a
fleet reconciled with them, and a same-named Deployment it did not create left alone."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

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

RELEASE = "fleetroute-ns"
NAMESPACE = "fleetroute-chart-ns"
WATCHED = "fleetroute-chart-ns-fleet"
OTHER = "fleetroute-chart-ns-other"
SERVICE_ACCOUNT = f"{RELEASE}-operator"
USER = f"system:serviceaccount:{NAMESPACE}:{SERVICE_ACCOUNT}"
GPU_POOL = "chart-ns-l4"


def _apply(cluster: Cluster, *objects: dict[str, Any]) -> None:
    cluster.kubectl(
        "apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": objects})
    )


def _model_pool(name: str, namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "fleetroute.dev/v1alpha1",
        "kind": "ModelPool",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "model": "meta-llama/Llama-3.1-8B-Instruct",
            "deploy": {"gpuPool": GPU_POOL, "replicas": 1, "image": "vllm/vllm-openai:v0.11.0"},
        },
    }


def _ready_condition(obj: dict[str, Any] | None) -> dict[str, Any] | None:
    conditions = (obj or {}).get("status", {}).get("conditions", [])
    return next((c for c in conditions if c["type"] == "Ready"), None)


def _cleanup(cluster: Cluster, helm: Helm) -> None:
    for namespace in (WATCHED, OTHER):
        cluster.kubectl(
            "delete", "modelpools", "--all", "-n", namespace, "--ignore-not-found",
            "--timeout=60s", check=False,
        )  # fmt: skip
    cluster.kubectl("delete", "gpupool", GPU_POOL, "--ignore-not-found", check=False)
    helm("uninstall", RELEASE, "-n", NAMESPACE, "--wait", check=False)
    cluster.kubectl(
        "delete", "namespace", NAMESPACE, WATCHED, OTHER, "--ignore-not-found", "--wait=true",
        "--timeout=120s", check=False,
    )  # fmt: skip


@pytest.fixture(scope="module")
def helm(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Helm:
    return Helm(cluster, tmp_path_factory.mktemp("helm"))


@pytest.fixture(scope="module")
def release(cluster: Cluster, helm: Helm) -> Iterator[str]:
    """The chart, namespace-scoped to WATCHED (CRDs applied with kubectl, no router)."""
    _cleanup(cluster, helm)
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds"))
    for namespace in (WATCHED, OTHER):  # a Role needs its namespace to exist
        cluster.kubectl("create", "namespace", namespace)
    helm(
        "install", RELEASE, str(CHART), "-n", NAMESPACE, "--create-namespace", "--wait",
        "--timeout", "180s", "--set", "crds.enabled=false", "--set", "router.enabled=false",
        "--set", f"operator.watchNamespaces={{{WATCHED}}}",
    )  # fmt: skip
    try:
        yield RELEASE
    finally:
        _cleanup(cluster, helm)


@pytest.fixture(scope="module")
def operator(
    cluster: Cluster, release: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    """The operator with the scope arguments the chart gives it, and the token of the chart's
    ServiceAccount."""
    directory = tmp_path_factory.mktemp("operator-ns")
    kubeconfig = chart_support.service_account_kubeconfig(
        cluster, SERVICE_ACCOUNT, NAMESPACE, directory / "kubeconfig"
    )
    # The scope arguments of the chart's operator Deployment, as installed.
    deployment = get(cluster, "deployment", f"{RELEASE}-operator", NAMESPACE)
    assert deployment is not None
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    scope = [
        a
        for a in container["args"]
        if a.startswith(("--namespace", "--no-gpupool-status", "--no-learning-fold"))
    ]
    # No router in this release: no learning to fold, and no rights for it.
    assert scope == [f"--namespace={WATCHED}", "--no-gpupool-status", "--no-learning-fold"]
    process = OperatorProcess(
        kubeconfig, directory / "operator.log", "--router-config-namespace", NAMESPACE, *scope
    )
    _apply(
        cluster,
        {
            "apiVersion": "fleetroute.dev/v1alpha1",
            "kind": "GPUPool",
            "metadata": {"name": GPU_POOL},
            "spec": {"product": "NVIDIA-L4", "power": {"idleWatts": 16, "maxWatts": 72}},
        },
    )
    process.start()
    try:
        yield process
    finally:
        process.stop()


@pytest.mark.parametrize(
    ("namespace", "scopes"),
    [
        pytest.param(
            NAMESPACE, ("clusterRole", "releaseNamespaceNoRouter"), id="release-namespace"
        ),
        pytest.param(WATCHED, ("clusterRole", "watchedNamespace"), id="watched-namespace"),
        pytest.param(OTHER, ("clusterRole",), id="other-namespace"),
    ],
)
def test_rbac_is_exactly_the_expectation(
    cluster: Cluster, release: str, namespace: str, scopes: tuple[str, ...]
) -> None:
    granted = can_i_list(cluster, USER, namespace) - always_rules()
    expected = set().union(*(expected_rules(EXPECTED_RBAC["namespaced"][s]) for s in scopes))
    missing, excess = sorted(expected - granted), sorted(granted - expected)
    assert (missing, excess) == ([], []), f"missing: {missing}; excess: {excess}"


def test_the_watched_namespace_is_reconciled_with_these_rights_only(
    cluster: Cluster, operator: OperatorProcess
) -> None:
    _apply(cluster, _model_pool("small", WATCHED), _model_pool("elsewhere", OTHER))
    try:
        wait_for(
            "ModelPool small Ready",
            lambda: ready(get(cluster, "modelpool", "small", WATCHED)),
            timeout=90,
        )
    except AssertionError as error:
        raise AssertionError(f"{error}; operator log:\n{operator.log_tail(30)}") from None
    deployment = get(cluster, "deployment", "small", WATCHED)
    assert deployment is not None
    pod_spec = deployment["spec"]["template"]["spec"]
    assert pod_spec["automountServiceAccountToken"] is False
    assert pod_spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod_spec["containers"][0]["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    config = get(cluster, "configmap", "fleetroute-router-config", NAMESPACE)
    assert config is not None
    assert f"{WATCHED}/small" in config["data"]["config.json"]
    # Outside its namespaces it sees nothing, and it leaves GPUPool status alone.
    assert "status" not in (get(cluster, "modelpool", "elsewhere", OTHER) or {})
    assert get(cluster, "deployment", "elsewhere", OTHER) is None
    assert not (get(cluster, "gpupool", GPU_POOL, None) or {}).get("status")
    assert operator.running(), operator.log_tail()
    assert denied_lines(operator) == []


def test_a_same_named_deployment_it_did_not_create_is_refused(
    cluster: Cluster, operator: OperatorProcess
) -> None:
    cluster.kubectl(
        "create", "deployment", "taken", "-n", WATCHED, "--image=registry.example/web:1",
        "--replicas=1",
    )  # fmt: skip
    before = get(cluster, "deployment", "taken", WATCHED)
    assert before is not None
    _apply(cluster, _model_pool("taken", WATCHED))

    def refused() -> dict[str, Any] | None:
        found = _ready_condition(get(cluster, "modelpool", "taken", WATCHED))
        return found if found and found["reason"] == "NameConflict" else None

    condition = wait_for("ModelPool taken NameConflict", refused, timeout=60)
    assert condition["status"] == "False"
    assert condition["message"].startswith(
        f"Deployment {WATCHED}/taken already exists and is not owned by ModelPool taken"
    )
    assert "written by kubectl-create" in condition["message"]
    after = get(cluster, "deployment", "taken", WATCHED)
    assert after is not None
    assert "ownerReferences" not in after["metadata"]
    assert after["spec"] == before["spec"]
    assert get(cluster, "service", "taken", WATCHED) is None

    # kopf posted the refusal as a Warning event of the ModelPool (events: create in the Role).
    def warned() -> bool:
        events = cluster.kubectl_json(
            "get", "events", "-n", WATCHED, "--field-selector", "involvedObject.name=taken"
        )
        return any(
            e["type"] == "Warning" and "already exists and is not owned" in e["message"]
            for e in events["items"]
        )

    wait_for("a Warning event of ModelPool taken", warned, timeout=30)
    # Deleting the ModelPool leaves the Deployment it never owned.
    cluster.kubectl("delete", "modelpool", "taken", "-n", WATCHED, "--wait=true")
    assert get(cluster, "deployment", "taken", WATCHED) is not None
    assert denied_lines(operator) == []
