"""The uid the operator puts in an apply over an object it checked: the real API server refuses
the apply when the object by that name is another one (replaced since the check), and the
reconcile turns that into a retry."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kubernetes import config as k8s_config

from e2e.localcluster import Cluster
from fleetroute_operator.kube import ApiError, ApiKube

pytestmark = pytest.mark.e2e
NAMESPACE = "fleetroute-apply-guard"


@pytest.fixture(scope="module")
def kube(cluster: Cluster) -> Iterator[ApiKube]:
    cluster.kubectl("create", "namespace", NAMESPACE, check=False)
    api_client = k8s_config.new_client_from_config(config_file=str(cluster.kubeconfig))
    try:
        yield ApiKube(api_client)
    finally:
        api_client.close()
        cluster.kubectl("delete", "namespace", NAMESPACE, "--wait=false", check=False)


def _config_map(uid: str | None = None) -> dict[str, object]:
    metadata: dict[str, object] = {"name": "guarded", "namespace": NAMESPACE}
    if uid:
        metadata["uid"] = uid
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": {"k": "v"}}


def test_an_apply_carrying_another_objects_uid_is_refused(cluster: Cluster, kube: ApiKube) -> None:
    cluster.kubectl("create", "configmap", "guarded", "-n", NAMESPACE, "--from-literal=k=mine")
    live = kube.get("v1", "ConfigMap", "guarded", NAMESPACE)
    assert live is not None
    with pytest.raises(ApiError) as refused:
        kube.apply(_config_map("00000000-0000-0000-0000-000000000000"))
    # Server-side apply answers 422 (metadata.uid is immutable); reconcile retries on it.
    assert refused.value.status == 422
    assert "metadata.uid" in str(refused.value)
    unchanged = kube.get("v1", "ConfigMap", "guarded", NAMESPACE)
    assert unchanged is not None
    assert unchanged["data"] == {"k": "mine"}
    applied = kube.apply(_config_map(live["metadata"]["uid"]))
    assert applied["data"] == {"k": "v"}
