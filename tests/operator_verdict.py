"""What the operator's handlers make of one custom resource: the Ready condition they write."""

from __future__ import annotations

import copy
from typing import Any

import kopf

from fleetroute_operator import conditions, handlers
from fleetroute_operator.capacity import node_facts
from fleetroute_operator.settings import Settings
from tests.controller.fakes import FakeKube, node

L4 = "NVIDIA-L4"


def _index(entries: dict[Any, Any]) -> dict[Any, list[Any]]:
    return {key: [value] for key, value in entries.items()}


def ready_condition(obj: dict[str, Any]) -> dict[str, Any]:
    """The Ready condition the handler of obj's kind writes for it, on a fleet of four L4 nodes
    (any GPUPool a ModelPool names exists there). PermanentError is allowed only with a status
    that says why; any other exception propagates (the operator would have crashed)."""
    body = copy.deepcopy(obj)
    body["metadata"].update(uid="uid-fuzz", generation=1)
    nodes = _index({f"l4-{i}": node_facts(node(f"l4-{i}", L4, 4)) for i in range(4)})
    state = handlers.State(FakeKube(), Settings())
    patch = kopf.Patch()
    kind = body["kind"]
    try:
        if kind == "GPUPool":
            handlers.gpupool_status(
                body=kopf.Body(body), patch=patch, index_nodes=nodes, index_gpu_pods={}
            )
        elif kind == "ModelPool":
            spec = body.get("spec") if isinstance(body.get("spec"), dict) else {}
            deploy = spec.get("deploy") if isinstance(spec.get("deploy"), dict) else {}
            name = deploy.get("gpuPool") if isinstance(deploy.get("gpuPool"), str) else "l4"
            gpu_pool = {
                "metadata": {"name": name},
                "spec": {"product": L4, "power": {"idleWatts": 16, "maxWatts": 72}},
            }
            handlers.modelpool_reconcile(
                body=kopf.Body(body),
                patch=patch,
                memo=kopf.Memo(state=state),
                index_gpupools=_index({name: gpu_pool}),
                index_nodes=nodes,
                index_gpu_pods={},
            )
        else:
            handlers.policy_status(
                body=kopf.Body(body), patch=patch, memo=kopf.Memo(state=state), index_modelpools={}
            )
    except kopf.PermanentError:
        pass
    status = patch.get("status") or {}
    found = conditions.find(status.get("conditions") or [], conditions.READY)
    assert found is not None, f"no Ready condition for {kind}: {dict(status)}"
    return dict(found)
