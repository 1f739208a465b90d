"""GPU accounting of a GPUPool from nodes and the pods bound to them."""

from __future__ import annotations

import pytest

from fleetroute.crds import GPUPoolSpec
from fleetroute_operator.capacity import node_facts, parse_quantity, pod_requests, pool_capacity
from tests.controller.fakes import node, pod

H100 = "NVIDIA-H100-80GB-HBM3"
SPEC = GPUPoolSpec.model_validate({"product": H100, "power": {"idleWatts": 70, "maxWatts": 700}})


def test_capacity_counts_only_ready_schedulable_matching_nodes() -> None:
    nodes = [
        node_facts(node("h100-0", H100, 8)),
        node_facts(node("h100-1", H100, 8)),
        node_facts(node("h100-2", H100, 8, ready=False)),
        node_facts(node("h100-3", H100, 8, cordoned=True)),
        node_facts(node("l4-0", "NVIDIA-L4", 4)),
        node_facts(node("cpu-0", None, 0)),
    ]
    found = pool_capacity(SPEC, nodes, {})
    assert (found.nodes, found.capacity, found.allocated, found.free) == (2, 16, 0, 16)
    assert found.node_names == {"h100-0", "h100-1"}


def test_allocated_sums_gpu_requests_of_pods_on_those_nodes() -> None:
    nodes = [node_facts(node("h100-0", H100, 8)), node_facts(node("l4-0", "NVIDIA-L4", 4))]
    held = {
        "h100-0": [
            pod_requests(pod("a", node_name="h100-0", gpus=4)),
            pod_requests(pod("b", node_name="h100-0", gpus=2)),
        ],
        "l4-0": [pod_requests(pod("c", node_name="l4-0", gpus=4))],
    }
    found = pool_capacity(SPEC, nodes, held)
    assert (found.capacity, found.allocated, found.free) == (8, 6, 2)


def test_finished_pods_hold_no_gpus() -> None:
    assert pod_requests(pod("done", node_name="n", gpus=4, phase="Succeeded")) == {}
    assert pod_requests(pod("running", node_name="n", gpus=4)) == {"nvidia.com/gpu": 4}


def test_free_never_goes_negative() -> None:
    nodes = [node_facts(node("h100-0", H100, 8))]
    found = pool_capacity(SPEC, nodes, {"h100-0": [{"nvidia.com/gpu": 12}]})
    assert found.free == 0


@pytest.mark.parametrize(("value", "count"), [("8", 8), (4, 4), ("2k", 2000)])
def test_quantities(value: str | int, count: int) -> None:
    assert parse_quantity(value) == count
