"""The chart's templates: a defaults snapshot, one case per value, lint and strict kubeconform."""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from fleetroute import cli
from tests.chart.conftest import CHART, NAMESPACE, ROOT, Helm, Rendered

sys.path.insert(0, str(ROOT / "scripts"))
import generate_chart

SNAPSHOT = Path(__file__).parent / "snapshots" / "defaults.yaml"
UPDATE = "FLEETROUTE_UPDATE_SNAPSHOTS"
OPERATOR, ROUTER, GATEWAY = "fleetroute-operator", "fleetroute-router", "fleetroute-gateway"
EXPECTED_RBAC = yaml.safe_load((ROOT / "e2e" / "rbac_expected.yaml").read_text())

GATEWAY_VALUES: dict[str, Any] = {
    "router": {"mode": "sidecar", "ports": {"extProc": 9002}},
    "gateway": {
        "image": "envoyproxy/envoy:v1.36.2",
        "args": ["-c", "/etc/envoy/envoy.yaml"],
        "ports": [{"name": "http", "containerPort": 10000}],
        "volumes": [{"name": "envoy", "configMap": {"name": "envoy"}}],
        "volumeMounts": [{"name": "envoy", "mountPath": "/etc/envoy"}],
        "resources": {"requests": {"cpu": "100m"}},
    },
}
ALL_PORTS: dict[str, Any] = {
    "router": {"ports": {"grpc": 6000, "http": 8081, "extProc": 9003, "admin": 9100}}
}
# Every option away from its default at once (kubeconform validates this rendering too).
ALL_OPTIONS: dict[str, Any] = {
    "global": {"commonLabels": {"team": "ml"}},
    "crds": {"keep": False},
    "image": {"repository": "registry.example/fleetroute", "tag": "1.2.3", "pullPolicy": "Always"},
    "imagePullSecrets": [{"name": "pull"}],
    "routerConfig": {"name": "router-config"},
    "operator": {
        "logLevel": "DEBUG",
        "statusInterval": 2.5,
        "healthPort": 9090,
        "metricsPort": 9091,
        "routerAddress": "router.elsewhere:50051",
        "watchNamespaces": ["team-a", "team-b"],
        "serviceAccount": {"name": "op", "annotations": {"a": "b"}},
        "resources": {"requests": {"cpu": 1}},
        "podAnnotations": {"note": "kept"},
        "podLabels": {"tier": "control"},
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [{"key": "k", "operator": "Exists"}],
        "affinity": {"nodeAffinity": {}},
        "priorityClassName": "system-cluster-critical",
    },
    "router": {
        "replicaCount": 3,
        "logLevel": "WARNING",
        "ports": {"grpc": 6000, "http": 8081, "extProc": 9003, "admin": 9100},
        "reloadInterval": 2,
        "drainSeconds": 30,
        "extraArgs": ["--max-in-flight=512"],
        "service": {"type": "LoadBalancer", "annotations": {"lb": "internal"}},
        "podDisruptionBudget": {"enabled": True, "minAvailable": "50%"},
        "podAnnotations": {"note": "kept"},
        "podLabels": {"tier": "data"},
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [{"key": "k", "operator": "Exists"}],
        "affinity": {"podAntiAffinity": {}},
        "topologySpreadConstraints": [
            {
                "maxSkew": 1,
                "topologyKey": "kubernetes.io/hostname",
                "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": {"matchLabels": {"app.kubernetes.io/component": "router"}},
            }
        ],
        "priorityClassName": "high",
    },
    "networkPolicy": {
        "routerClients": [{"namespaceSelector": {"matchLabels": {"team": "ml"}}}],
        "prometheus": [{"ipBlock": {"cidr": "10.2.0.0/16"}}],
        "modelServerNamespaces": ["llm"],
    },
    "metrics": {"serviceMonitor": {"enabled": True, "interval": "15s", "labels": {"r": "p"}}},
}


def pod_spec(rendered: Rendered, name: str) -> dict[str, Any]:
    spec: dict[str, Any] = rendered.one("Deployment", name)["spec"]["template"]["spec"]
    return spec


def container(rendered: Rendered, deployment: str, name: str) -> dict[str, Any]:
    (found,) = [c for c in pod_spec(rendered, deployment)["containers"] if c["name"] == name]
    return dict(found)


def args(rendered: Rendered, deployment: str, name: str) -> list[str]:
    return list(container(rendered, deployment, name)["args"])


DASHBOARDS = "fleetroute-dashboards"


def without_generated(rendered: Rendered) -> str:
    """The rendering without what other tests compare to its source (CRDs, dashboards)."""
    return "---\n".join(
        yaml.safe_dump(d, sort_keys=True)
        for d in rendered
        if d["kind"] != "CustomResourceDefinition" and d["metadata"]["name"] != DASHBOARDS
    )


def test_defaults_match_the_snapshot(defaults: Rendered) -> None:
    text = without_generated(defaults)
    if os.environ.get(UPDATE):
        SNAPSHOT.parent.mkdir(exist_ok=True)
        SNAPSHOT.write_text(text)
    assert text == SNAPSHOT.read_text(), f"chart output changed; review, then rerun with {UPDATE}=1"


def test_defaults_render_the_expected_objects(defaults: Rendered) -> None:
    dashboards = ["ConfigMap"] if list((CHART / "dashboards").glob("*.json")) else []
    assert defaults.kinds() == [
        "ClusterRole",
        "ClusterRoleBinding",
        *dashboards,
        "ConfigMap",
        "CustomResourceDefinition",
        "CustomResourceDefinition",
        "CustomResourceDefinition",
        "Deployment",
        "Deployment",
        "NetworkPolicy",
        "NetworkPolicy",
        "NetworkPolicy",
        "Role",
        "Role",
        "RoleBinding",
        "RoleBinding",
        "Service",
        "ServiceAccount",
        "ServiceAccount",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
    ]
    cluster_scoped = (
        "ClusterRole",
        "ClusterRoleBinding",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
    )
    namespaced = [d for d in defaults if d["kind"] not in cluster_scoped]
    for doc in namespaced:
        if doc["kind"] != "CustomResourceDefinition":
            assert doc["metadata"]["namespace"] == NAMESPACE, doc["kind"]


