"""Router replicas share what they learn through the real API server, and keep it with no volume.

Router processes run on the host, each as a Pod object of the cluster (on a KWOK node) that owns
its learning ConfigMap, with a kubeconfig holding the token of a ServiceAccount that has only the
chart's router rights; the operator runs beside them and folds a departed replica's learning into
the base. Feedback goes to replica A only; B must choose as A does within two publish periods.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from google.protobuf import duration_pb2

from e2e.chart_support import EXPECTED_RBAC, ROOT, service_account_kubeconfig
from e2e.localcluster import Cluster
from e2e.localcluster.processes import stop_child
from e2e.operator_process import OperatorProcess
from e2e.waiting import wait_for
from fleetroute import replica_learning
from fleetroute.v1alpha1 import router_pb2, router_pb2_grpc

pytestmark = pytest.mark.e2e

NAMESPACE = "fleetroute-replicas-e2e"
SERVICE_ACCOUNT = "router"
PERIOD_S = 1.0
MODEL = "fleet/chat"
POLICY = f"{NAMESPACE}/chat"
EMBEDDED_FLEET = ROOT / "router" / "fleetroute_router" / "defaults" / "example-fleet.yaml"
GOOD_POOL = "llm/qwen-14b-a10g"
PROBES = [f"probe {i}: {topic}" for i, topic in enumerate(("code", "maths", "poem", "chat") * 3)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Replica:
    """One `fleetroute serve` process sharing its learning as Pod `name` of NAMESPACE."""

    def __init__(self, cluster: Cluster, workdir: Path, kubeconfig: Path, name: str) -> None:
        self.cluster, self.kubeconfig, self.name = cluster, kubeconfig, name
        self.log_path = workdir / f"{name}.log"
        # The embedded example fleet, its policy named as the operator knows it.
        fleet = yaml.safe_load(EMBEDDED_FLEET.read_text())
        for policy in fleet["policies"]:
            policy["name"] = POLICY
        self.config = workdir / "router-config.yaml"
        self.config.write_text(yaml.safe_dump(fleet))
        self.uid = self._pod()
        self._process: subprocess.Popen[bytes] | None = None
        self.port = 0
        self._channel: grpc.Channel | None = None

    def _pod(self) -> str:
        existing = self.cluster.kubectl(
            "get", "pod", self.name, "-n", NAMESPACE, "-o", "json", check=False
        )
        if existing.returncode == 0:
            return str(json.loads(existing.stdout)["metadata"]["uid"])
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": self.name, "namespace": NAMESPACE, "labels": {"app": "router"}},
            "spec": {
                "nodeSelector": {"fleetroute.dev/pool": "cpu"},
                "tolerations": [{"operator": "Exists"}],
                "containers": [{"name": "router", "image": "fleetroute:e2e"}],
            },
        }
        self.cluster.kubectl("apply", "-f", "-", input=json.dumps(pod))
        found = self.cluster.kubectl_json("get", "pod", self.name, "-n", NAMESPACE)
        return str(found["metadata"]["uid"])

    def start(self) -> None:
        self.port = free_port()
        argv = [
            sys.executable, "-m", "fleetroute", "--log-level", "INFO", "serve",
            "--config", str(self.config), "--simulate", "--sim-ports", "free", "--sim-speed", "0",
            "--http", "", "--ext-proc", "", "--admin", "", "--grpc", f"127.0.0.1:{self.port}",
            "--learning-publish", "--learning-publish-period", str(PERIOD_S),
            "--pod-name", self.name, "--pod-uid", self.uid, "--pod-namespace", NAMESPACE,
            "--kubeconfig", str(self.kubeconfig),
        ]  # fmt: skip
        env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)
        self._channel = grpc.insecure_channel(f"127.0.0.1:{self.port}")

        def serving() -> bool:
            assert self._process is not None
            if self._process.poll() is not None:
                raise AssertionError(f"{self.name} exited:\n{self.log_tail()}")
            try:  # gRPC serves once the cluster's learning is loaded (it starts after that)
                self.stub.GetStats(router_pb2.StatsRequest(), timeout=1)
            except grpc.RpcError:
                return False
            return True

        wait_for(f"{self.name} serving", serving, timeout=60)

    @property
    def stub(self) -> router_pb2_grpc.RouterStub:
        assert self._channel is not None
        return router_pb2_grpc.RouterStub(self._channel)

    def route(self, prompt: str) -> router_pb2.RouteDecision:
        request = router_pb2.RouteRequest(
            model=MODEL, messages=[router_pb2.ChatMessage(role="user", content=prompt)]
        )
        decision: router_pb2.RouteDecision = self.stub.Route(request, timeout=5)
        return decision

    def choices(self) -> list[tuple[str, dict[str, float]]]:
        """The pool and every arm's score for each probe prompt."""
        found = []
        for prompt in PROBES:
            decision = self.route(prompt)
            found.append((decision.pool, {s.pool: s.score for s in decision.scores}))
        return found

    def teach(self, requests: int) -> None:
        """Requests routed and reported here, with quality feedback: GOOD_POOL answers best."""
        for i in range(requests):
            decision = self.route(f"request {i}: {('code', 'maths', 'poem', 'chat')[i % 4]}")
            quality = 0.95 if decision.pool == GOOD_POOL else 0.1
            self.stub.Report(
                router_pb2.Feedback(
                    decision_id=decision.decision_id,
                    success=True,
                    ttft=duration_pb2.Duration(nanos=40_000_000),
                    e2e_latency=duration_pb2.Duration(nanos=300_000_000),
                    prompt_tokens=20,
                    completion_tokens=40,
                    quality=quality,
                ),
                timeout=5,
            )

    def stop(self) -> None:
        if self._channel is not None:
            self._channel.close()
            self._channel = None
        if self._process is not None:
            stop_child(self._process)
            self._process = None

    def delete_pod(self) -> None:
        self.cluster.kubectl("delete", "pod", self.name, "-n", NAMESPACE, "--wait=true")

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def same(
    one: list[tuple[str, dict[str, float]]], other: list[tuple[str, dict[str, float]]]
) -> bool:
    """The same pools chosen, and every arm's score equal within floating-point tolerance."""
    if [pool for pool, _ in one] != [pool for pool, _ in other]:
        return False
    return all(
        a.keys() == b.keys() and all(abs(a[k] - b[k]) <= 1e-6 * max(1.0, abs(a[k])) for k in a)
        for (_, a), (_, b) in zip(one, other, strict=True)
    )


