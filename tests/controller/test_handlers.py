"""The kopf handlers with realistic kwargs: indexes, patches and the memo, as kopf passes them."""

from __future__ import annotations

import logging
from typing import Any

import kopf
import pytest

from fleetroute_operator import handlers
from fleetroute_operator.capacity import node_facts
from fleetroute_operator.kube import ApiError
from fleetroute_operator.settings import Settings
from tests.controller.fakes import FakeKube, node, pod, with_identity

H100 = "NVIDIA-H100-80GB-HBM3"


def _index(entries: dict[Any, Any]) -> dict[Any, list[Any]]:
    """An index as handlers see it: key -> a store of values."""
    return {key: [value] for key, value in entries.items()}


def _body(objects: list[dict[str, Any]], name: str) -> kopf.Body:
    return kopf.Body(with_identity(next(o for o in objects if o["metadata"]["name"] == name)))


def _memo(kube: FakeKube) -> kopf.Memo:
    return kopf.Memo(state=handlers.State(kube, Settings()))


def test_registration_uses_the_given_registry_only() -> None:
    registry = kopf.OperatorRegistry()
    handlers.register(registry)

    def ids(kind: Any) -> set[str]:
        return {h.id for h in kind.get_all_handlers()}

    assert ids(registry._indexing) == {
        "index_nodes",
        "index_gpu_pods",
        "index_gpupools",
        "index_modelpools",
        "index_policies",
    }
    # No timers or daemons: kopf would put a finalizer on every object that has one.
    assert ids(registry._spawning) == set()
    assert ids(registry._changing) == {"modelpool_reconcile"}
    assert ids(registry._watching) == {"router_config"}
    assert not kopf.get_default_registry()._indexing.get_all_handlers()


def test_index_handlers_key_what_the_reconcilers_look_up(
    example_objects: list[dict[str, Any]],
) -> None:
    gpu_pod = kopf.Body(pod("p", node_name="h100-0", gpus=4))
    assert handlers.index_gpu_pods(body=gpu_pod) == {"h100-0": {"nvidia.com/gpu": 4}}
    assert handlers._holds_extended_resources(body=gpu_pod)
    assert not handlers._holds_extended_resources(body=kopf.Body(pod("cpu", node_name="cpu-0")))
    assert not handlers._holds_extended_resources(body=kopf.Body(pod("pending", gpus=4)))
    facts = handlers.index_nodes(name="h100-0", body=kopf.Body(node("h100-0", H100, 8)))
    assert facts["h100-0"].allocatable["nvidia.com/gpu"] == 8


def test_gpupool_timer_patches_capacity(example_objects: list[dict[str, Any]]) -> None:
    patch = kopf.Patch()
    nodes = _index({f"h100-{i}": node_facts(node(f"h100-{i}", H100, 8)) for i in range(4)})
    pods = {"h100-1": [{"nvidia.com/gpu": 8}]}
    handlers.gpupool_status(
        body=_body(example_objects, "h100"), patch=patch, index_nodes=nodes, index_gpu_pods=pods
    )
    status = patch["status"]
    assert (status["capacity"], status["allocated"], status["free"], status["nodes"]) == (
        32,
        8,
        24,
        4,
    )


def test_status_patch_is_empty_when_nothing_changed(example_objects: list[dict[str, Any]]) -> None:
    nodes = _index({"h100-0": node_facts(node("h100-0", H100, 8))})
    first = kopf.Patch()
    body = _body(example_objects, "h100")
    handlers.gpupool_status(body=body, patch=first, index_nodes=nodes, index_gpu_pods={})
    settled = kopf.Body({**body, "status": dict(first["status"])})
    again = kopf.Patch()
    handlers.gpupool_status(body=settled, patch=again, index_nodes=nodes, index_gpu_pods={})
    assert dict(again) == {}


def test_modelpool_handler_applies_and_patches(example_objects: list[dict[str, Any]]) -> None:
    kube = FakeKube()
    patch = kopf.Patch()
    h100 = next(o for o in example_objects if o["metadata"]["name"] == "h100")
    handlers.modelpool_reconcile(
        body=_body(example_objects, "llama-70b-decode"),
        patch=patch,
        memo=_memo(kube),
        index_gpupools=_index({"h100": h100}),
        index_nodes=_index({f"h100-{i}": node_facts(node(f"h100-{i}", H100, 8)) for i in range(4)}),
        index_gpu_pods={},
    )
    assert [m["kind"] for m in kube.applied] == ["Deployment", "Service"]
    assert patch["status"]["conditions"][0]["reason"] == "ReplicasNotReady"
    assert patch["status"]["gpuProduct"] == H100


