"""The few Kubernetes API calls the operator makes, behind a protocol that tests can fake.

Every call carries a `_request_timeout` (discovery included), so that an API server that accepts
connections and never answers fails the call with a retriable ApiError instead of holding one of
kopf's handler threads forever.
"""

from __future__ import annotations

import threading
from typing import Any, Protocol

from kubernetes import client as k8s_client
from kubernetes import config as k8s_config
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import DynamicApiError, NotFoundError
from urllib3.exceptions import HTTPError
from urllib3.util import Retry

from fleetroute_operator import labels

Manifest = dict[str, Any]

# Statuses worth retrying: conflicts, throttling, and the server or its storage being unwell.
RETRIABLE_STATUSES = frozenset({409, 429, 500, 502, 503, 504})
# (connect, read) seconds of every call: the API server answers a get, list or apply in well
# under a second; a minute of nothing means it is hung.
REQUEST_TIMEOUT_S = (5.0, 30.0)


class ApiError(RuntimeError):
    """A call to the API server failed; `retriable` says whether trying again can help."""

    def __init__(self, message: str, *, status: int | None, retriable: bool) -> None:
        super().__init__(message)
        self.status = status
        self.retriable = retriable


def _api_error(what: str, error: Exception) -> ApiError:
    if isinstance(error, DynamicApiError):
        status = int(error.status) if error.status else None
        reason = error.summary()
        return ApiError(f"{what}: {reason}", status=status, retriable=status in RETRIABLE_STATUSES)
    return ApiError(f"{what}: {error}", status=None, retriable=True)


class Kube(Protocol):
    """Read and server-side-apply objects by apiVersion and kind."""

    def apply(self, manifest: Manifest) -> Manifest:
        """Server-side apply `manifest` as the operator's field manager; returns the live object."""
        ...

    def get(
        self, api_version: str, kind: str, name: str, namespace: str | None = None
    ) -> Manifest | None:
        """The object, or None when it does not exist."""
        ...

    def list(
        self,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        label_selector: str | None = None,
    ) -> list[Manifest]:
        """Objects of a kind, optionally in one namespace and matching a label selector."""
        ...

    def patch_status(
        self, api_version: str, kind: str, name: str, namespace: str | None, status: Manifest
    ) -> None:
        """Merge `status` into the object's status subresource."""
        ...


def client_without_read_retries(configuration: k8s_client.Configuration) -> k8s_client.ApiClient:
    """An ApiClient that retries failed connections but never a timed-out read (urllib3 would
    repeat an idempotent call three times, quadrupling how long a hung server holds it): kopf
    or the next resync pass tries again instead."""
    configuration.retries = Retry(total=2, read=0, redirect=0, status=0)
    return k8s_client.ApiClient(configuration)


class TimedDynamicClient(DynamicClient):
    """A DynamicClient whose every request, its own discovery ones too, has a timeout."""

    def __init__(self, client: k8s_client.ApiClient, timeout: float | tuple[float, float]) -> None:
        self._timeout = timeout  # before super().__init__: discovery requests start there
        super().__init__(client)

    def request(self, method: str, path: str, body: Any = None, **params: Any) -> Any:
        params.setdefault("_request_timeout", self._timeout)
        return super().request(method, path, body, **params)


class ApiKube:
    """Kube over the real API server (in-cluster config, or the kubeconfig)."""

    def __init__(
        self,
        api_client: k8s_client.ApiClient | None = None,
        timeout: float | tuple[float, float] = REQUEST_TIMEOUT_S,
    ) -> None:
        if api_client is None:
            try:
                k8s_config.load_incluster_config()
            except k8s_config.ConfigException:
                k8s_config.load_kube_config()
            api_client = client_without_read_retries(k8s_client.Configuration.get_default_copy())
        self._api_client, self._timeout = api_client, timeout
        self._dynamic: DynamicClient | None = None
        self._lock = threading.Lock()

    def _client(self) -> DynamicClient:
        """The dynamic client, built on first use: its discovery calls the API server, which
        should not happen (and hang) in a constructor."""
        with self._lock:
            if self._dynamic is None:
                self._dynamic = TimedDynamicClient(self._api_client, self._timeout)
            return self._dynamic

    def _resource(self, api_version: str, kind: str) -> Any:
        return self._client().resources.get(api_version=api_version, kind=kind)

    def apply(self, manifest: Manifest) -> Manifest:
        meta = manifest["metadata"]
        try:
            result = self._resource(manifest["apiVersion"], manifest["kind"]).server_side_apply(
                body=manifest,
                name=meta["name"],
                namespace=meta.get("namespace"),
                field_manager=labels.OPERATOR_NAME,
                force_conflicts=True,
                _request_timeout=self._timeout,
            )
        except (DynamicApiError, HTTPError) as error:
            raise _api_error(f"apply {manifest['kind']} {meta['name']}", error) from error
        return dict(result.to_dict())

    def get(
        self, api_version: str, kind: str, name: str, namespace: str | None = None
    ) -> Manifest | None:
        try:
            found = self._resource(api_version, kind).get(
                name=name, namespace=namespace, _request_timeout=self._timeout
            )
        except NotFoundError:
            return None
        except (DynamicApiError, HTTPError) as error:
            raise _api_error(f"get {kind} {name}", error) from error
        return dict(found.to_dict())

    def list(
        self,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        label_selector: str | None = None,
    ) -> list[Manifest]:
        try:
            found = self._resource(api_version, kind).get(
                namespace=namespace, label_selector=label_selector, _request_timeout=self._timeout
            )
        except (DynamicApiError, HTTPError) as error:
            raise _api_error(f"list {kind}", error) from error
        return [dict(item) for item in found.to_dict().get("items", [])]

    def patch_status(
        self, api_version: str, kind: str, name: str, namespace: str | None, status: Manifest
    ) -> None:
        try:
            self._resource(api_version, kind).status.patch(
                body={"status": status},
                name=name,
                namespace=namespace,
                content_type="application/merge-patch+json",
                _request_timeout=self._timeout,
            )
        except (DynamicApiError, HTTPError) as error:
            raise _api_error(f"patch status of {kind} {name}", error) from error


def selector_string(
    match_labels: dict[str, str] | None, expressions: list[dict[str, Any]] | None
) -> str:
    """A label selector in the API's query syntax, from matchLabels and matchExpressions."""
    parts = [f"{k}={v}" for k, v in sorted((match_labels or {}).items())]
    for expression in expressions or []:
        key, operator, values = (
            expression["key"],
            expression["operator"],
            expression.get("values") or [],
        )
        if operator == "In":
            parts.append(f"{key} in ({','.join(values)})")
        elif operator == "NotIn":
            parts.append(f"{key} notin ({','.join(values)})")
        elif operator == "Exists":
            parts.append(key)
        elif operator == "DoesNotExist":
            parts.append(f"!{key}")
    return ",".join(parts)