@pytest.fixture(scope="module")
def router_kubeconfig(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The namespace, the router's ServiceAccount with exactly the chart's router rules, and a
    kubeconfig holding its token."""
    # A namespace left Terminating by an earlier session goes first.
    release_learning(cluster)
    cluster.kubectl("wait", "--for=delete", f"namespace/{NAMESPACE}", "--timeout=120s", check=False)
    cluster.kubectl("create", "namespace", NAMESPACE, check=False)
    rules = [
        {"apiGroups": [""], "resources": [r["resource"]], "verbs": r["verbs"]}
        for r in EXPECTED_RBAC["router"]["releaseNamespace"]
    ]
    objects = [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": SERVICE_ACCOUNT}},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": SERVICE_ACCOUNT},
            "rules": rules,
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": SERVICE_ACCOUNT},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": SERVICE_ACCOUNT,
            },
            "subjects": [
                {"kind": "ServiceAccount", "name": SERVICE_ACCOUNT, "namespace": NAMESPACE}
            ],
        },
    ]
    cluster.kubectl("apply", "-n", NAMESPACE, "-f", "-", input=yaml.safe_dump_all(objects))
    path = tmp_path_factory.mktemp("replicas") / "router.kubeconfig"
    try:
        yield service_account_kubeconfig(cluster, SERVICE_ACCOUNT, NAMESPACE, path)
    finally:
        release_learning(cluster)
        cluster.kubectl("delete", "namespace", NAMESPACE, "--wait=false", check=False)


@pytest.fixture(scope="module")
def operator(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The operator, watching only NAMESPACE, folding the routers' learning there."""
    cluster.kubectl("apply", "-f", str(ROOT / "crds"))
    # The routers' policy as a RoutingPolicy of NAMESPACE: its status shows the merged view
    # (and the operator's resync, which folds, starts once it has an object to handle).
    policy = yaml.safe_load((ROOT / "examples" / "fleet" / "routingpolicy.yaml").read_text())
    policy["metadata"]["namespace"] = NAMESPACE
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(policy))
    log = tmp_path_factory.mktemp("replicas-operator") / "operator.log"
    process = OperatorProcess(
        cluster.kubeconfig,
        log,
        "--namespace", NAMESPACE, "--router-config-namespace", NAMESPACE,
        "--no-gpupool-status", "--learning-stale-after", "5",
    )  # fmt: skip
    process.start()
    try:
        yield
    finally:
        process.stop()


def release_learning(cluster: Cluster) -> None:
    """Take the operator's finalizer off every learning object: once the operator is stopped,
    they would keep the namespace Terminating."""
    found = cluster.kubectl(
        "get", "configmaps", "-n", NAMESPACE, "-l", replica_learning.KIND_LABEL, "-o", "name",
        check=False,
    )  # fmt: skip
    for name in found.stdout.split():
        cluster.kubectl(
            "patch", name, "-n", NAMESPACE, "--type=merge",
            "-p", '{"metadata":{"finalizers":null}}', check=False,
        )  # fmt: skip