def test_every_container_runs_restricted(defaults: Rendered) -> None:
    for deployment in defaults.of("Deployment"):
        spec = deployment["spec"]["template"]["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["runAsUser"] != 0
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        for c in spec["containers"]:
            context = c["securityContext"]
            assert context["allowPrivilegeEscalation"] is False
            assert context["readOnlyRootFilesystem"] is True
            assert context["capabilities"] == {"drop": ["ALL"]}
            assert c["resources"]["requests"]
            assert c["resources"]["limits"]["memory"]


def test_crd_templates_are_the_generated_crds(helm: Helm) -> None:
    for keep in (True, False):
        rendered = helm.template({"crds": {"keep": keep}})
        crds = {d["metadata"]["name"]: d for d in rendered.of("CustomResourceDefinition")}
        sources = [yaml.safe_load(p.read_text()) for p in sorted((ROOT / "crds").glob("*.yaml"))]
        assert sorted(crds) == sorted(s["metadata"]["name"] for s in sources)
        for source in sources:
            crd = crds[source["metadata"]["name"]]
            assert crd["spec"] == source["spec"]
            assert source["metadata"]["labels"].items() <= crd["metadata"]["labels"].items()
            annotations = crd["metadata"].get("annotations", {})
            assert (annotations.get("helm.sh/resource-policy") == "keep") is keep


def test_chart_crd_templates_are_fresh() -> None:
    assert generate_chart.stale_files() == []


def rules_of(role: dict[str, Any]) -> set[tuple[str, tuple[str, ...], str]]:
    """(resource as can-i prints it, resource names, verb) of a rendered Role or ClusterRole."""
    rules = set()
    for rule in role["rules"]:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                base, _, sub = resource.partition("/")
                name = f"{base}.{group}" if group else base
                name += f"/{sub}" if sub else ""
                for verb in rule["verbs"]:
                    rules.add((name, tuple(sorted(rule.get("resourceNames", []))), verb))
    return rules


def rbac_rules(rendered: Rendered, kind: str) -> set[tuple[str, tuple[str, ...], str]]:
    return rules_of(rendered.one(kind))


def expected(mode: str, scope: str) -> set[tuple[str, tuple[str, ...], str]]:
    return {
        (r["resource"], tuple(sorted(r.get("resourceNames", []))), verb)
        for r in EXPECTED_RBAC[mode][scope]
        for verb in r["verbs"]
    }


def _no_wildcards_or_secrets(roles: list[dict[str, Any]]) -> None:
    for role in roles:
        for rule in role["rules"]:
            for field in ("apiGroups", "resources", "verbs"):
                assert "*" not in rule[field]
            assert "secrets" not in rule["resources"]


def test_rbac_is_the_written_expectation_without_wildcards_or_secrets(defaults: Rendered) -> None:
    assert rbac_rules(defaults, "ClusterRole") == expected("cluster", "clusterRole")
    assert rules_of(defaults.one("Role", OPERATOR)) == expected("cluster", "releaseNamespace")
    assert rules_of(defaults.one("Role", ROUTER)) == expected("router", "releaseNamespace")
    roles = [
        defaults.one("ClusterRole"),
        defaults.one("Role", OPERATOR),
        defaults.one("Role", ROUTER),
    ]
    _no_wildcards_or_secrets(roles)
    router_binding = defaults.one("RoleBinding", ROUTER)
    assert router_binding["roleRef"]["name"] == ROUTER
    assert router_binding["subjects"] == [
        {"kind": "ServiceAccount", "name": ROUTER, "namespace": NAMESPACE}
    ]
    assert pod_spec(defaults, ROUTER)["serviceAccountName"] == ROUTER
    assert pod_spec(defaults, ROUTER)["automountServiceAccountToken"] is True
    binding = defaults.one("ClusterRoleBinding")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": OPERATOR, "namespace": NAMESPACE}
    ]
    assert pod_spec(defaults, OPERATOR)["serviceAccountName"] == OPERATOR
    assert not [a for a in args(defaults, OPERATOR, "operator") if a.startswith("--namespace")]
    assert "--no-gpupool-status" not in args(defaults, OPERATOR, "operator")


WATCHED = ["team-a", "team-b"]


def test_namespace_scoped_rbac_is_the_written_expectation(helm: Helm) -> None:
    rendered = helm.template({"operator": {"watchNamespaces": WATCHED}})
    assert rbac_rules(rendered, "ClusterRole") == expected("namespaced", "clusterRole")
    roles = {(r["metadata"]["namespace"], r["metadata"]["name"]): r for r in rendered.of("Role")}
    assert rules_of(roles.pop((NAMESPACE, ROUTER))) == expected("router", "releaseNamespace")
    assert sorted(roles) == [
        (NAMESPACE, OPERATOR),
        ("team-a", f"{OPERATOR}-watch"),
        ("team-b", f"{OPERATOR}-watch"),
    ]
    assert rules_of(roles[NAMESPACE, OPERATOR]) == expected("namespaced", "releaseNamespace")
    for namespace in WATCHED:
        assert rules_of(roles[namespace, f"{OPERATOR}-watch"]) == expected(
            "namespaced", "watchedNamespace"
        )
    _no_wildcards_or_secrets([rendered.one("ClusterRole"), *roles.values()])
    bindings = {
        (b["metadata"]["namespace"], b["metadata"]["name"]): b for b in rendered.of("RoleBinding")
    }
    del bindings[NAMESPACE, ROUTER]
    assert sorted(bindings) == sorted(roles)
    for key, binding in bindings.items():
        assert binding["roleRef"]["name"] == key[1]
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": OPERATOR, "namespace": NAMESPACE}
        ]
    operator_args = args(rendered, OPERATOR, "operator")
    assert [a for a in operator_args if a.startswith("--namespace")] == [
        "--namespace=team-a",
        "--namespace=team-b",
    ]
    assert "--no-gpupool-status" in operator_args


@pytest.mark.parametrize(
    ("deployment", "name", "values"),
    [
        pytest.param(OPERATOR, "operator", None, id="operator-defaults"),
        pytest.param(ROUTER, "router", None, id="router-defaults"),
        pytest.param(OPERATOR, "operator", ALL_OPTIONS, id="operator-all-options"),
        pytest.param(ROUTER, "router", ALL_OPTIONS, id="router-all-options"),
        pytest.param(
            ROUTER,
            "router",
            {"router": {"ports": {"http": 0, "extProc": 0}}},
            id="router-ports-off",
        ),
        pytest.param(GATEWAY, "router", GATEWAY_VALUES, id="router-sidecar"),
    ],
)
def test_container_arguments_are_accepted_by_the_cli(
    helm: Helm, deployment: str, name: str, values: dict[str, Any] | None
) -> None:
    argv = args(helm.template(values), deployment, name)
    parsed = cli.parser(argv).parse_args(argv)
    assert parsed.command == name.replace("router", "serve")


