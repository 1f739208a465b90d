"""The periodic resync: every indexed object's status refreshed without kopf timers."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import kopf
import pytest

from fleetroute_operator import handlers
from fleetroute_operator.capacity import node_facts
from fleetroute_operator.resync import Resync
from fleetroute_operator.settings import Settings
from tests.controller.fakes import FakeKube, node, with_identity

H100 = "NVIDIA-H100-80GB-HBM3"


def _indices(example_objects: list[dict[str, Any]]) -> dict[str, dict[Any, list[Any]]]:
    """Indexes as kopf fills them for the example fleet on four H100 nodes."""
    indices: dict[str, dict[Any, list[Any]]] = {
        "index_nodes": {f"h100-{i}": [node_facts(node(f"h100-{i}", H100, 8))] for i in range(4)},
        "index_gpu_pods": {},
        "index_gpupools": {},
        "index_modelpools": {},
        "index_policies": {},
    }
    for obj in example_objects:
        meta = obj["metadata"]
        if obj["kind"] == "GPUPool":
            indices["index_gpupools"][meta["name"]] = [with_identity(obj)]
        elif obj["kind"] == "ModelPool":
            indices["index_modelpools"][(meta["namespace"], meta["name"])] = [with_identity(obj)]
        elif obj["kind"] == "RoutingPolicy":
            indices["index_policies"][(meta["namespace"], meta["name"])] = [with_identity(obj)]
    return indices


def _resync(kube: FakeKube, indices: dict[str, Any]) -> Resync:
    state = handlers.State(kube, Settings())
    return handlers.resync(state, kopf.Memo(state=state), indices)


def test_one_pass_writes_every_status_and_the_router_config(
    example_objects: list[dict[str, Any]],
) -> None:
    kube = FakeKube()
    written = _resync(kube, _indices(example_objects)).once()
    kinds = [kind for kind, _, _ in kube.status_patches]
    assert written == len(kube.status_patches)
    assert kinds.count("GPUPool") == 3
    assert kinds.count("ModelPool") == 5
    assert kinds.count("RoutingPolicy") == 1
    h100 = next(s for k, n, s in kube.status_patches if (k, n) == ("GPUPool", "h100"))
    assert (h100["capacity"], h100["free"]) == (32, 32)
    assert [m["kind"] for m in kube.applied].count("ConfigMap") == 1


@pytest.mark.parametrize(
    ("settings", "gpupools"),
    [
        pytest.param(Settings(namespaces=("llm",)), 3, id="namespaces"),
        pytest.param(Settings(namespaces=("llm",), gpupool_status=False), 0, id="no-gpupools"),
    ],
)
def test_gpupool_status_can_be_left_to_another_operator(
    example_objects: list[dict[str, Any]], settings: Settings, gpupools: int
) -> None:
    """A namespace-scoped operator sees only its namespaces' pods: its GPU allocation would be
    partial, so the chart runs it with --no-gpupool-status."""
    kube = FakeKube()
    state = handlers.State(kube, settings)
    handlers.resync(state, kopf.Memo(state=state), _indices(example_objects)).once()
    kinds = [kind for kind, _, _ in kube.status_patches]
    assert kinds.count("GPUPool") == gpupools
    assert kinds.count("ModelPool") == 5
    assert kinds.count("RoutingPolicy") == 1


def _settle(indices: dict[str, Any], patches: list[tuple[str, str, dict[str, Any]]]) -> None:
    """Put written statuses into the indexed bodies, as the next watch event would."""
    kinds = {"index_gpupools": "GPUPool", "index_modelpools": "ModelPool"}
    for name in ("index_gpupools", "index_modelpools", "index_policies"):
        for (body,) in indices[name].values():
            for kind, written_name, status in patches:
                if (kind, written_name) == (
                    kinds.get(name, "RoutingPolicy"),
                    body["metadata"]["name"],
                ):
                    body["status"] = {**body.get("status", {}), **status}


def test_a_settled_fleet_writes_nothing(example_objects: list[dict[str, Any]]) -> None:
    indices = _indices(example_objects)
    written = []
    for _ in range(3):
        kube = FakeKube()
        written.append(_resync(kube, indices).once())
        _settle(indices, kube.status_patches)
    # Pools settle in one pass; the policy sees their Ready conditions in the second.
    assert written == [9, 1, 0]


def test_one_failing_object_does_not_stop_the_others(example_objects: list[dict[str, Any]]) -> None:
    indices = _indices(example_objects)
    indices["index_gpupools"]["broken"] = [
        {"metadata": {"name": "broken", "generation": 1}, "spec": {"product": "X"}}
    ]
    kube = FakeKube()
    _resync(kube, indices).once()
    written = {n: s for k, n, s in kube.status_patches if k == "GPUPool"}
    assert set(written) == {"h100", "l4", "a10g", "broken"}
    # The broken one's status says why (the API server would have refused it, kopf's cache not).
    (ready,) = written["broken"]["conditions"]
    assert (ready["status"], ready["reason"]) == ("False", "InvalidSpec")
    assert "spec.power" in ready["message"]
    assert written["h100"]["conditions"][0]["reason"] == "NodesFound"


async def test_run_waits_for_the_indexes_then_repeats() -> None:
    passes: list[int] = []

    def count(**_: Any) -> None:
        passes.append(1)

    resync = Resync(FakeKube(), kopf.Memo(), {}, (), count)
    indexed = threading.Event()
    task = asyncio.create_task(resync.run(0.01, indexed))
    await asyncio.sleep(0.3)
    assert passes == []  # kopf's indexes are not complete yet: no empty statuses or config
    indexed.set()
    for _ in range(100):
        await asyncio.sleep(0.01)
        if len(passes) >= 2:
            break
    task.cancel()
    assert len(passes) >= 2


async def test_a_failed_pass_does_not_stop_the_loop() -> None:
    passes: list[int] = []

    def flaky(**_: Any) -> None:
        passes.append(1)

    resync = Resync(FakeKube(), kopf.Memo(), {}, (), flaky)
    calls = 0
    real_refresh_all = resync.refresh_all

    def refresh_all(indices: Any) -> int:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("dictionary changed size during iteration")
        return real_refresh_all(indices)

    resync.refresh_all = refresh_all  # type: ignore[method-assign]
    indexed = threading.Event()
    indexed.set()
    task = asyncio.create_task(resync.run(0.01, indexed))
    for _ in range(100):
        await asyncio.sleep(0.01)
        if passes:
            break
    task.cancel()
    assert calls >= 2
    assert passes