def test_invalid_modelpool_is_a_permanent_error(example_objects: list[dict[str, Any]]) -> None:
    body = with_identity(next(o for o in example_objects if o["metadata"]["name"] == "llama-8b-l4"))
    body["spec"]["role"] = "sideways"
    patch = kopf.Patch()
    with pytest.raises(kopf.PermanentError, match=r"invalid ModelPool: spec\.role"):
        handlers.modelpool_reconcile(
            body=kopf.Body(body),
            patch=patch,
            memo=_memo(FakeKube()),
            index_gpupools={},
            index_nodes={},
            index_gpu_pods={},
        )
    # The status says so too, for `kubectl get`.
    (ready,) = patch["status"]["conditions"]
    assert (ready["status"], ready["reason"]) == ("False", "InvalidSpec")
    assert ready["message"].startswith("spec.role: ")


def test_router_config_handler_writes_the_configmap(example_objects: list[dict[str, Any]]) -> None:
    kube = FakeKube()
    by_kind: dict[str, dict[Any, Any]] = {"ModelPool": {}, "RoutingPolicy": {}, "GPUPool": {}}
    for obj in example_objects:
        if obj["kind"] in by_kind:
            key = (
                obj["metadata"]["name"]
                if obj["kind"] == "GPUPool"
                else ("llm", obj["metadata"]["name"])
            )
            by_kind[obj["kind"]][key] = obj
    handlers.router_config(
        memo=_memo(kube),
        logger=kopf.LocalObjectLogger(body=kopf.Body({}), settings=kopf.OperatorSettings()),
        index_modelpools=_index(by_kind["ModelPool"]),
        index_policies=_index(by_kind["RoutingPolicy"]),
        index_gpupools=_index(by_kind["GPUPool"]),
    )
    (configmap,) = kube.applied
    assert configmap["kind"] == "ConfigMap"
    assert configmap["metadata"]["name"] == "fleetroute-router-config"


class RefusingKube(FakeKube):
    """A Kube whose applies fail with a given API error."""

    def __init__(self, error: ApiError) -> None:
        super().__init__()
        self.error = error

    def apply(self, manifest: dict[str, Any]) -> dict[str, Any]:
        raise self.error


def _reconcile_with(kube: FakeKube, example_objects: list[dict[str, Any]]) -> kopf.Patch:
    patch = kopf.Patch()
    h100 = next(o for o in example_objects if o["metadata"]["name"] == "h100")
    handlers.modelpool_reconcile(
        body=_body(example_objects, "llama-70b-decode"),
        patch=patch,
        memo=_memo(kube),
        index_gpupools=_index({"h100": h100}),
        index_nodes={},
        index_gpu_pods={},
    )
    return patch


def test_retriable_api_errors_are_temporary(example_objects: list[dict[str, Any]]) -> None:
    kube = RefusingKube(ApiError("apply Deployment x: etcd timeout", status=503, retriable=True))
    with pytest.raises(kopf.TemporaryError, match="etcd timeout"):
        _reconcile_with(kube, example_objects)


def test_refused_workloads_are_a_condition(example_objects: list[dict[str, Any]]) -> None:
    kube = RefusingKube(
        ApiError("apply Deployment x: spec.template: invalid", status=422, retriable=False)
    )
    status = _reconcile_with(kube, example_objects)["status"]
    (ready,) = status["conditions"]
    assert (ready["status"], ready["reason"]) == ("False", "ApplyFailed")
    assert "spec.template: invalid" in ready["message"]


def test_the_first_handler_run_marks_the_indexes_complete(
    example_objects: list[dict[str, Any]],
) -> None:
    state = handlers.State(FakeKube(), Settings())
    assert not state.indexed.is_set()
    handlers.router_config(
        memo=kopf.Memo(state=state),
        logger=kopf.LocalObjectLogger(body=kopf.Body({}), settings=kopf.OperatorSettings()),
        index_modelpools={},
        index_policies={},
        index_gpupools={},
    )
    assert state.indexed.is_set()


def _foreign_deployment_kube() -> FakeKube:
    kube = FakeKube()
    kube.seed(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "llama-70b-decode", "namespace": "llm", "uid": "theirs"},
        }
    )
    return kube


@pytest.mark.parametrize("with_logger", [True, False], ids=["kopf-event", "resync"])
def test_a_refused_takeover_is_logged_once_as_a_warning(
    example_objects: list[dict[str, Any]], caplog: pytest.LogCaptureFixture, with_logger: bool
) -> None:
    h100 = next(o for o in example_objects if o["metadata"]["name"] == "h100")
    patch = kopf.Patch()
    logger = logging.getLogger("fleetroute-test-modelpool")
    with caplog.at_level(logging.WARNING, logger=logger.name):
        handlers.modelpool_reconcile(
            body=_body(example_objects, "llama-70b-decode"),
            patch=patch,
            memo=_memo(_foreign_deployment_kube()),
            index_gpupools=_index({"h100": h100}),
            index_nodes={},
            index_gpu_pods={},
            **({"logger": logger} if with_logger else {}),
        )
    assert patch["status"]["conditions"][0]["reason"] == "NameConflict"
    warnings = [r.getMessage() for r in caplog.records if r.name == logger.name]
    if with_logger:
        (message,) = warnings
        assert message.startswith("Deployment llm/llama-70b-decode already exists")
    else:
        assert warnings == []
