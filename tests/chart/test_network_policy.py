"""The chart's NetworkPolicies as data: which pods they select and which peers reach which ports.

The local e2e cluster has no network plugin, so nothing enforces NetworkPolicy there; these tests
check the rendered selectors and ports against the pods they must select (the chart's own pods and
the model-server pods the operator's builder makes).
"""

from __future__ import annotations

from typing import Any

import pytest

from fleetroute.crds import GPUPoolSpec, ModelPoolSpec
from fleetroute_operator import workloads
from tests.chart.conftest import NAMESPACE, Helm, Rendered

OPERATOR, ROUTER, GATEWAY = "fleetroute-operator", "fleetroute-router", "fleetroute-gateway"
MODEL_SERVERS = "fleetroute-model-servers"
DEFAULT_CLIENTS = [
    {
        "namespaceSelector": {},
        "podSelector": {"matchLabels": {"fleetroute.dev/router-client": "true"}},
    }
]
DEFAULT_PROMETHEUS = [
    {
        "namespaceSelector": {},
        "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
    }
]


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    assert set(selector) <= {"matchLabels"}, selector
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


def _pod_labels(rendered: Rendered, deployment: str) -> dict[str, str]:
    labels: dict[str, str] = rendered.one("Deployment", deployment)["spec"]["template"]["metadata"][
        "labels"
    ]
    return labels


def _port_names(rendered: Rendered, deployment: str) -> set[str]:
    spec = rendered.one("Deployment", deployment)["spec"]["template"]["spec"]
    return {p["name"] for c in spec["containers"] for p in c.get("ports", [])}


def _rules(policy: dict[str, Any]) -> list[tuple[list[dict[str, Any]], list[Any]]]:
    """(from peers, port names) of each ingress rule."""
    return [
        (rule["from"], [p["port"] for p in rule.get("ports", [])])
        for rule in policy["spec"]["ingress"]
    ]


def _model_server_pod_labels(example_objects: list[dict[str, Any]]) -> tuple[dict[str, str], str]:
    """Labels and port name of the pods the operator builds for an example ModelPool."""
    body = next(o for o in example_objects if o["metadata"]["name"] == "llama-8b-l4")
    body = {**body, "metadata": {**body["metadata"], "uid": "uid-1"}}
    gpu = next(
        o for o in example_objects if o["kind"] == "GPUPool" and o["metadata"]["name"] == "l4"
    )
    deployment = workloads.build_deployment(
        body,
        ModelPoolSpec.model_validate(body["spec"]),
        "l4",
        GPUPoolSpec.model_validate(gpu["spec"]),
    )
    template = deployment["spec"]["template"]
    (port,) = template["spec"]["containers"][0]["ports"]
    return template["metadata"]["labels"], port["name"]


def test_defaults_render_a_policy_for_router_operator_and_model_servers(defaults: Rendered) -> None:
    policies = {
        (p["metadata"]["namespace"], p["metadata"]["name"]) for p in defaults.of("NetworkPolicy")
    }
    assert policies == {(NAMESPACE, ROUTER), (NAMESPACE, OPERATOR), (NAMESPACE, MODEL_SERVERS)}
    for policy in defaults.of("NetworkPolicy"):
        assert policy["spec"]["policyTypes"] == ["Ingress"]


def test_router_ports_admit_clients_the_operator_and_prometheus_only(defaults: Rendered) -> None:
    policy = defaults.one("NetworkPolicy", ROUTER)
    selector = policy["spec"]["podSelector"]
    assert _selects(selector, _pod_labels(defaults, ROUTER))
    assert not _selects(selector, _pod_labels(defaults, OPERATOR))
    clients, operator, prometheus = _rules(policy)
    assert clients == (DEFAULT_CLIENTS, ["grpc", "http", "ext-proc"])
    (operator_peer,) = operator[0]
    assert set(operator_peer) == {"podSelector"}  # the release namespace only
    assert _selects(operator_peer["podSelector"], _pod_labels(defaults, OPERATOR))
    assert operator[1] == ["grpc"]
    # /metrics and /stats are on the admin port, for Prometheus alone.
    assert prometheus == (DEFAULT_PROMETHEUS, ["admin"])
    named = _port_names(defaults, ROUTER)
    assert {p for _, ports in _rules(policy) for p in ports} <= named


def test_the_admin_port_is_for_prometheus_alone(helm: Helm) -> None:
    rendered = helm.template({"router": {"ports": {"admin": 9100}}})
    clients, operator, prometheus = _rules(rendered.one("NetworkPolicy", ROUTER))
    assert "admin" not in clients[1]
    assert "admin" not in operator[1]
    assert prometheus[1] == ["admin"]
    assert "admin" in _port_names(rendered, ROUTER)


