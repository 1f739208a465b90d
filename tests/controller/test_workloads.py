"""The Deployment and Service a ModelPool becomes, checked as data."""

from __future__ import annotations

from typing import Any

import pytest

from fleetroute.crds import GPUPoolSpec, ModelPoolSpec
from fleetroute_operator import labels, workloads
from tests.controller.fakes import with_identity


def _objects(
    example_objects: list[dict[str, Any]], name: str
) -> tuple[dict[str, Any], ModelPoolSpec, GPUPoolSpec]:
    body = with_identity(next(o for o in example_objects if o["metadata"]["name"] == name))
    spec = ModelPoolSpec.model_validate(body["spec"])
    assert spec.deploy is not None
    gpu = next(
        o
        for o in example_objects
        if o["kind"] == "GPUPool" and o["metadata"]["name"] == spec.deploy.gpu_pool
    )
    return body, spec, GPUPoolSpec.model_validate(gpu["spec"])


def test_deployment_requests_gpus_on_the_right_product(
    example_objects: list[dict[str, Any]],
) -> None:
    body, spec, gpu = _objects(example_objects, "llama-70b-decode")
    deployment = workloads.build_deployment(body, spec, "h100", gpu)
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["resources"]["limits"] == {"nvidia.com/gpu": "4"}
    assert container["resources"]["requests"]["nvidia.com/gpu"] == "4"
    terms = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"
    ]
    assert terms == [
        {
            "matchExpressions": [
                {
                    "key": "nvidia.com/gpu.product",
                    "operator": "In",
                    "values": ["NVIDIA-H100-80GB-HBM3"],
                }
            ]
        }
    ]
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod[
        "tolerations"
    ]
    assert deployment["spec"]["replicas"] == 2


