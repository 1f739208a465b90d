"""Reconcile steps against an in-memory API: what gets applied, and the status that results."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from fleetroute.crds import GPUPoolSpec
from fleetroute_operator import conditions, labels, reconcile
from fleetroute_operator.capacity import PoolCapacity, node_facts, pod_requests
from fleetroute_operator.kube import ApiError
from tests.controller.fakes import FakeKube, node, pod, with_identity

H100 = "NVIDIA-H100-80GB-HBM3"


def _example(objects: list[dict[str, Any]], name: str) -> dict[str, Any]:
    return with_identity(next(o for o in objects if o["metadata"]["name"] == name))


def _gpu_pool(
    objects: list[dict[str, Any]], name: str, capacity: int, free: int, nodes: int = 4
) -> reconcile.GpuPoolView:
    spec = GPUPoolSpec.model_validate(_example(objects, name)["spec"])
    return reconcile.GpuPoolView(
        name, spec, PoolCapacity(nodes=nodes, capacity=capacity, allocated=capacity - free)
    )


def _controller(owner: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": True,
    }


def _ready(status: dict[str, Any]) -> dict[str, Any]:
    found = conditions.find(status["conditions"], conditions.READY)
    assert found is not None
    return dict(found)


def _scheduled_pods(kube: FakeKube, name: str, count: int, gpus: int, *, ready: bool) -> None:
    for i in range(count):
        kube.seed(
            pod(
                f"{name}-{i}",
                labels={labels.MODELPOOL: name},
                node_name=f"h100-{i}",
                gpus=gpus,
                ip=f"10.0.0.{i + 1}",
                host_ip=f"192.0.2.{i + 1}",
                ready=ready,
            )
        )


def test_deployed_pool_applies_workloads_and_reports_ready(
    example_objects: list[dict[str, Any]],
) -> None:
    kube = FakeKube()
    body = _example(example_objects, "llama-70b-decode")
    _scheduled_pods(kube, "llama-70b-decode", 2, 4, ready=True)
    kube.seed(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "name": "llama-70b-decode",
                "namespace": "llm",
                "ownerReferences": [_controller(body)],
            },
            "status": {"readyReplicas": 2},
        }
    )
    status = reconcile.modelpool(kube, body, _gpu_pool(example_objects, "h100", 32, 24))
    assert [m["kind"] for m in kube.applied] == ["Deployment", "Service"]
    assert status["replicas"] == 2
    assert status["readyReplicas"] == 2
    assert status["endpoints"] == [
        {
            "address": "10.0.0.1:8000",
            "ready": True,
            "pod": "llama-70b-decode-0",
            "nodeIP": "192.0.2.1",
        },
        {
            "address": "10.0.0.2:8000",
            "ready": True,
            "pod": "llama-70b-decode-1",
            "nodeIP": "192.0.2.2",
        },
    ]
    assert status["gpuProduct"] == H100
    ready = _ready(status)
    assert (ready["status"], ready["reason"], ready["observedGeneration"]) == (
        "True",
        "AllReplicasReady",
        1,
    )


def test_reconcile_is_idempotent(example_objects: list[dict[str, Any]]) -> None:
    kube = FakeKube()
    body = _example(example_objects, "llama-8b-l4")
    first = reconcile.modelpool(kube, body, _gpu_pool(example_objects, "l4", 16, 16))
    body["status"] = first
    second = reconcile.modelpool(kube, body, _gpu_pool(example_objects, "l4", 16, 16))
    assert first == second
    assert kube.applied[0] == kube.applied[2]
    assert kube.applied[1] == kube.applied[3]


def test_pool_that_cannot_fit_says_how_many_gpus_it_needs(
    example_objects: list[dict[str, Any]],
) -> None:
    body = _example(example_objects, "llama-70b-decode")
    body["spec"]["deploy"]["replicas"] = 10
    status = reconcile.modelpool(FakeKube(), body, _gpu_pool(example_objects, "h100", 32, 32))
    ready = _ready(status)
    assert ready["status"] == "False"
    assert ready["reason"] == "InsufficientGPUs"
    assert ready["message"].startswith(
        "needs 40 GPUs of NVIDIA-H100-80GB-HBM3 (10 replicas x 4), GPUPool h100 has 32"
    )


def test_pending_pods_are_reported_with_the_schedulers_words(
    example_objects: list[dict[str, Any]],
) -> None:
    kube = FakeKube()
    body = _example(example_objects, "llama-70b-decode")
    kube.seed(
        pod(
            "llama-70b-decode-0",
            labels={labels.MODELPOOL: "llama-70b-decode"},
            node_name="h100-0",
            gpus=4,
            ip="10.0.0.1",
            ready=True,
        )
    )
    kube.seed(
        pod(
            "llama-70b-decode-1",
            labels={labels.MODELPOOL: "llama-70b-decode"},
            gpus=4,
            unschedulable="0/12 nodes are available: 4 Insufficient nvidia.com/gpu.",
        )
    )
    status = reconcile.modelpool(kube, body, _gpu_pool(example_objects, "h100", 32, 0))
    ready = _ready(status)
    assert ready["reason"] == "InsufficientGPUs"
    assert "has 4 available of 32" in ready["message"]
    assert "scheduler: 0/12 nodes are available: 4 Insufficient nvidia.com/gpu." in ready["message"]
    assert [(e["address"], e["ready"]) for e in status["endpoints"]] == [("10.0.0.1:8000", True)]


def test_missing_gpupool_is_a_condition_not_a_crash(example_objects: list[dict[str, Any]]) -> None:
    kube = FakeKube()
    status = reconcile.modelpool(kube, _example(example_objects, "llama-8b-l4"), None)
    assert _ready(status)["reason"] == "GPUPoolNotFound"
    assert "GPUPool l4 does not exist" in _ready(status)["message"]
    assert kube.applied == []


def test_replicas_not_ready_yet(example_objects: list[dict[str, Any]]) -> None:
    kube = FakeKube()
    _scheduled_pods(kube, "llama-70b-decode", 2, 4, ready=False)
    status = reconcile.modelpool(
        kube,
        _example(example_objects, "llama-70b-decode"),
        _gpu_pool(example_objects, "h100", 32, 24),
    )
    assert _ready(status)["reason"] == "ReplicasNotReady"
    assert _ready(status)["message"] == "0/2 replicas ready"


def test_adopted_static_endpoints(example_objects: list[dict[str, Any]]) -> None:
    kube = FakeKube()
    status = reconcile.modelpool(kube, _example(example_objects, "mistral-7b-external"), None)
    assert kube.applied == []
    assert status["endpoints"] == [{"address": "127.0.0.1:8401", "ready": True}]
    assert _ready(status)["reason"] == "EndpointsAdopted"


def test_adopted_by_selector_uses_ready_pods(example_objects: list[dict[str, Any]]) -> None:
    kube = FakeKube()
    kube.seed(pod("vllm-a", labels={"app": "vllm"}, ip="10.1.0.1", ready=True))
    kube.seed(pod("vllm-b", labels={"app": "vllm"}, ip="10.1.0.2", ready=False))
    kube.seed(pod("other", labels={"app": "web"}, ip="10.1.0.3", ready=True))
    body = _example(example_objects, "mistral-7b-external")
    body["spec"]["adopt"] = {"selector": {"matchLabels": {"app": "vllm"}}, "port": 8001}
    status = reconcile.modelpool(kube, body, None)
    assert status["endpoints"] == [
        {"address": "10.1.0.1:8001", "ready": True, "pod": "vllm-a"},
        {"address": "10.1.0.2:8001", "ready": False, "pod": "vllm-b"},
    ]
    assert (status["replicas"], status["readyReplicas"]) == (2, 1)


def test_invalid_spec_is_a_clear_error(example_objects: list[dict[str, Any]]) -> None:
    body = _example(example_objects, "llama-8b-l4")
    body["spec"]["deploy"]["gpusPerReplica"] = "lots"
    with pytest.raises(
        reconcile.InvalidSpec, match=r"spec.deploy.gpusPerReplica: Input should be a valid integer"
    ):
        reconcile.modelpool(FakeKube(), body, None)


def test_transition_time_changes_only_with_status(example_objects: list[dict[str, Any]]) -> None:
    kube = FakeKube()
    body = _example(example_objects, "llama-8b-l4")
    first = reconcile.modelpool(kube, body, _gpu_pool(example_objects, "l4", 16, 16))
    body["status"] = copy.deepcopy(first)
    body["status"]["conditions"][0]["lastTransitionTime"] = "2020-01-01T00:00:00Z"
    again = reconcile.modelpool(kube, body, _gpu_pool(example_objects, "l4", 16, 16))
    assert _ready(again)["lastTransitionTime"] == "2020-01-01T00:00:00Z"
    kube.seed(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "name": "llama-8b-l4",
                "namespace": "llm",
                "ownerReferences": [_controller(body)],
            },
            "status": {"readyReplicas": 3},
        }
    )
    flipped = reconcile.modelpool(kube, body, _gpu_pool(example_objects, "l4", 16, 16))
    assert _ready(flipped)["status"] == "True"
    assert _ready(flipped)["lastTransitionTime"] != "2020-01-01T00:00:00Z"


def test_gpupool_status_from_nodes_and_pods(example_objects: list[dict[str, Any]]) -> None:
    body = _example(example_objects, "h100")
    nodes = [node_facts(node(f"h100-{i}", H100, 8)) for i in range(4)] + [
        node_facts(node("l4-0", "NVIDIA-L4", 4))
    ]
    held = {"h100-0": [pod_requests(pod("p", node_name="h100-0", gpus=4))]}
    status = reconcile.gpupool_status(body, nodes, held)
    assert {k: status[k] for k in ("nodes", "capacity", "allocated", "free")} == {
        "nodes": 4,
        "capacity": 32,
        "allocated": 4,
        "free": 28,
    }
    assert _ready(status)["reason"] == "NodesFound"
    assert _ready(reconcile.gpupool_status(body, [], {}))["reason"] == "NoNodes"


def test_routingpolicy_status_names_missing_candidates(
    example_objects: list[dict[str, Any]],
) -> None:
    body = _example(example_objects, "chat")
    ready_pool = {"status": {"conditions": [{"type": "Ready", "status": "True"}]}}
    status = reconcile.routingpolicy_status(body, {("llm", "llama-8b-l4"): ready_pool})
    assert _ready(status)["reason"] == "CandidatesMissing"
    assert "llama-70b-decode" in _ready(status)["message"]
    pools = {("llm", c["modelPool"]): {"status": {}} for c in body["spec"]["candidates"]}
    assert _ready(reconcile.routingpolicy_status(body, pools))["reason"] == "NoCandidateReady"
    pools[("llm", "llama-8b-l4")] = ready_pool
    status = reconcile.routingpolicy_status(body, pools)
    assert (_ready(status)["reason"], status["readyCandidates"]) == ("CandidatesReady", 1)


def test_routingpolicy_naming_a_prefill_pool_says_which_to_name(
    example_objects: list[dict[str, Any]],
) -> None:
    body = _example(example_objects, "chat")
    body["spec"]["candidates"] = [{"modelPool": "llama-70b-prefill"}]
    prefill = _example(example_objects, "llama-70b-prefill")
    status = reconcile.routingpolicy_status(body, {("llm", "llama-70b-prefill"): prefill})
    ready = _ready(status)
    assert (ready["status"], ready["reason"]) == ("False", "PrefillCandidate")
    assert (
        ready["message"] == "name the decode pool of a prefill/decode pair, not llama-70b-prefill"
    )


def _foreign(kind: str, name: str, **meta: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1" if kind == "Deployment" else "v1",
        "kind": kind,
        "metadata": {"name": name, "namespace": "llm", "uid": f"{kind}-uid", **meta},
        "spec": {"replicas": 5},
    }


def test_a_same_named_deployment_we_did_not_create_is_refused(
    example_objects: list[dict[str, Any]],
) -> None:
    kube = FakeKube()
    body = _example(example_objects, "llama-8b-l4")
    kube.seed(
        _foreign(
            "Deployment",
            "llama-8b-l4",
            labels={"app.kubernetes.io/managed-by": "Helm"},
            managedFields=[
                {"manager": "helm", "operation": "Update"},
                {
                    "manager": "kube-controller-manager",
                    "operation": "Update",
                    "subresource": "status",
                },
            ],
        )
    )
    status = reconcile.modelpool(kube, body, _gpu_pool(example_objects, "l4", 16, 16))
    assert kube.applied == []
    assert kube.objects[("apps/v1", "Deployment", "llm", "llama-8b-l4")]["spec"] == {"replicas": 5}
    ready = _ready(status)
    assert (ready["status"], ready["reason"]) == ("False", "NameConflict")
    assert ready["message"].startswith(
        "Deployment llm/llama-8b-l4 already exists and is not owned by ModelPool llama-8b-l4"
    )
    assert "no controller; app.kubernetes.io/managed-by=Helm; written by helm" in ready["message"]
    assert status["endpoints"] == []
    assert status["readyReplicas"] == 0


def test_an_object_of_a_deleted_pool_of_the_same_name_is_not_adopted(
    example_objects: list[dict[str, Any]],
) -> None:
    """Ownership is by uid: the Deployment of an earlier ModelPool of that name (garbage
    collection has not removed it yet) belongs to that one."""
    kube = FakeKube()
    body = _example(example_objects, "llama-8b-l4")
    earlier = {**_controller(body), "uid": "uid-of-the-earlier-pool"}
    kube.seed(_foreign("Deployment", "llama-8b-l4", ownerReferences=[earlier]))
    status = reconcile.modelpool(kube, body, _gpu_pool(example_objects, "l4", 16, 16))
    assert kube.applied == []
    assert (
        "controlled by ModelPool llama-8b-l4 (uid uid-of-the-earlier-pool)"
        in (_ready(status)["message"])
    )


def test_a_foreign_service_stops_the_deployment_too(
    example_objects: list[dict[str, Any]],
) -> None:
    kube = FakeKube()
    body = _example(example_objects, "llama-8b-l4")
    kube.seed(_foreign("Service", "llama-8b-l4"))
    status = reconcile.modelpool(kube, body, _gpu_pool(example_objects, "l4", 16, 16))
    assert kube.applied == []
    assert _ready(status)["reason"] == "NameConflict"
    assert _ready(status)["message"].startswith("Service llm/llama-8b-l4 already exists")


def test_the_pool_proceeds_once_the_conflicting_object_is_gone(
    example_objects: list[dict[str, Any]],
) -> None:
    kube = FakeKube()
    body = _example(example_objects, "llama-8b-l4")
    kube.seed(_foreign("Service", "llama-8b-l4"))
    body["status"] = reconcile.modelpool(kube, body, _gpu_pool(example_objects, "l4", 16, 16))
    del kube.objects[("v1", "Service", "llm", "llama-8b-l4")]
    status = reconcile.modelpool(kube, body, _gpu_pool(example_objects, "l4", 16, 16))
    assert [m["kind"] for m in kube.applied] == ["Deployment", "Service"]
    assert _ready(status)["reason"] == "ReplicasNotReady"


def test_applying_over_our_own_objects_carries_their_uid(
    example_objects: list[dict[str, Any]],
) -> None:
    """The uid makes the API server refuse the apply if the object was replaced since the check."""
    kube = FakeKube()
    body = _example(example_objects, "llama-8b-l4")
    for kind in ("Deployment", "Service"):
        kube.seed(_foreign(kind, "llama-8b-l4", ownerReferences=[_controller(body)]))
    reconcile.modelpool(kube, body, _gpu_pool(example_objects, "l4", 16, 16))
    assert [m["metadata"].get("uid") for m in kube.applied] == ["Deployment-uid", "Service-uid"]
    assert [m["metadata"]["ownerReferences"][0]["uid"] for m in kube.applied] == ["uid-1"] * 2


class ReplacingKube(FakeKube):
    """A Kube whose objects were replaced since they were read: applies carrying the old uid are
    refused as the API server refuses them."""

    def apply(self, manifest: dict[str, Any]) -> dict[str, Any]:
        if manifest["metadata"].get("uid"):
            raise ApiError(
                f'{manifest["kind"]} "x" is invalid: metadata.uid: Invalid value: "u": '
                "field is immutable",
                status=422,
                retriable=False,
            )
        return super().apply(manifest)


def test_an_object_replaced_after_the_check_makes_the_reconcile_retry(
    example_objects: list[dict[str, Any]],
) -> None:
    kube = ReplacingKube()
    body = _example(example_objects, "llama-8b-l4")
    kube.seed(_foreign("Deployment", "llama-8b-l4", ownerReferences=[_controller(body)]))
    with pytest.raises(ApiError, match="was replaced since it was checked") as raised:
        reconcile.modelpool(kube, body, _gpu_pool(example_objects, "l4", 16, 16))
    assert raised.value.retriable