def learning_objects(cluster: Cluster) -> list[dict[str, Any]]:
    listed = cluster.kubectl_json(
        "get", "configmaps", "-n", NAMESPACE, "-l", replica_learning.KIND_LABEL
    )
    items: list[dict[str, Any]] = listed["items"]
    return items


def test_replicas_share_learning_and_keep_it_across_restarts(
    cluster: Cluster,
    router_kubeconfig: Path,
    operator: None,
    tmp_path: Path,
) -> None:
    replicas: dict[str, Replica] = {}

    def replica(name: str) -> Replica:
        replicas[name] = Replica(cluster, tmp_path, router_kubeconfig, name)
        return replicas[name]

    try:
        a, b = replica("router-a"), replica("router-b")
        a.start()
        b.start()
        fresh = b.choices()
        a.teach(120)
        taught = time.monotonic()
        taught_a = a.choices()
        assert not same(taught_a, fresh), "replica A learned nothing from its feedback"
        assert sum(pool == GOOD_POOL for pool, _ in taught_a) > len(PROBES) // 2
        probed = taught

        def matches() -> bool:
            nonlocal probed
            probed = time.monotonic()
            return same(b.choices(), a.choices())

        wait_for("B to choose as A", matches, timeout=30, interval=0.1)
        elapsed = probed - taught
        print(f"B chose as A {elapsed:.2f}s after A's last feedback (period {PERIOD_S}s)")
        # Two periods (each up to 10% longer: jitter) and the API calls of two publishes.
        assert elapsed <= 2 * PERIOD_S * 1.1 + 0.5
        learned = a.choices()

        # RoutingPolicy status: the merged view of both replicas, each one's last publish.
        def merged_status() -> dict[str, Any] | None:
            found = cluster.kubectl_json("get", "routingpolicy", "chat", "-n", NAMESPACE)
            status: dict[str, Any] = found.get("status") or {}
            names = [r["name"] for r in status.get("replicas") or []]
            decisions = sum(arm.get("decisions", 0) for arm in status.get("arms") or [])
            # Every Route counted, on both replicas: A's teaching and probes, B's probes.
            return status if names == ["router-a", "router-b"] and decisions >= 120 else None

        status = wait_for("the merged view in RoutingPolicy status", merged_status, timeout=30)
        assert not any(r["stale"] for r in status["replicas"])
        assert status["topArm"] == GOOD_POOL

        # Each replica's ConfigMap is owned by its Pod and held for the operator's fold.
        head = replica_learning.object_name("router-a")

        def held() -> bool:
            obj = cluster.kubectl_json("get", "configmap", head, "-n", NAMESPACE)
            owners = obj["metadata"].get("ownerReferences") or []
            assert owners == [{"apiVersion": "v1", "kind": "Pod", "name": "router-a", "uid": a.uid}]
            return replica_learning.FINALIZER in (obj["metadata"].get("finalizers") or [])

        wait_for("the operator's finalizer on A's learning", held, timeout=30)

        # Kill A (its Pod goes, the garbage collector deletes its ConfigMap), then start C.
        a.stop()
        a.delete_pod()

        def folded() -> bool:
            names = {o["metadata"]["name"] for o in learning_objects(cluster)}
            if head in names or replica_learning.BASE_NAME not in names:
                return False
            base, _ = replica_learning.read_base(learning_objects(cluster))
            return base is not None and "router-a" in base.folded

        wait_for("A's learning folded into the base", folded, timeout=60)
        c = replica("router-c")
        c.start()
        assert same(c.choices(), b.choices()), "C did not start with the merged state"
        assert same(b.choices(), learned)

        # Restart everything: the same Pods resume their own contributions and the base.
        b.stop()
        c.stop()
        b.start()
        c.start()
        assert same(b.choices(), learned)
        assert same(c.choices(), learned)

        # Every replica gone, then a new one: learning is back with no volume.
        for gone in (b, c):
            gone.stop()
            gone.delete_pod()
        wait_for(
            "every replica folded",
            lambda: (
                {o["metadata"]["name"] for o in learning_objects(cluster)}
                <= {replica_learning.BASE_NAME}
            ),
            timeout=60,
        )
        d = replica("router-d")
        d.start()
        assert same(d.choices(), learned)
    except BaseException:
        for r in replicas.values():
            print(f"--- {r.name} log:\n{r.log_tail()}")
        raise
    finally:
        for r in replicas.values():
            r.stop()