def test_peers_are_the_values(helm: Helm) -> None:
    clients = [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "gateway"}}}]
    prometheus = [{"ipBlock": {"cidr": "10.0.0.0/24"}}]
    rendered = helm.template(
        {"networkPolicy": {"routerClients": clients, "prometheus": prometheus}}
    )
    rules = _rules(rendered.one("NetworkPolicy", ROUTER))
    assert rules[0][0] == clients
    assert rules[2][0] == prometheus
    served = rendered.one("NetworkPolicy", MODEL_SERVERS)["spec"]["ingress"][0]
    assert served["from"][1:] == prometheus


def test_no_router_clients_leaves_only_the_operator(helm: Helm) -> None:
    rendered = helm.template({"networkPolicy": {"routerClients": []}})
    rules = _rules(rendered.one("NetworkPolicy", ROUTER))
    assert [ports for _, ports in rules] == [["grpc"], ["admin"]]


def test_sidecar_mode_selects_the_gateway_pods_and_their_ports(helm: Helm) -> None:
    values = {
        "router": {"mode": "sidecar"},
        "gateway": {
            "image": "envoyproxy/envoy:v1.36.2",
            "ports": [{"name": "http", "containerPort": 10000}],
        },
    }
    rendered = helm.template(values)
    policy = rendered.one("NetworkPolicy", GATEWAY)
    assert _selects(policy["spec"]["podSelector"], _pod_labels(rendered, GATEWAY))
    clients, operator, prometheus = _rules(policy)
    assert clients[1] == ["router-grpc", "router-http", "http"]
    assert operator[1] == ["router-grpc"]
    assert prometheus[1] == ["router-admin"]
    assert {p for _, ports in _rules(policy) for p in ports} <= _port_names(rendered, GATEWAY)
    (router_peer,) = [
        peer
        for peer in rendered.one("NetworkPolicy", MODEL_SERVERS)["spec"]["ingress"][0]["from"]
        if "namespaceSelector" in peer and "matchLabels" in peer["namespaceSelector"]
    ]
    assert _selects(router_peer["podSelector"], _pod_labels(rendered, GATEWAY))


def test_model_servers_admit_the_router_and_prometheus_on_their_port(
    defaults: Rendered, example_objects: list[dict[str, Any]]
) -> None:
    policy = defaults.one("NetworkPolicy", MODEL_SERVERS)
    labels, port = _model_server_pod_labels(example_objects)
    assert _selects(policy["spec"]["podSelector"], labels)
    assert not _selects(policy["spec"]["podSelector"], _pod_labels(defaults, ROUTER))
    (served, peers) = policy["spec"]["ingress"]
    router, *scrapers = served["from"]
    assert router["namespaceSelector"] == {
        "matchLabels": {"kubernetes.io/metadata.name": NAMESPACE}
    }
    assert _selects(router["podSelector"], _pod_labels(defaults, ROUTER))
    assert not _selects(router["podSelector"], _pod_labels(defaults, OPERATOR))
    assert scrapers == DEFAULT_PROMETHEUS
    assert served["ports"] == [{"protocol": "TCP", "port": port}]
    # Prefill and decode servers of a namespace reach each other on every port.
    (same,) = peers["from"]
    assert set(same) == {"podSelector"}
    assert _selects(same["podSelector"], labels)
    assert "ports" not in peers


@pytest.mark.parametrize(
    ("values", "namespaces"),
    [
        pytest.param({}, [NAMESPACE], id="cluster-wide"),
        pytest.param(
            {"operator": {"watchNamespaces": ["team-a", "team-b"]}},
            ["team-a", "team-b"],
            id="watched",
        ),
        pytest.param(
            {
                "operator": {"watchNamespaces": ["team-a"]},
                "networkPolicy": {"modelServerNamespaces": ["llm"]},
            },
            ["llm"],
            id="listed",
        ),
    ],
)
def test_model_server_policies_go_to_the_pools_namespaces(
    helm: Helm, values: dict[str, Any], namespaces: list[str]
) -> None:
    rendered = helm.template(values)
    found = [
        p["metadata"]["namespace"]
        for p in rendered.of("NetworkPolicy")
        if p["metadata"]["name"] == MODEL_SERVERS
    ]
    assert found == namespaces


def test_operator_admits_nothing_but_prometheus_on_its_metrics_port(
    defaults: Rendered, helm: Helm
) -> None:
    policy = defaults.one("NetworkPolicy", OPERATOR)
    assert _selects(policy["spec"]["podSelector"], _pod_labels(defaults, OPERATOR))
    assert policy["spec"]["ingress"] == []
    rendered = helm.template({"operator": {"metricsPort": 8081}})
    assert _rules(rendered.one("NetworkPolicy", OPERATOR)) == [(DEFAULT_PROMETHEUS, ["metrics"])]


def test_disabled_renders_none(helm: Helm) -> None:
    assert helm.template({"networkPolicy": {"enabled": False}}).of("NetworkPolicy") == []


def test_without_a_router_only_operator_and_model_servers(helm: Helm) -> None:
    rendered = helm.template({"router": {"enabled": False}})
    assert sorted(p["metadata"]["name"] for p in rendered.of("NetworkPolicy")) == [
        MODEL_SERVERS,
        OPERATOR,
    ]
