"""Where replicas publish their learning: a Kubernetes namespace's ConfigMaps, or a fake of it.

The router's only Kubernetes calls: list the learning ConfigMaps of its namespace and
server-side apply its own. Blocking calls, each with a timeout: the publisher runs them in a
worker thread, never on the event loop.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from typing import Any, Protocol

from kubernetes import client as k8s_client
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError
from urllib3.util import Retry

from fleetroute import replica_learning

Manifest = dict[str, Any]
FIELD_MANAGER = "fleetroute-router"
# (connect, read) seconds of every call: a list or an apply of a few ConfigMaps takes well under
# a second; a server that does not answer in this long is treated as down.
REQUEST_TIMEOUT_S = (3.0, 10.0)


class StoreError(RuntimeError):
    """A call to the store failed (the API server is slow, down or refused it)."""


class LearningStore(Protocol):
    """The learning objects of one namespace."""

    def list(self) -> list[Manifest]:
        """Every learning ConfigMap (replica and base kinds) of the namespace, as dicts."""
        ...

    def apply(self, manifest: Manifest) -> None:
        """Create or update one ConfigMap (server-side apply, this router's field manager)."""
        ...


class KubeStore:
    """LearningStore over the API server: in-cluster config, else the kubeconfig."""

    def __init__(
        self,
        namespace: str,
        kubeconfig: str | None = None,
        timeout: tuple[float, float] = REQUEST_TIMEOUT_S,
    ) -> None:
        configuration = k8s_client.Configuration()
        if kubeconfig is None:
            try:
                k8s_config.load_incluster_config(client_configuration=configuration)
            except k8s_config.ConfigException:
                k8s_config.load_kube_config(client_configuration=configuration)
        else:
            k8s_config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
        # Retry a refused connection, never a read that timed out: the next period tries again.
        configuration.retries = Retry(total=2, read=0, redirect=0, status=0)
        self.namespace, self._timeout = namespace, timeout
        self._api = k8s_client.CoreV1Api(k8s_client.ApiClient(configuration))
        self._lock = threading.Lock()  # one ApiClient, used from worker threads

    def list(self) -> list[Manifest]:
        with self._lock:
            try:
                response: Any = self._api.list_namespaced_config_map(
                    self.namespace,
                    label_selector=replica_learning.KIND_LABEL,
                    _preload_content=False,
                    _request_timeout=self._timeout,
                )
                document = json.loads(response.data)  # raw: _preload_content=False
            except (ApiException, HTTPError, OSError, ValueError) as error:
                raise StoreError(f"list learning ConfigMaps: {_reason(error)}") from error
        items = document.get("items") if isinstance(document, Mapping) else None
        return [dict(item) for item in items or [] if isinstance(item, Mapping)]

    def apply(self, manifest: Manifest) -> None:
        name = manifest["metadata"]["name"]
        with self._lock:
            try:
                self._api.patch_namespaced_config_map(
                    name,
                    self.namespace,
                    manifest,
                    field_manager=FIELD_MANAGER,
                    force=True,
                    _content_type="application/apply-patch+yaml",
                    _preload_content=False,
                    _request_timeout=self._timeout,
                )
            except (ApiException, HTTPError, OSError) as error:
                raise StoreError(f"apply ConfigMap {name}: {_reason(error)}") from error


def _reason(error: Exception) -> str:
    if isinstance(error, ApiException):
        return f"{error.status} {error.reason}"
    return str(error) or type(error).__name__