def test_deployment_is_owned_labelled_and_selects_its_pods(
    example_objects: list[dict[str, Any]],
) -> None:
    body, spec, gpu = _objects(example_objects, "llama-70b-decode")
    deployment = workloads.build_deployment(body, spec, "h100", gpu)
    meta = deployment["metadata"]
    assert meta["ownerReferences"] == [
        {
            "apiVersion": "fleetroute.dev/v1alpha1",
            "kind": "ModelPool",
            "name": "llama-70b-decode",
            "uid": "uid-1",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert pod_labels[labels.MODELPOOL] == "llama-70b-decode"
    assert pod_labels[labels.ROLE] == "decode"
    assert pod_labels[labels.GPU_POOL] == "h100"
    assert pod_labels[labels.MODEL] == "meta-llama-Llama-3.1-70B-Instruct"
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert meta["annotations"][labels.MODEL_ANNOTATION] == "meta-llama/Llama-3.1-70B-Instruct"


def test_vllm_gets_model_and_port_then_the_users_args(
    example_objects: list[dict[str, Any]],
) -> None:
    body, spec, gpu = _objects(example_objects, "llama-8b-l4")
    container = workloads.build_deployment(body, spec, "l4", gpu)["spec"]["template"]["spec"][
        "containers"
    ][0]
    assert container["args"] == [
        "--model",
        "meta-llama/Llama-3.1-8B-Instruct",
        "--port",
        "8000",
        "--max-model-len=16384",
    ]
    assert "command" not in container
    assert container["readinessProbe"]["httpGet"] == {"port": "http", "path": "/health"}


def test_sglang_is_launched_with_its_own_entry_point(example_objects: list[dict[str, Any]]) -> None:
    body, spec, gpu = _objects(example_objects, "qwen-14b-a10g")
    container = workloads.build_deployment(body, spec, "a10g", gpu)["spec"]["template"]["spec"][
        "containers"
    ][0]
    assert container["command"] == ["python3", "-m", "sglang.launch_server"]
    assert container["args"][:2] == ["--model-path", "Qwen/Qwen2.5-14B-Instruct"]


def test_tensor_parallel_pods_get_shared_memory(example_objects: list[dict[str, Any]]) -> None:
    body, spec, gpu = _objects(example_objects, "llama-70b-decode")
    pod = workloads.build_deployment(body, spec, "h100", gpu)["spec"]["template"]["spec"]
    assert pod["volumes"][0]["emptyDir"]["medium"] == "Memory"
    body, spec, gpu = _objects(example_objects, "llama-8b-l4")
    assert (
        "volumes"
        not in workloads.build_deployment(body, spec, "l4", gpu)["spec"]["template"]["spec"]
    )


def test_servers_run_confined_and_without_a_token(example_objects: list[dict[str, Any]]) -> None:
    body, spec, gpu = _objects(example_objects, "llama-8b-l4")
    pod = workloads.build_deployment(body, spec, "l4", gpu)["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    # Default: the vLLM and SGLang images run as root, which runAsNonRoot would refuse.
    assert pod["securityContext"] == {
        "seccompProfile": {"type": "RuntimeDefault"},
        "runAsNonRoot": False,
    }
    assert pod["containers"][0]["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
    }


@pytest.mark.parametrize(
    ("deploy", "expected"),
    [
        ({"runAsNonRoot": True}, {"runAsNonRoot": True}),
        ({"runAsNonRoot": True, "runAsUser": 1000}, {"runAsNonRoot": True, "runAsUser": 1000}),
        ({"runAsUser": 0}, {"runAsNonRoot": False, "runAsUser": 0}),
    ],
)
def test_modelpool_chooses_the_servers_user(
    example_objects: list[dict[str, Any]], deploy: dict[str, Any], expected: dict[str, Any]
) -> None:
    body, spec, gpu = _objects(example_objects, "llama-8b-l4")
    body["spec"]["deploy"].update(deploy)
    spec = ModelPoolSpec.model_validate(body["spec"])
    pod = workloads.build_deployment(body, spec, "l4", gpu)["spec"]["template"]["spec"]
    assert pod["securityContext"] == {"seccompProfile": {"type": "RuntimeDefault"}, **expected}


def test_rollouts_never_need_spare_gpus(example_objects: list[dict[str, Any]]) -> None:
    body, spec, gpu = _objects(example_objects, "llama-8b-l4")
    strategy = workloads.build_deployment(body, spec, "l4", gpu)["spec"]["strategy"]
    assert strategy["rollingUpdate"] == {"maxSurge": 0, "maxUnavailable": 1}


def test_extra_node_labels_and_gpu_resource_come_from_the_gpupool(
    example_objects: list[dict[str, Any]],
) -> None:
    body, spec, _ = _objects(example_objects, "llama-8b-l4")
    gpu = GPUPoolSpec.model_validate(
        {
            "product": "NVIDIA-L4",
            "nodeSelector": {"zone": "a"},
            "gpuResource": "amd.com/gpu",
            "tolerations": [],
            "power": {"idleWatts": 16, "maxWatts": 72},
        }
    )
    pod = workloads.build_deployment(body, spec, "l4", gpu)["spec"]["template"]["spec"]
    keys = [
        e["key"]
        for e in pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
            "nodeSelectorTerms"
        ][0]["matchExpressions"]
    ]
    assert keys == ["nvidia.com/gpu.product", "zone"]
    assert pod["containers"][0]["resources"]["limits"] == {"amd.com/gpu": "1"}
    assert pod["tolerations"] == []


def test_service_fronts_the_pool(example_objects: list[dict[str, Any]]) -> None:
    body, spec, _ = _objects(example_objects, "llama-8b-l4")
    service = workloads.build_service(body, spec)
    assert service["spec"]["selector"] == {labels.MODELPOOL: "llama-8b-l4"}
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    assert service["metadata"]["ownerReferences"][0]["uid"] == "uid-1"


def test_builders_refuse_adopted_pools(example_objects: list[dict[str, Any]]) -> None:
    body = with_identity(
        next(o for o in example_objects if o["metadata"]["name"] == "mistral-7b-external")
    )
    spec = ModelPoolSpec.model_validate(body["spec"])
    with pytest.raises(ValueError, match=r"spec\.deploy"):
        workloads.build_service(body, spec)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("Qwen/Qwen2.5-14B-Instruct", "Qwen-Qwen2.5-14B-Instruct"), ("a b", "a-b"), ("-x-", "x")],
)
def test_label_values_are_sanitised(text: str, expected: str) -> None:
    assert labels.label_value(text) == expected


def test_long_label_values_keep_a_distinguishing_hash() -> None:
    one, two = labels.label_value("m" * 80 + "1"), labels.label_value("m" * 80 + "2")
    assert len(one) <= 63
    assert len(two) <= 63
    assert one != two