def test_router_probes_call_the_grpc_health_service(defaults: Rendered) -> None:
    router = container(defaults, ROUTER, "router")
    assert router["livenessProbe"]["grpc"] == {"port": 50051}
    assert router["readinessProbe"]["grpc"] == {
        "port": 50051,
        "service": "fleetroute.v1alpha1.Router",
    }
    assert {"name": "grpc", "containerPort": 50051, "protocol": "TCP"} in router["ports"]
    operator = container(defaults, OPERATOR, "operator")
    assert operator["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert "--liveness=http://0.0.0.0:8080/healthz" in operator["args"]


def test_router_mounts_the_operators_config(defaults: Rendered) -> None:
    spec = pod_spec(defaults, ROUTER)
    (volume,) = [v for v in spec["volumes"] if v["name"] == "config"]
    assert volume["configMap"] == {
        "name": "fleetroute-router-config",
        "items": [{"key": "config.json", "path": "config.json"}],
    }
    router = container(defaults, ROUTER, "router")
    (mount,) = [m for m in router["volumeMounts"] if m["name"] == "config"]
    assert mount == {"name": "config", "mountPath": "/etc/fleetroute", "readOnly": True}
    assert "subPath" not in mount
    assert "--config=/etc/fleetroute/config.json" in router["args"]
    configmap = defaults.one("ConfigMap", "fleetroute-router-config")
    assert "data" not in configmap
    assert "app.kubernetes.io/managed-by" not in configmap["metadata"]["labels"]
    operator = container(defaults, OPERATOR, "operator")
    assert operator["env"] == [
        {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}
    ]


def test_operator_is_a_single_replica_replaced_not_rolled(defaults: Rendered) -> None:
    operator = defaults.one("Deployment", OPERATOR)
    assert operator["spec"]["replicas"] == 1
    assert operator["spec"]["strategy"] == {"type": "Recreate"}


# One case per value of values.yaml: the values set, and what must hold of the rendering.
Check = Callable[[Rendered], None]


def _check_labels(r: Rendered) -> None:
    assert all(d["metadata"]["labels"]["team"] == "ml" for d in r)


def _check_no_crds(r: Rendered) -> None:
    assert r.of("CustomResourceDefinition") == []


def _check_crds_not_kept(r: Rendered) -> None:
    for crd in r.of("CustomResourceDefinition"):
        assert "helm.sh/resource-policy" not in crd["metadata"].get("annotations", {})


def _check_images(expected: str, policy: str = "IfNotPresent") -> Check:
    def check(r: Rendered) -> None:
        assert {c["image"] for c in r.containers()} == {expected}
        assert {c["imagePullPolicy"] for c in r.containers()} == {policy}

    return check


def _check_pull_secrets(r: Rendered) -> None:
    for name in (OPERATOR, ROUTER):
        assert pod_spec(r, name)["imagePullSecrets"] == [{"name": "pull"}]


def _check_no_rbac(r: Rendered) -> None:
    assert not {"ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"} & set(r.kinds())


def _check_pod_security(r: Rendered) -> None:
    for name in (OPERATOR, ROUTER):
        # Helm merges maps with the defaults: the restricted settings stay.
        assert pod_spec(r, name)["securityContext"] == {
            "runAsNonRoot": True,
            "runAsUser": 65532,
            "runAsGroup": 65532,
            "fsGroup": 2000,
            "seccompProfile": {"type": "RuntimeDefault"},
        }


def _check_container_security(r: Rendered) -> None:
    assert all(c["securityContext"]["privileged"] is False for c in r.containers())
    assert all(c["securityContext"]["readOnlyRootFilesystem"] for c in r.containers())


def _check_router_config_name(r: Rendered) -> None:
    assert "--router-config-name=router-config" in args(r, OPERATOR, "operator")
    assert "data" not in r.one("ConfigMap", "router-config")
    (volume,) = [v for v in pod_spec(r, ROUTER)["volumes"] if v["name"] == "config"]
    assert volume["configMap"]["name"] == "router-config"
    (patch,) = [rule for rule in r.one("Role", OPERATOR)["rules"] if "patch" in rule["verbs"]]
    assert patch["resourceNames"] == ["router-config"]


def _check_arg(deployment: str, name: str, expected: str) -> Check:
    def check(r: Rendered) -> None:
        assert expected in args(r, deployment, name)

    return check


def _check_health_port(r: Rendered) -> None:
    operator = container(r, OPERATOR, "operator")
    assert operator["ports"] == [{"name": "health", "containerPort": 9090, "protocol": "TCP"}]
    assert "--liveness=http://0.0.0.0:9090/healthz" in operator["args"]


def _check_operator_metrics(r: Rendered) -> None:
    operator = container(r, OPERATOR, "operator")
    assert {"name": "metrics", "containerPort": 8081, "protocol": "TCP"} in operator["ports"]
    assert "--metrics=0.0.0.0:8081" in operator["args"]
    service = r.one("Service", OPERATOR)
    assert service["spec"]["ports"][0]["port"] == 8081
    assert (
        service["spec"]["selector"]
        == r.one("Deployment", OPERATOR)["spec"]["selector"]["matchLabels"]
    )
    (endpoint,) = r.one("ServiceMonitor", OPERATOR)["spec"]["endpoints"]
    assert endpoint["port"] == "metrics"


def _check_router_address(expected: str | None) -> Check:
    def check(r: Rendered) -> None:
        found = [a for a in args(r, OPERATOR, "operator") if a.startswith("--router-address")]
        assert found == ([f"--router-address={expected}"] if expected else [])

    return check


def _check_existing_service_account(r: Rendered) -> None:
    assert [a["metadata"]["name"] for a in r.of("ServiceAccount")] == [ROUTER]
    assert pod_spec(r, OPERATOR)["serviceAccountName"] == "existing"
    assert r.one("ClusterRoleBinding")["subjects"][0]["name"] == "existing"
    assert r.one("RoleBinding", OPERATOR)["subjects"][0]["name"] == "existing"


def _check_service_account_name(r: Rendered) -> None:
    assert r.one("ServiceAccount", "op")["metadata"]["name"] == "op"
    assert pod_spec(r, OPERATOR)["serviceAccountName"] == "op"
    assert r.one("RoleBinding", OPERATOR)["subjects"][0]["name"] == "op"


def _check_service_account_annotations(r: Rendered) -> None:
    annotations = r.one("ServiceAccount", OPERATOR)["metadata"]["annotations"]
    assert annotations == {"iam.example/role": "fleetroute"}


def _check_no_sharing(r: Rendered) -> None:
    assert [role["metadata"]["name"] for role in r.of("Role")] == [OPERATOR]
    assert rules_of(r.one("Role", OPERATOR)) == expected("cluster", "releaseNamespaceNoSharing")
    assert pod_spec(r, ROUTER)["automountServiceAccountToken"] is False
    assert "--learning-publish" not in args(r, ROUTER, "router")
    assert "--no-learning-fold" in args(r, OPERATOR, "operator")


def _check_existing_router_account(r: Rendered) -> None:
    assert [a["metadata"]["name"] for a in r.of("ServiceAccount")] == [OPERATOR]
    assert pod_spec(r, ROUTER)["serviceAccountName"] == "router-sa"
    assert r.one("RoleBinding", ROUTER)["subjects"][0]["name"] == "router-sa"


def _check_router_account_name(r: Rendered) -> None:
    assert r.one("ServiceAccount", "rt")["metadata"]["labels"]["app.kubernetes.io/component"] == (
        "router"
    )
    assert pod_spec(r, ROUTER)["serviceAccountName"] == "rt"
    assert r.one("RoleBinding", ROUTER)["subjects"][0]["name"] == "rt"


def _check_router_account_annotations(r: Rendered) -> None:
    annotations = r.one("ServiceAccount", ROUTER)["metadata"]["annotations"]
    assert annotations == {"iam.example/role": "router"}


def _check_pod(deployment: str, key: str, expected: Any) -> Check:
    def check(r: Rendered) -> None:
        assert pod_spec(r, deployment)[key] == expected

    return check


def _check_pod_meta(deployment: str, key: str, expected: dict[str, str]) -> Check:
    def check(r: Rendered) -> None:
        meta = r.one("Deployment", deployment)["spec"]["template"]["metadata"]
        assert expected.items() <= meta[key].items()

    return check


def _check_resources(deployment: str, name: str, expected: dict[str, Any]) -> Check:
    def check(r: Rendered) -> None:
        resources = container(r, deployment, name)["resources"]
        for key, value in expected.items():
            assert value.items() <= resources[key].items()

    return check


def _check_router_disabled(r: Rendered) -> None:
    assert [d["metadata"]["name"] for d in r.of("Deployment")] == [OPERATOR]
    assert r.of("Service") == []
    assert r.one("ConfigMap", "fleetroute-router-config")


def _check_sidecar(r: Rendered) -> None:
    assert sorted(d["metadata"]["name"] for d in r.of("Deployment")) == [GATEWAY, OPERATOR]
    spec = pod_spec(r, GATEWAY)
    assert [c["name"] for c in spec["containers"]] == ["gateway", "router"]
    gateway = spec["containers"][0]
    assert gateway["image"] == "envoyproxy/envoy:v1.36.2"
    assert gateway["args"] == ["-c", "/etc/envoy/envoy.yaml"]
    assert gateway["ports"] == [{"name": "http", "containerPort": 10000, "protocol": "TCP"}]
    assert gateway["volumeMounts"] == [{"name": "envoy", "mountPath": "/etc/envoy"}]
    assert gateway["resources"] == {"requests": {"cpu": "100m"}}
    assert gateway["securityContext"]["readOnlyRootFilesystem"] is True
    assert {"name": "envoy", "configMap": {"name": "envoy"}} in spec["volumes"]
    router = spec["containers"][1]
    # The gateway reaches ext_proc on localhost; nothing else can.
    assert "--ext-proc=127.0.0.1:9002" in router["args"]
    assert [p["name"] for p in router["ports"]] == ["router-grpc", "router-http", "router-admin"]
    assert router["readinessProbe"]["grpc"]["port"] == 50051
    service = r.one("Service", GATEWAY)
    assert [(p["name"], p["port"]) for p in service["spec"]["ports"]] == [
        ("http", 10000),
        ("router-grpc", 50051),
        ("router-http", 8080),
    ]
    assert service["spec"]["selector"]["app.kubernetes.io/component"] == "gateway"


def _check_gateway_security(r: Rendered) -> None:
    assert container(r, GATEWAY, "gateway")["securityContext"]["runAsUser"] == 101


def _check_replicas(r: Rendered) -> None:
    assert r.one("Deployment", ROUTER)["spec"]["replicas"] == 5


def _check_ports(r: Rendered) -> None:
    router = container(r, ROUTER, "router")
    public = [("grpc", 6000), ("http", 8081), ("ext-proc", 9003)]
    assert [(p["name"], p["containerPort"]) for p in router["ports"]] == [*public, ("admin", 9100)]
    assert router["livenessProbe"]["grpc"]["port"] == 6000
    assert router["readinessProbe"]["grpc"]["port"] == 6000
    flags = ["--grpc=0.0.0.0:6000", "--http=0.0.0.0:8081", "--ext-proc=0.0.0.0:9003"]
    assert [*flags, "--admin=0.0.0.0:9100"] == [
        a for a in router["args"] if a.startswith(("--grpc", "--http", "--ext-proc", "--admin"))
    ]
    annotations = r.one("Deployment", ROUTER)["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == "9100"
    service = r.one("Service", ROUTER)  # the public ports only
    assert [(p["name"], p["port"]) for p in service["spec"]["ports"]] == public


def _check_ports_off(r: Rendered) -> None:
    router = container(r, ROUTER, "router")
    assert [p["name"] for p in router["ports"]] == ["grpc", "admin"]
    assert "--http=" in router["args"]
    assert "--ext-proc=" in router["args"]
    assert [p["name"] for p in r.one("Service", ROUTER)["spec"]["ports"]] == ["grpc"]


def _check_drain(r: Rendered) -> None:
    assert "--drain-seconds=30" in args(r, ROUTER, "router")
    assert pod_spec(r, ROUTER)["terminationGracePeriodSeconds"] == 35


def _check_extra_args(r: Rendered) -> None:
    assert args(r, ROUTER, "router")[-2:] == ["--flag", "value with spaces"]


def _check_service(r: Rendered) -> None:
    service = r.one("Service", ROUTER)
    assert service["spec"]["type"] == "NodePort"
    assert service["metadata"]["annotations"] == {"lb": "internal"}


def _check_pdb(r: Rendered) -> None:
    pdb = r.one("PodDisruptionBudget", ROUTER)
    assert pdb["spec"]["minAvailable"] == "50%"
    assert pdb["spec"]["selector"] == r.one("Deployment", ROUTER)["spec"]["selector"]


def _check_no_pdb(r: Rendered) -> None:
    assert r.of("PodDisruptionBudget") == []


def _check_service_monitor(r: Rendered) -> None:
    monitor = r.one("ServiceMonitor", ROUTER)
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    assert monitor["spec"]["endpoints"] == [
        {"port": "admin", "path": "/metrics", "interval": "15s"}
    ]
    assert "admin" not in [p["name"] for p in r.one("Service", ROUTER)["spec"]["ports"]]
    admin = r.one("Service", f"{ROUTER}-admin")  # headless, selected by the monitor alone
    assert admin["spec"]["clusterIP"] == "None"
    assert [p["name"] for p in admin["spec"]["ports"]] == ["admin"]
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= admin["metadata"]["labels"].items()
    assert not selector.items() <= r.one("Service", ROUTER)["metadata"]["labels"].items()
    assert admin["spec"]["selector"] == r.one("Service", ROUTER)["spec"]["selector"]


def _check_no_dashboards(r: Rendered) -> None:
    assert [c["metadata"]["name"] for c in r.of("ConfigMap")] == ["fleetroute-router-config"]


def _check_dashboards_metadata(r: Rendered) -> None:
    configmap = r.one("ConfigMap", DASHBOARDS)
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "yes"
    assert configmap["metadata"]["annotations"] == {"grafana_folder": "fleetroute"}
    shipped = sorted(p.name for p in (CHART / "dashboards").glob("*.json"))
    assert sorted(configmap["data"]) == shipped
    for name in shipped:
        assert json.loads(configmap["data"][name]) == json.loads(
            (CHART / "dashboards" / name).read_text()
        )


DATASOURCES = "fleetroute-datasources"
DATASOURCE_VALUES: dict[str, Any] = {
    "grafana": {
        "datasources": {
            "enabled": True,
            "labels": {"grafana_datasource": "yes"},
            "annotations": {"grafana_folder": "fleetroute"},
            "prometheus": {
                "name": "Fleet metrics",
                "uid": "fleet-prom",
                "url": "http://prom.example:9090",
                "exemplarTraceIdLabel": "traceID",
            },
            "jaeger": {"name": "Fleet traces", "uid": "fleet-traces", "url": "http://j:16686"},
        }
    }
}


def _check_datasources(r: Rendered) -> None:
    configmap = r.one("ConfigMap", DATASOURCES)
    assert configmap["metadata"]["labels"]["grafana_datasource"] == "yes"
    assert configmap["metadata"]["annotations"] == {"grafana_folder": "fleetroute"}
    provisioning = yaml.safe_load(configmap["data"]["fleetroute-datasources.yaml"])
    assert provisioning["apiVersion"] == 1
    sources = {d["type"]: d for d in provisioning["datasources"]}
    assert sources["jaeger"] == {
        "name": "Fleet traces",
        "type": "jaeger",
        "uid": "fleet-traces",
        "access": "proxy",
        "url": "http://j:16686",
    }
    prometheus = sources["prometheus"]
    assert (prometheus["name"], prometheus["uid"], prometheus["url"]) == (
        "Fleet metrics",
        "fleet-prom",
        "http://prom.example:9090",
    )
    # an exemplar's traceID label opens that trace in the Jaeger data source
    assert prometheus["jsonData"]["exemplarTraceIdDestinations"] == [
        {"name": "traceID", "datasourceUid": "fleet-traces"}
    ]


def _check_no_datasources(r: Rendered) -> None:
    assert DATASOURCES not in [c["metadata"]["name"] for c in r.of("ConfigMap")]


VALUE_CASES: list[tuple[str, dict[str, Any], Check]] = [
    ("global.commonLabels", {"global": {"commonLabels": {"team": "ml"}}}, _check_labels),
    ("crds.enabled", {"crds": {"enabled": False}}, _check_no_crds),
    ("crds.keep", {"crds": {"keep": False}}, _check_crds_not_kept),
    (
        "image.repository",
        {"image": {"repository": "registry.example/fr"}},
        _check_images("registry.example/fr:0.1.0"),
    ),
    (
        "image.tag",
        {"image": {"tag": "1.2.3"}},
        _check_images("ghcr.io/fleetroute/fleetroute:1.2.3"),
    ),
    (
        "image.digest",
        {"image": {"tag": "ignored", "digest": "sha256:" + "a" * 64}},
        _check_images("ghcr.io/fleetroute/fleetroute@sha256:" + "a" * 64),
    ),
    (
        "image.pullPolicy",
        {"image": {"pullPolicy": "Always"}},
        _check_images("ghcr.io/fleetroute/fleetroute:0.1.0", "Always"),
    ),
    ("imagePullSecrets", {"imagePullSecrets": [{"name": "pull"}]}, _check_pull_secrets),
    ("rbac.create", {"rbac": {"create": False}}, _check_no_rbac),
    (
        "podSecurityContext",
        {"podSecurityContext": {"runAsNonRoot": True, "fsGroup": 2000}},
        _check_pod_security,
    ),
    (
        "containerSecurityContext",
        {"containerSecurityContext": {"privileged": False}},
        _check_container_security,
    ),
    # Learning sharing (on by default) gives the operator patch on every ConfigMap of the
    # release namespace; without it, patch is limited to the router config's name.
    (
        "routerConfig.name",
        {
            "routerConfig": {"name": "router-config"},
            "router": {"learningSharing": {"enabled": False}},
        },
        _check_router_config_name,
    ),
    (
        "operator.logLevel",
        {"operator": {"logLevel": "DEBUG"}},
        _check_arg(OPERATOR, "operator", "--log-level=DEBUG"),
    ),
    (
        "operator.statusInterval",
        {"operator": {"statusInterval": 2.5}},
        _check_arg(OPERATOR, "operator", "--status-interval=2.5"),
    ),
    ("operator.healthPort", {"operator": {"healthPort": 9090}}, _check_health_port),
    (
        "operator.metricsPort",
        {"operator": {"metricsPort": 8081}, "metrics": {"serviceMonitor": {"enabled": True}}},
        _check_operator_metrics,
    ),
    (
        "operator.watchNamespaces",
        {"operator": {"watchNamespaces": ["team-a"]}},
        _check_arg(OPERATOR, "operator", "--namespace=team-a"),
    ),
    (
        "operator.routerAddress",
        {"operator": {"routerAddress": "router.elsewhere:50051"}},
        _check_router_address("router.elsewhere:50051"),
    ),
    (
        "operator.routerAddress",
        {},
        _check_router_address(f"{ROUTER}.{NAMESPACE}.svc:50051"),
    ),
    (
        "operator.routerAddress",
        GATEWAY_VALUES,
        _check_router_address(f"{GATEWAY}.{NAMESPACE}.svc:50051"),
    ),
    (
        "operator.routerAddress",
        {"router": {"enabled": False}},
        _check_router_address(None),
    ),
    (
        "operator.serviceAccount.create",
        {"operator": {"serviceAccount": {"create": False, "name": "existing"}}},
        _check_existing_service_account,
    ),
    (
        "operator.serviceAccount.name",
        {"operator": {"serviceAccount": {"name": "op"}}},
        _check_service_account_name,
    ),
    (
        "operator.serviceAccount.annotations",
        {"operator": {"serviceAccount": {"annotations": {"iam.example/role": "fleetroute"}}}},
        _check_service_account_annotations,
    ),
    (
        "router.learningSharing.enabled",
        {"router": {"learningSharing": {"enabled": False}}},
        _check_no_sharing,
    ),
    (
        "router.learningSharing.publishPeriod",
        {"router": {"learningSharing": {"publishPeriod": 30}}},
        _check_arg(ROUTER, "router", "--learning-publish-period=30"),
    ),
    (
        "router.serviceAccount.create",
        {"router": {"serviceAccount": {"create": False, "name": "router-sa"}}},
        _check_existing_router_account,
    ),
    (
        "router.serviceAccount.name",
        {"router": {"serviceAccount": {"name": "rt"}}},
        _check_router_account_name,
    ),
    (
        "router.serviceAccount.annotations",
        {"router": {"serviceAccount": {"annotations": {"iam.example/role": "router"}}}},
        _check_router_account_annotations,
    ),
    (
        "operator.resources",
        {"operator": {"resources": {"requests": {"cpu": "1"}}}},
        _check_resources(OPERATOR, "operator", {"requests": {"cpu": "1", "memory": "256Mi"}}),
    ),
    (
        "operator.podAnnotations",
        {"operator": {"podAnnotations": {"note": "kept"}}},
        _check_pod_meta(OPERATOR, "annotations", {"note": "kept"}),
    ),
    (
        "operator.podLabels",
        {"operator": {"podLabels": {"tier": "control"}}},
        _check_pod_meta(OPERATOR, "labels", {"tier": "control"}),
    ),
    (
        "operator.nodeSelector",
        {"operator": {"nodeSelector": {"pool": "system"}}},
        _check_pod(OPERATOR, "nodeSelector", {"pool": "system"}),
    ),
    (
        "operator.tolerations",
        {"operator": {"tolerations": [{"key": "k", "operator": "Exists"}]}},
        _check_pod(OPERATOR, "tolerations", [{"key": "k", "operator": "Exists"}]),
    ),
    (
        "operator.affinity",
        {"operator": {"affinity": {"nodeAffinity": {}}}},
        _check_pod(OPERATOR, "affinity", {"nodeAffinity": {}}),
    ),
    (
        "operator.priorityClassName",
        {"operator": {"priorityClassName": "critical"}},
        _check_pod(OPERATOR, "priorityClassName", "critical"),
    ),
    ("router.enabled", {"router": {"enabled": False}}, _check_router_disabled),
    ("router.mode", GATEWAY_VALUES, _check_sidecar),
    ("router.replicaCount", {"router": {"replicaCount": 5}}, _check_replicas),
    (
        "router.logLevel",
        {"router": {"logLevel": "ERROR"}},
        _check_arg(ROUTER, "router", "--log-level=ERROR"),
    ),
    (
        "router.ports.grpc",
        ALL_PORTS,
        _check_ports,
    ),
    (
        "router.ports.http",
        ALL_PORTS,
        _check_ports,
    ),
    (
        "router.ports.extProc",
        ALL_PORTS,
        _check_ports,
    ),
    ("router.ports.admin", ALL_PORTS, _check_ports),
    (
        "router.ports",
        {"router": {"ports": {"http": 0, "extProc": 0}}},
        _check_ports_off,
    ),
    (
        "router.reloadInterval",
        {"router": {"reloadInterval": 2}},
        _check_arg(ROUTER, "router", "--reload-interval=2"),
    ),
    ("router.drainSeconds", {"router": {"drainSeconds": 30}}, _check_drain),
    (
        "router.extraArgs",
        {"router": {"extraArgs": ["--flag", "value with spaces"]}},
        _check_extra_args,
    ),
    (
        "router.service.type",
        {"router": {"service": {"type": "NodePort", "annotations": {"lb": "internal"}}}},
        _check_service,
    ),
    (
        "router.service.annotations",
        {"router": {"service": {"type": "NodePort", "annotations": {"lb": "internal"}}}},
        _check_service,
    ),
    ("router.podDisruptionBudget.enabled", {}, _check_no_pdb),
    (
        "router.podDisruptionBudget.minAvailable",
        {"router": {"podDisruptionBudget": {"enabled": True, "minAvailable": "50%"}}},
        _check_pdb,
    ),
    (
        "router.resources",
        {"router": {"resources": {"limits": {"memory": "2Gi"}}}},
        _check_resources(
            ROUTER, "router", {"limits": {"memory": "2Gi"}, "requests": {"cpu": "250m"}}
        ),
    ),
    (
        "router.podAnnotations",
        {"router": {"podAnnotations": {"note": "kept"}}},
        _check_pod_meta(ROUTER, "annotations", {"note": "kept"}),
    ),
    (
        "router.podLabels",
        {"router": {"podLabels": {"tier": "data"}}},
        _check_pod_meta(ROUTER, "labels", {"tier": "data"}),
    ),
    (
        "router.nodeSelector",
        {"router": {"nodeSelector": {"pool": "edge"}}},
        _check_pod(ROUTER, "nodeSelector", {"pool": "edge"}),
    ),
    (
        "router.tolerations",
        {"router": {"tolerations": [{"key": "k", "operator": "Exists"}]}},
        _check_pod(ROUTER, "tolerations", [{"key": "k", "operator": "Exists"}]),
    ),
    (
        "router.affinity",
        {"router": {"affinity": {"podAntiAffinity": {}}}},
        _check_pod(ROUTER, "affinity", {"podAntiAffinity": {}}),
    ),
    (
        "router.topologySpreadConstraints",
        {"router": {"topologySpreadConstraints": [{"maxSkew": 1}]}},
        _check_pod(ROUTER, "topologySpreadConstraints", [{"maxSkew": 1}]),
    ),
    (
        "router.priorityClassName",
        {"router": {"priorityClassName": "high"}},
        _check_pod(ROUTER, "priorityClassName", "high"),
    ),
]
for _key in ("image", "args", "ports", "volumes", "volumeMounts", "resources"):
    VALUE_CASES.append((f"gateway.{_key}", GATEWAY_VALUES, _check_sidecar))
GATEWAY_SECURITY = {"runAsUser": 101}
DASHBOARD_VALUES = {
    "grafana": {
        "dashboards": {
            "labels": {"grafana_dashboard": "yes"},
            "annotations": {"grafana_folder": "fleetroute"},
        }
    }
}
MONITORED: dict[str, Any] = {
    "router": {"ports": {"http": 8080}},
    "metrics": {
        "serviceMonitor": {"enabled": True, "interval": "15s", "labels": {"release": "prometheus"}}
    },
}


def _check_feedback_token(r: Rendered) -> None:
    pod = pod_spec(r, ROUTER)
    assert "--feedback-token-file=/var/run/fleetroute/feedback/token" in args(r, ROUTER, "router")
    (volume,) = [v for v in pod["volumes"] if v["name"] == "feedback-token"]
    assert volume["secret"] == {
        "secretName": "graders",
        "items": [{"key": "token", "path": "token"}],
    }
    mounts = {m["name"]: m for m in container(r, ROUTER, "router")["volumeMounts"]}
    assert mounts["feedback-token"]["mountPath"] == "/var/run/fleetroute/feedback"


def _check_control_token(r: Rendered) -> None:
    pod = pod_spec(r, ROUTER)
    assert "--control-token-file=/var/run/fleetroute/control/token" in args(r, ROUTER, "router")
    (volume,) = [v for v in pod["volumes"] if v["name"] == "control-token"]
    assert volume["secret"] == {
        "secretName": "controllers",
        "items": [{"key": "token", "path": "token"}],
    }
    mounts = {m["name"]: m for m in container(r, ROUTER, "router")["volumeMounts"]}
    assert mounts["control-token"]["mountPath"] == "/var/run/fleetroute/control"
    assert mounts["control-token"]["readOnly"] is True


TLS: dict[str, Any] = {
    "router": {
        "tls": {"secret": "router-tls", "clientAuth": True},
        "control": {"tokenSecret": "controllers"},
    },
    "operator": {"routerClientSecret": "operator-tls"},
}


def _mounts(r: Rendered, name: str, container_name: str) -> dict[str, str]:
    return {m["name"]: m["mountPath"] for m in container(r, name, container_name)["volumeMounts"]}


def _check_tls(r: Rendered) -> None:
    router_args = args(r, ROUTER, "router")
    for flag in (
        "--tls-cert-file=/var/run/fleetroute/tls/tls.crt",
        "--tls-key-file=/var/run/fleetroute/tls/tls.key",
        "--tls-client-ca-file=/var/run/fleetroute/tls/ca.crt",
    ):
        assert flag in router_args
    (volume,) = [v for v in pod_spec(r, ROUTER)["volumes"] if v["name"] == "tls"]
    assert volume["secret"]["secretName"] == "router-tls"
    assert [i["key"] for i in volume["secret"]["items"]] == ["tls.crt", "tls.key", "ca.crt"]
    assert _mounts(r, ROUTER, "router")["tls"] == "/var/run/fleetroute/tls"
    router = container(r, ROUTER, "router")
    for probe in ("livenessProbe", "readinessProbe"):  # kubelet's gRPC probes have no TLS
        assert router[probe]["httpGet"] == {"path": "/health", "port": "admin"}
    operator_args = args(r, OPERATOR, "operator")
    for flag in (
        "--router-token-file=/var/run/fleetroute/router-token/token",
        "--router-ca-file=/var/run/fleetroute/router-ca/ca.crt",
        "--router-cert-file=/var/run/fleetroute/router-client/tls.crt",
        "--router-key-file=/var/run/fleetroute/router-client/tls.key",
    ):
        assert flag in operator_args
    volumes = {v["name"]: v["secret"] for v in pod_spec(r, OPERATOR)["volumes"] if "secret" in v}
    assert volumes["router-token"]["secretName"] == "controllers"
    assert volumes["router-ca"] == {
        "secretName": "router-tls",
        "items": [{"key": "ca.crt", "path": "ca.crt"}],
    }
    assert volumes["router-client"]["secretName"] == "operator-tls"
    assert set(_mounts(r, OPERATOR, "operator")) >= {"router-token", "router-ca", "router-client"}


def _check_tls_server_only(r: Rendered) -> None:
    router_args = args(r, ROUTER, "router")
    assert "--tls-cert-file=/var/run/fleetroute/tls/tls.crt" in router_args
    assert not [a for a in router_args if a.startswith("--tls-client-ca-file")]
    assert "--router-ca-file=/var/run/fleetroute/router-ca/ca.crt" in args(r, OPERATOR, "operator")
    assert not [a for a in args(r, OPERATOR, "operator") if a.startswith("--router-cert-file")]


def _check_upstream_ca(r: Rendered) -> None:
    assert "--upstream-ca-file=/etc/fleetroute/upstream-ca/ca.crt" in args(r, ROUTER, "router")
    (volume,) = [v for v in pod_spec(r, ROUTER)["volumes"] if v["name"] == "upstream-ca"]
    assert volume["configMap"] == {
        "name": "model-ca",
        "items": [{"key": "ca.crt", "path": "ca.crt"}],
    }
    assert _mounts(r, ROUTER, "router")["upstream-ca"] == "/etc/fleetroute/upstream-ca"


def _check_learning_prior(r: Rendered) -> None:
    pod = pod_spec(r, ROUTER)
    assert "--learning-prior=/etc/fleetroute/prior/learning.pb" in args(r, ROUTER, "router")
    (volume,) = [v for v in pod["volumes"] if v["name"] == "learning-prior"]
    assert volume["configMap"]["name"] == "priors"
    mounts = {m["name"]: m for m in container(r, ROUTER, "router")["volumeMounts"]}
    assert mounts["learning-prior"]["readOnly"] is True


def _check_no_network_policy(r: Rendered) -> None:
    assert r.of("NetworkPolicy") == []


def _check_router_clients(r: Rendered) -> None:
    (rule, *_) = r.one("NetworkPolicy", ROUTER)["spec"]["ingress"]
    assert rule["from"] == [{"ipBlock": {"cidr": "10.1.0.0/16"}}]


def _check_prometheus_peers(r: Rendered) -> None:
    *_, rule = r.one("NetworkPolicy", ROUTER)["spec"]["ingress"]
    assert rule["from"] == [{"ipBlock": {"cidr": "10.2.0.0/16"}}]
    served = r.one("NetworkPolicy", "fleetroute-model-servers")
    assert served["spec"]["ingress"][0]["from"][1:] == [{"ipBlock": {"cidr": "10.2.0.0/16"}}]


def _check_model_server_namespaces(r: Rendered) -> None:
    assert [
        p["metadata"]["namespace"]
        for p in r.of("NetworkPolicy")
        if p["metadata"]["name"] == "fleetroute-model-servers"
    ] == ["llm", "batch"]


VALUE_CASES += [
    (
        "router.feedback.tokenSecret",
        {"router": {"feedback": {"tokenSecret": "graders"}}},
        _check_feedback_token,
    ),
    (
        "router.control.tokenSecret",
        {"router": {"control": {"tokenSecret": "controllers"}}},
        _check_control_token,
    ),
    ("router.tls.secret", {"router": {"tls": {"secret": "router-tls"}}}, _check_tls_server_only),
    ("router.tls.clientAuth", TLS, _check_tls),
    ("operator.routerClientSecret", TLS, _check_tls),
    ("router.tls.upstreamCA", {"router": {"tls": {"upstreamCA": "model-ca"}}}, _check_upstream_ca),
    ("router.learningPrior", {"router": {"learningPrior": "priors"}}, _check_learning_prior),
    (
        "gateway.securityContext",
        {
            **GATEWAY_VALUES,
            "gateway": {**GATEWAY_VALUES["gateway"], "securityContext": GATEWAY_SECURITY},
        },
        _check_gateway_security,
    ),
    ("networkPolicy.enabled", {"networkPolicy": {"enabled": False}}, _check_no_network_policy),
    (
        "networkPolicy.routerClients",
        {"networkPolicy": {"routerClients": [{"ipBlock": {"cidr": "10.1.0.0/16"}}]}},
        _check_router_clients,
    ),
    (
        "networkPolicy.prometheus",
        {"networkPolicy": {"prometheus": [{"ipBlock": {"cidr": "10.2.0.0/16"}}]}},
        _check_prometheus_peers,
    ),
    (
        "networkPolicy.modelServerNamespaces",
        {"networkPolicy": {"modelServerNamespaces": ["llm", "batch"]}},
        _check_model_server_namespaces,
    ),
    ("metrics.serviceMonitor.enabled", MONITORED, _check_service_monitor),
    ("metrics.serviceMonitor.interval", MONITORED, _check_service_monitor),
    ("metrics.serviceMonitor.labels", MONITORED, _check_service_monitor),
    (
        "grafana.dashboards.enabled",
        {"grafana": {"dashboards": {"enabled": False}}},
        _check_no_dashboards,
    ),
    ("grafana.dashboards.labels", DASHBOARD_VALUES, _check_dashboards_metadata),
    ("grafana.dashboards.annotations", DASHBOARD_VALUES, _check_dashboards_metadata),
    ("grafana.datasources.enabled", {}, _check_no_datasources),
    *(
        (f"grafana.datasources.{key}", DATASOURCE_VALUES, _check_datasources)
        for key in (
            "enabled",
            "labels",
            "annotations",
            "prometheus.name",
            "prometheus.uid",
            "prometheus.url",
            "prometheus.exemplarTraceIdLabel",
            "jaeger.name",
            "jaeger.uid",
            "jaeger.url",
        )
    ),
]


def _ids(keys: list[str]) -> list[str]:
    """Case ids: the value's key, numbered when it has several cases."""
    return [f"{k}-{keys[: i + 1].count(k)}" if keys.count(k) > 1 else k for i, k in enumerate(keys)]


@pytest.mark.parametrize(
    ("key", "values", "check"),
    [
        pytest.param(*case, id=name)
        for case, name in zip(VALUE_CASES, _ids([c[0] for c in VALUE_CASES]), strict=True)
    ],
)
def test_value(helm: Helm, key: str, values: dict[str, Any], check: Check) -> None:
    check(helm.template(values))


def test_service_monitor_beside_a_gateway_scrapes_the_routers_port(helm: Helm) -> None:
    rendered = helm.template({**GATEWAY_VALUES, "metrics": MONITORED["metrics"]})
    (endpoint,) = rendered.one("ServiceMonitor", GATEWAY)["spec"]["endpoints"]
    assert endpoint["port"] == "router-admin"
    ports = rendered.one("Service", f"{GATEWAY}-admin")["spec"]["ports"]
    assert [p["name"] for p in ports] == ["router-admin"]


def test_every_value_has_a_case() -> None:
    text = (CHART / "values.yaml").read_text()
    documented = {
        ".".join(p)
        for p in generate_chart._leaf_paths(
            yaml.safe_load(text), generate_chart.parse_entries(text)
        )
    }
    assert documented - {key for key, _, _ in VALUE_CASES} == set()


@pytest.mark.parametrize(
    ("values", "message"),
    [
        pytest.param(
            {"router": {"mode": "sidecar"}},
            "router.mode=sidecar needs gateway.image",
            id="sidecar-without-gateway",
        ),
        pytest.param(
            {"router": {"tls": {"clientAuth": True}}},
            "router.tls.clientAuth needs router.tls.secret",
            id="client-auth-without-tls",
        ),
        pytest.param(
            {"router": {"tls": {"secret": "router-tls", "clientAuth": True}}},
            "router.tls.clientAuth needs operator.routerClientSecret",
            id="client-auth-without-an-operator-certificate",
        ),
        pytest.param(
            {"operator": {"serviceAccount": {"create": False}}},
            "operator.serviceAccount.name is required when operator.serviceAccount.create is false",
            id="existing-serviceaccount-without-name",
        ),
    ],
)
def test_inconsistent_values_fail_with_a_clear_message(
    helm: Helm, values: dict[str, Any], message: str
) -> None:
    assert message in helm.template_error(values)


@pytest.mark.parametrize("with_dashboards", [True, False], ids=["enabled", "disabled"])
def test_dashboards_configmap_holds_every_dashboard_file(
    helm: Helm, chart_copy: Callable[[], Path], with_dashboards: bool
) -> None:
    chart = chart_copy()
    shutil.rmtree(chart / "dashboards", ignore_errors=True)
    (chart / "dashboards").mkdir()
    dashboards = {"fleet.json": {"title": "fleet"}, "router.json": {"title": "router"}}
    for name, content in dashboards.items():
        (chart / "dashboards" / name).write_text(json.dumps(content, indent=2))
    values = {
        "grafana": {
            "dashboards": {
                "enabled": with_dashboards,
                "labels": {"grafana_dashboard": "1", "extra": "x"},
                "annotations": {"grafana_folder": "fleetroute"},
            }
        }
    }
    rendered = helm.template(values, chart)
    found = [c for c in rendered.of("ConfigMap") if c["metadata"]["name"].endswith("-dashboards")]
    if not with_dashboards:
        assert found == []
        return
    (configmap,) = found
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert configmap["metadata"]["labels"]["extra"] == "x"
    assert configmap["metadata"]["annotations"] == {"grafana_folder": "fleetroute"}
    assert {k: json.loads(v) for k, v in configmap["data"].items()} == dashboards


def test_no_dashboard_file_renders_no_configmap(helm: Helm, chart_copy: Callable[[], Path]) -> None:
    chart = chart_copy()
    shutil.rmtree(chart / "dashboards", ignore_errors=True)
    rendered = helm.template({"grafana": {"dashboards": {"enabled": True}}}, chart)
    _check_no_dashboards(rendered)


@pytest.mark.parametrize(
    "values",
    [None, ALL_OPTIONS, GATEWAY_VALUES, {"crds": {"enabled": False}, "rbac": {"create": False}}],
    ids=["defaults", "all-options", "sidecar", "minimal"],
)
def test_helm_lint_is_clean(helm: Helm, values: dict[str, Any] | None) -> None:
    result = helm.run("lint", str(CHART), "--strict", values=values)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 chart(s) linted, 0 chart(s) failed" in result.stdout


@pytest.mark.parametrize(
    "values",
    [None, ALL_OPTIONS, GATEWAY_VALUES, {"crds": {"enabled": False}, "rbac": {"create": False}}],
    ids=["defaults", "all-options", "sidecar", "minimal"],
)
def test_kubeconform_accepts_the_rendering(
    helm: Helm, kubeconform: Callable[..., tuple[int, list[dict[str, Any]]]], values: Any
) -> None:
    rendered = helm.template(values)
    code, results = kubeconform(rendered.text)
    assert [
        (r["kind"], r["status"], r.get("msg")) for r in results if r["status"] != "statusValid"
    ] == []
    assert code == 0
    assert sorted(r["kind"] for r in results) == rendered.kinds()


@pytest.mark.parametrize(
    ("mutate", "error"),
    [
        pytest.param(
            lambda d: (
                d["kind"] == "Deployment"
                and d["spec"]["template"]["spec"]["containers"][0].update(imagePullPolcy="Always")
            ),
            "imagePullPolcy",
            id="unknown-container-field",
        ),
        pytest.param(
            lambda d: d["kind"] == "Service" and d["spec"]["ports"][0].update(port="grpc"),
            "port",
            id="wrong-type",
        ),
        pytest.param(
            lambda d: d["kind"] == "CustomResourceDefinition" and d["spec"].update(scope=7),
            "scope",
            id="crd-field-type",
        ),
    ],
)
def test_kubeconform_rejects_invalid_objects(
    defaults: Rendered,
    kubeconform: Callable[..., tuple[int, list[dict[str, Any]]]],
    mutate: Callable[[dict[str, Any]], Any],
    error: str,
) -> None:
    docs = json.loads(json.dumps(list(defaults)))
    for doc in docs:
        mutate(doc)
    code, results = kubeconform("---\n".join(yaml.safe_dump(d) for d in docs))
    assert code != 0
    invalid = [r for r in results if r["status"] == "statusInvalid"]
    assert invalid
    assert error in json.dumps(invalid)


def test_kubeconform_validates_custom_resources_strictly(
    kubeconform: Callable[..., tuple[int, list[dict[str, Any]]]],
) -> None:
    fleet = ROOT / "examples" / "fleet"
    text = "\n---\n".join(p.read_text() for p in sorted(fleet.glob("*.yaml")))
    code, results = kubeconform(text)
    assert code == 0, results
    kinds = {r["kind"] for r in results if r["status"] == "statusValid"}
    assert {"GPUPool", "ModelPool", "RoutingPolicy"} <= kinds
    pool = yaml.safe_load((fleet / "gpupools.yaml").read_text().split("---")[0])
    pool["spec"]["powr"] = pool["spec"].pop("power")
    code, results = kubeconform(yaml.safe_dump(pool))
    assert code != 0
    assert "powr" in json.dumps(results)


def test_router_shares_learning_as_its_pod_with_a_role_for_its_configmaps(
    defaults: Rendered,
) -> None:
    argv = args(defaults, ROUTER, "router")
    assert "--learning-publish" in argv
    assert "--learning-publish-period=10" in argv
    env = {
        e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"]
        for e in container(defaults, ROUTER, "router")["env"]
    }
    assert env == {
        "FLEETROUTE_POD_NAME": "metadata.name",
        "FLEETROUTE_POD_UID": "metadata.uid",
        "FLEETROUTE_POD_NAMESPACE": "metadata.namespace",
    }
    account = defaults.one("ServiceAccount", ROUTER)
    assert account["automountServiceAccountToken"] is False  # only the router pods mount it


def test_the_router_may_write_only_replica_learning_configmaps(defaults: Rendered) -> None:
    policy = defaults.one("ValidatingAdmissionPolicy")
    name = policy["metadata"]["name"]
    assert name == f"fleetroute-{NAMESPACE}-router-learning"
    user = f"system:serviceaccount:{NAMESPACE}:{ROUTER}"
    assert policy["spec"]["matchConditions"] == [
        {"name": "the-router", "expression": f'request.userInfo.username == "{user}"'}
    ]
    (rule,) = policy["spec"]["matchConstraints"]["resourceRules"]
    assert (rule["resources"], rule["operations"]) == (["configmaps"], ["CREATE", "UPDATE"])
    (validation,) = policy["spec"]["validations"]
    for term in ("'fleetroute-learning-'", "'fleetroute-learning-base'", "== 'replica'"):
        assert term in validation["expression"]
    binding = defaults.one("ValidatingAdmissionPolicyBinding")
    assert binding["spec"]["policyName"] == name
    assert binding["spec"]["validationActions"] == ["Deny"]
    assert binding["spec"]["matchResources"]["namespaceSelector"] == {
        "matchLabels": {"kubernetes.io/metadata.name": NAMESPACE}
    }


def test_without_sharing_the_router_has_no_role_and_no_token(helm: Helm) -> None:
    rendered = helm.template({"router": {"learningSharing": {"enabled": False}}})
    assert rendered.of("ValidatingAdmissionPolicy") == []
    assert [r["metadata"]["name"] for r in rendered.of("Role")] == [OPERATOR]
    assert pod_spec(rendered, ROUTER)["automountServiceAccountToken"] is False
    assert not [a for a in args(rendered, ROUTER, "router") if a.startswith("--learning-pub")]
    assert "env" not in container(rendered, ROUTER, "router")


def test_a_publish_period_reaches_the_router(helm: Helm) -> None:
    rendered = helm.template({"router": {"learningSharing": {"publishPeriod": 2.5}}})
    assert "--learning-publish-period=2.5" in args(rendered, ROUTER, "router")


def test_namespace_scoped_without_a_router_keeps_the_narrow_configmap_rule(helm: Helm) -> None:
    rendered = helm.template(
        {"operator": {"watchNamespaces": WATCHED}, "router": {"enabled": False}}
    )
    assert rules_of(rendered.one("Role", OPERATOR)) == expected(
        "namespaced", "releaseNamespaceNoRouter"
    )
    assert "--no-learning-fold" in args(rendered, OPERATOR, "operator")
