"""CRs generated from the CRD schemas, valid and mutated, against the real API server's schema
and CEL rules (server-side dry run, strict field validation as kubectl uses it): each is refused
with a message, or accepted and then given a clear condition by the operator's handlers, which
never crash. The local validator (tests/crd_validator.py) is checked against the server too."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import event, given, settings
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException

from e2e.chart_support import ROOT
from e2e.localcluster import Cluster
from tests import crd_validator
from tests.crd_strategies import NAMESPACE, crds, crs, examples_of
from tests.fuzzing import examples
from tests.operator_verdict import ready_condition

pytestmark = pytest.mark.e2e
GROUP, VERSION = "fleetroute.dev", "v1alpha1"


@pytest.fixture(scope="module")
def api(cluster: Cluster) -> Iterator[k8s_client.CustomObjectsApi]:
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds"))
    names = [f"crd/{crd['metadata']['name']}" for crd in crds().values()]
    cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s", *names)
    cluster.kubectl("create", "namespace", NAMESPACE, check=False)
    api_client = k8s_config.new_client_from_config(config_file=str(cluster.kubeconfig))
    try:
        yield k8s_client.CustomObjectsApi(api_client)
    finally:
        api_client.close()


def submit(api: k8s_client.CustomObjectsApi, obj: dict[str, Any]) -> tuple[Any, str | None]:
    """(the object as the server would store it, None), or (None, the server's message)."""
    crd = crds()[obj["kind"]]
    plural = crd["spec"]["names"]["plural"]
    options: dict[str, Any] = {
        "dry_run": "All",
        "field_validation": "Strict",
        "_request_timeout": 30,
    }
    try:
        if crd["spec"]["scope"] == "Namespaced":
            created = api.create_namespaced_custom_object(
                GROUP, VERSION, NAMESPACE, plural, obj, **options
            )
        else:
            created = api.create_cluster_custom_object(GROUP, VERSION, plural, obj, **options)
    except ApiException as error:
        status, body = error.status, error.body
    else:
        return created, None
    assert status in (400, 422), (status, body)  # refused as invalid, never a server error
    return None, str(json.loads(body).get("message") or "")


@settings(max_examples=examples(400))
@given(obj=crs())
def test_every_cr_is_refused_with_a_message_or_given_a_clear_condition(
    api: k8s_client.CustomObjectsApi, obj: dict[str, Any]
) -> None:
    stored, message = submit(api, obj)
    local = crd_validator.errors(obj)
    if stored is None:
        event(f"{obj['kind']} refused")
        assert message, obj
        # The local validator agrees, except on unknown fields (it does not prune or refuse them).
        assert local or "unknown field" in message, (obj, message)
        return
    event(f"{obj['kind']} accepted")
    assert local == [], (obj, local)
    condition = ready_condition(stored)  # with the server's defaults
    event(f"{obj['kind']} {condition['reason']}")
    assert condition["reason"] != "InvalidSpec", (stored, condition)
    assert condition["message"]


def test_micro_second_durations_are_go_durations(api: k8s_client.CustomObjectsApi) -> None:
    """Go (and so the API server's CEL) reads `µs`; the local validator's CEL library does not,
    which is why the generated strings are ASCII: this one case covers it on the real server."""
    (policy,) = [copy.deepcopy(p) for p in examples_of("RoutingPolicy")]
    policy["spec"]["slo"] = {"ttft": "500µs"}
    stored, message = submit(api, policy)
    assert message is None
    assert ready_condition(stored)["reason"] == "CandidatesMissing"
