"""ModelPools that adopt llm-d-inference-sim processes by static endpoints: the operator renders
them into the router config, and a router serving that config reaches the processes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from e2e.localcluster import Cluster
from e2e.operator_process import OperatorProcess
from e2e.waiting import wait_for
from fleetroute_router.bench import harness, llmd

pytestmark = [pytest.mark.e2e, pytest.mark.sim]

ROOT = Path(__file__).resolve().parent.parent
NAMESPACE = "llm-sim"
CONFIG_NAMESPACE = "fleetroute-sim-system"
CONFIGMAP = "fleetroute-router-config"
MODEL = "meta-llama/Llama-3.1-8B-Instruct"
ALIAS = "fleet/sim"
# pool name -> latency profile of llmd.PROFILES
POOLS = {"sim-h100": "H100", "sim-a100": "A100", "sim-l40s": "L40S"}


def _kubectl_apply(cluster: Cluster, *objects: dict[str, Any]) -> None:
    document = {"apiVersion": "v1", "kind": "List", "items": list(objects)}
    cluster.kubectl("apply", "-f", "-", input=json.dumps(document))


def _get(cluster: Cluster, kind: str, name: str, namespace: str) -> dict[str, Any] | None:
    out = cluster.kubectl(
        "get", kind, name, "-n", namespace, "-o", "json", "--ignore-not-found"
    ).stdout.strip()
    return json.loads(out) if out else None


def _ready(obj: dict[str, Any] | None) -> bool:
    conditions = (obj or {}).get("status", {}).get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def model_pool(name: str, address: str, product: str) -> dict[str, Any]:
    return {
        "apiVersion": "fleetroute.dev/v1alpha1",
        "kind": "ModelPool",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "model": MODEL,
            "adopt": {"endpoints": [address], "gpuProduct": product, "gpusPerReplica": 1},
        },
    }


def routing_policy() -> dict[str, Any]:
    return {
        "apiVersion": "fleetroute.dev/v1alpha1",
        "kind": "RoutingPolicy",
        "metadata": {"name": "sim", "namespace": NAMESPACE},
        "spec": {
            "modelAlias": ALIAS,
            "candidates": [{"modelPool": name} for name in POOLS],
            "objective": {"latency": 1.0},
            "algorithm": {"name": "round-robin"},
            "failureMode": "FailClose",
        },
    }


@pytest.fixture(scope="module")
def operator(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    cluster.kubectl("apply", "-f", str(ROOT / "crds"))
    for path in (ROOT / "crds").glob("*.yaml"):
        name = yaml.safe_load(path.read_text())["metadata"]["name"]
        cluster.kubectl("wait", "--for=condition=Established", f"crd/{name}", "--timeout=60s")
    for namespace in (NAMESPACE, CONFIG_NAMESPACE):
        cluster.kubectl("create", "namespace", namespace, check=False)
    process = OperatorProcess(
        cluster.kubeconfig,
        tmp_path_factory.mktemp("operator-sim") / "operator.log",
        "--router-config-namespace",
        CONFIG_NAMESPACE,
    )
    process.start()
    yield
    process.stop()


@pytest.fixture
async def sims() -> AsyncIterator[dict[str, llmd.SimProcess]]:
    binary = llmd.find_binary()  # Unavailable fails the test, with the reason
    started: dict[str, llmd.SimProcess] = {}
    try:
        for name, profile in POOLS.items():
            process = llmd.SimProcess(
                binary, MODEL, profile=llmd.PROFILES[profile], scale=0.25, max_num_seqs=8
            )
            started[name] = process
            await process.start()
        yield started
    finally:
        for process in started.values():
            await process.stop()


async def test_adopted_sim_processes_serve_the_operator_rendered_config(
    cluster: Cluster, operator: None, sims: dict[str, llmd.SimProcess], tmp_path: Path
) -> None:
    objects = [
        model_pool(name, sims[name].address, llmd.PROFILES[profile].gpu)
        for name, profile in POOLS.items()
    ]
    _kubectl_apply(cluster, *objects, routing_policy())
    children = harness.Children()
    try:
        for name in POOLS:
            await asyncio.to_thread(
                wait_for,
                f"ModelPool {name} Ready",
                lambda name=name: _ready(_get(cluster, "modelpool", name, NAMESPACE)),
                timeout=90,
            )

        def rendered() -> dict[str, Any] | None:
            configmap = _get(cluster, "configmap", CONFIGMAP, CONFIG_NAMESPACE)
            if configmap is None:
                return None
            config: dict[str, Any] = json.loads(configmap["data"]["config.json"])
            addresses = {
                e["address"] for p in config.get("pools", []) for e in p.get("endpoints", [])
            }
            policies = [p for p in config.get("policies", []) if p.get("modelAlias") == ALIAS]
            wanted = {s.address for s in sims.values()}
            return config if policies and wanted <= addresses else None

        config = await asyncio.to_thread(wait_for, "the sims in the router config", rendered, 90)
        path = tmp_path / "router-config.json"
        path.write_text(json.dumps(config))
        (port,) = harness.free_ports(1)
        await children.python(
            "-m", "fleetroute", "--log-level", "WARNING", "serve", "--config", str(path),
            "--no-simulate", "--http", f"127.0.0.1:{port}", "--grpc", "127.0.0.1:0",
            "--ext-proc", "", "--admin", "",
        )  # fmt: skip
        await harness.wait_ready(f"http://127.0.0.1:{port}/health")
        served: list[str] = []
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
            for i in range(2 * len(POOLS)):
                body = {
                    "model": ALIAS,
                    "messages": [{"role": "user", "content": f"Hello {i}"}],
                    "max_tokens": 3,
                }
                url = f"http://127.0.0.1:{port}/v1/chat/completions"
                async with session.post(url, json=body) as response:
                    assert response.status == 200, await response.text()
                    document = await response.json()
                    assert document["usage"]["completion_tokens"] >= 1
                    served.append(response.headers["x-fleetroute-endpoint"])
        # Round-robin over the three adopted pools reached every sim process.
        assert set(served) == {s.address for s in sims.values()}
    finally:
        await children.close()
        cluster.kubectl(
            "delete", "modelpools,routingpolicies", "--all", "-n", NAMESPACE,
            "--wait=true", "--timeout=60s", check=False,
        )  # fmt: skip
