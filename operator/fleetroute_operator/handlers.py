"""kopf handlers: thin adapters from events (and the periodic resync) to the reconcile steps."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

import kopf

from fleetroute.crds import GROUP, VERSION
from fleetroute_operator import conditions, reconcile, replica_fold, router_stats
from fleetroute_operator.capacity import NodeFacts, node_facts, pod_requests, pool_capacity
from fleetroute_operator.kube import ApiError, Kube
from fleetroute_operator.resync import Refresh, Resync
from fleetroute_operator.settings import Settings
from fleetroute_operator.telemetry import OperatorTelemetry

log = logging.getLogger(__name__)
RETRY_DELAY_S = 5.0
GPUPOOLS = (GROUP, VERSION, "gpupools")
MODELPOOLS = (GROUP, VERSION, "modelpools")
POLICIES = (GROUP, VERSION, "routingpolicies")


class State:
    """What every handler shares, passed in kopf's memo (no module-level state)."""

    def __init__(self, kube: Kube, settings: Settings) -> None:
        self.kube = kube
        self.settings = settings
        # Set by the first handler kopf runs: kopf runs none before every index is filled.
        self.indexed = threading.Event()
        self.config_writer = reconcile.RouterConfigWriter(
            kube, settings.router_config_namespace, settings.router_config_name
        )
        self.router_stats = (
            router_stats.CachedStats(
                router_stats.grpc_fetcher(settings.router_address, access=settings.router_access),
                settings.status_interval,
            )
            if settings.router_address
            else None
        )
        self.learning = (
            replica_fold.ReplicaFolder(
                kube, settings.router_config_namespace, settings.learning_stale_after
            )
            if settings.learning_fold
            else None
        )

    def fold_learning(self) -> None:
        """Fold departed router replicas into the base and refresh the merged view (resync)."""
        if self.learning is None:
            return
        try:
            self.learning.sync()
        except ApiError as error:
            log.warning("router learning not folded this pass: %s", error)


def _state(memo: kopf.Memo) -> State:
    state = memo["state"]
    assert isinstance(state, State)  # noqa: S101
    return state


# Indexes: in-memory views kopf keeps current from its watches.


def index_nodes(name: str, body: kopf.Body, **_: Any) -> dict[str, NodeFacts]:
    return {name: node_facts(body)}


def _holds_extended_resources(body: kopf.Body, **_: Any) -> bool:
    return bool(body.get("spec", {}).get("nodeName")) and bool(pod_requests(body))


def index_gpu_pods(body: kopf.Body, **_: Any) -> dict[str, dict[str, int]]:
    return {body["spec"]["nodeName"]: pod_requests(body)}


def index_gpupools(name: str, body: kopf.Body, **_: Any) -> dict[str, dict[str, Any]]:
    return {name: dict(body)}


def index_modelpools(
    namespace: str, name: str, body: kopf.Body, **_: Any
) -> dict[tuple[str, str], dict[str, Any]]:
    return {(namespace, name): dict(body)}


def index_policies(
    namespace: str, name: str, body: kopf.Body, **_: Any
) -> dict[tuple[str, str], dict[str, Any]]:
    return {(namespace, name): dict(body)}


def _one(index: kopf.Index[Any, Any], key: Any) -> Any | None:
    """The single value an index holds for a key (kopf keeps a store per key)."""
    store = index.get(key)
    return next(iter(store), None) if store else None


def _flat(index: kopf.Index[Any, Any]) -> list[Any]:
    return [value for key in index for value in index[key]]


# GPUPool


def gpupool_status(
    body: kopf.Body,
    patch: kopf.Patch,
    index_nodes: kopf.Index[str, NodeFacts],
    index_gpu_pods: kopf.Index[str, dict[str, int]],
    **_: Any,
) -> None:
    """Refresh capacity, allocation and the Ready condition from the node and pod indexes."""
    try:
        status = reconcile.gpupool_status(body, _flat(index_nodes), index_gpu_pods)
    except reconcile.InvalidSpec as error:
        _patch_status(body, patch, reconcile.invalid_spec(body, str(error)))
        raise kopf.PermanentError(str(error)) from error
    _patch_status(body, patch, status)


# ModelPool


def modelpool_reconcile(
    body: kopf.Body,
    patch: kopf.Patch,
    memo: kopf.Memo,
    index_gpupools: kopf.Index[str, dict[str, Any]],
    index_nodes: kopf.Index[str, NodeFacts],
    index_gpu_pods: kopf.Index[str, dict[str, int]],
    logger: logging.Logger | kopf.Logger | None = None,
    **_: Any,
) -> None:
    """Apply the pool's workloads (idempotent, server-side apply) and refresh its status.

    A refused takeover (NameConflict) is also logged as a warning when kopf runs the handler
    on a change, which kopf posts as an event of the ModelPool; the periodic resync, which
    passes no logger, does not repeat it."""
    state = _state(memo)
    state.indexed.set()
    gpu_pool = None
    deploy = (body.get("spec") or {}).get("deploy")
    if deploy and (gpu_body := _one(index_gpupools, deploy.get("gpuPool"))):
        try:
            spec = reconcile.parse_spec(reconcile.GPUPoolSpec, gpu_body)
        except reconcile.InvalidSpec:
            spec = None
        if spec is not None:
            capacity = pool_capacity(spec, _flat(index_nodes), index_gpu_pods)
            gpu_pool = reconcile.GpuPoolView(deploy["gpuPool"], spec, capacity)
    try:
        status = reconcile.modelpool(state.kube, body, gpu_pool)
    except reconcile.InvalidSpec as error:
        _patch_status(body, patch, reconcile.invalid_spec(body, str(error)))
        raise kopf.PermanentError(f"invalid ModelPool: {error}") from error
    except ApiError as error:
        if error.retriable:
            raise kopf.TemporaryError(str(error), delay=RETRY_DELAY_S) from error
        status = reconcile.apply_failed(body, str(error))
    ready = conditions.find(status.get("conditions") or [], conditions.READY)
    if logger is not None and ready is not None and ready.get("reason") == "NameConflict":
        logger.warning(ready["message"])
    _patch_status(body, patch, status)


# RoutingPolicy


def policy_status(
    body: kopf.Body,
    patch: kopf.Patch,
    memo: kopf.Memo,
    index_modelpools: kopf.Index[tuple[str, str], dict[str, Any]],
    **_: Any,
) -> None:
    """Refresh which candidates exist and are Ready, and what the router learned of each."""
    pools = {key: pool for key in index_modelpools if (pool := _one(index_modelpools, key))}
    state = _state(memo)
    stats = state.router_stats
    meta = body["metadata"]
    key = f"{meta['namespace']}/{meta['name']}"
    learned = stats.get().get(key) if stats else None
    view = state.learning.view if state.learning is not None else None
    replicas = None
    if view is not None:  # the merged learning of every replica, rather than one router's
        objective = (body.get("spec") or {}).get("objective") or {}
        weights = {str(k): float(v) for k, v in objective.items()}
        learned = replica_fold.policy_learned(view, key, weights) or learned
        replicas = replica_fold.replicas_status(view)
    try:
        status = reconcile.routingpolicy_status(body, pools, learned, replicas)
    except reconcile.InvalidSpec as error:
        _patch_status(body, patch, reconcile.invalid_spec(body, str(error)))
        raise kopf.PermanentError(f"invalid RoutingPolicy: {error}") from error
    _patch_status(body, patch, status)


# Router config


def router_config(
    memo: kopf.Memo,
    logger: logging.Logger | kopf.Logger,
    index_modelpools: kopf.Index[tuple[str, str], dict[str, Any]],
    index_policies: kopf.Index[tuple[str, str], dict[str, Any]],
    index_gpupools: kopf.Index[str, dict[str, Any]],
    **_: Any,
) -> None:
    """Re-render the router ConfigMap after any change to pools or policies."""
    _state(memo).indexed.set()
    if _state(memo).config_writer.sync(
        _flat(index_modelpools), _flat(index_policies), _flat(index_gpupools)
    ):
        logger.info("router config written")


def _patch_status(body: kopf.Body, patch: kopf.Patch, status: dict[str, Any]) -> None:
    """Patch status only where it changed, so an idle fleet causes no writes."""
    current = body.get("status") or {}
    for key, value in status.items():
        if current.get(key) != value:
            patch.status[key] = value


def _callback(fn: Callable[..., None] | Callable[..., dict[Any, Any]]) -> Any:
    """A handler as kopf's callback protocols take it: ours declare only the kwargs they use
    (indexes included, which the protocols cannot name), so they are passed untyped."""
    return fn


def register(registry: kopf.OperatorRegistry, telemetry: OperatorTelemetry | None = None) -> None:
    """Register every handler on `registry` (no global registry); reconcile handlers are
    counted, timed and traced by `telemetry`."""
    on = kopf.on
    observed = telemetry or OperatorTelemetry()
    on.startup(registry=registry)(_callback(_configure))
    # In-cluster service account first, then the kubeconfig (a custom registry has no defaults).
    on.login(registry=registry)(kopf.login_via_client)
    kopf.index("nodes", id="index_nodes", registry=registry)(_callback(index_nodes))
    kopf.index("pods", id="index_gpu_pods", when=_holds_extended_resources, registry=registry)(
        index_gpu_pods
    )
    kopf.index(*GPUPOOLS, id="index_gpupools", registry=registry)(_callback(index_gpupools))
    kopf.index(*MODELPOOLS, id="index_modelpools", registry=registry)(_callback(index_modelpools))
    kopf.index(*POLICIES, id="index_policies", registry=registry)(_callback(index_policies))

    # Spec changes apply a ModelPool's workloads at once; everything else is refreshed by the
    # periodic resync (see resync.py: kopf timers would put finalizers on every object).
    for event in (on.create, on.update, on.resume):
        event(*MODELPOOLS, id="modelpool_reconcile", registry=registry)(
            _callback(observed.reconciler("ModelPool", modelpool_reconcile))
        )
    config = observed.reconciler("RouterConfig", router_config)
    for resource in (GPUPOOLS, MODELPOOLS, POLICIES):
        on.event(*resource, id="router_config", registry=registry)(_callback(config))


def resync(
    state: State,
    memo: kopf.Memo,
    indices: Mapping[str, kopf.Index[Any, Any]],
    telemetry: OperatorTelemetry | None = None,
) -> Resync:
    """The periodic refresh of GPUPool, ModelPool and RoutingPolicy status, and of the router
    config (so a ConfigMap deleted by hand comes back)."""
    observed = telemetry or OperatorTelemetry()
    refreshes: tuple[Refresh, ...] = (
        Refresh("GPUPool", "index_gpupools", observed.reconciler("GPUPool", gpupool_status)),
        Refresh(
            "ModelPool",
            "index_modelpools",
            observed.reconciler("ModelPool", modelpool_reconcile),
        ),
        Refresh(
            "RoutingPolicy",
            "index_policies",
            observed.reconciler("RoutingPolicy", policy_status),
        ),
    )
    if not state.settings.gpupool_status:
        # A namespace-scoped operator sees only its namespaces' pods, so its GPU allocation
        # figures are partial: it leaves GPUPool status (cluster-scoped) to a cluster-wide one.
        refreshes = tuple(r for r in refreshes if r.kind != "GPUPool")
    return Resync(
        state.kube,
        memo,
        indices,
        refreshes,
        observed.reconciler("RouterConfig", router_config),
        before=state.fold_learning,
    )


def _configure(settings: kopf.OperatorSettings, memo: kopf.Memo | None = None, **_: Any) -> None:
    """Keep kopf's bookkeeping in our own annotations, and post events only for problems.

    Namespace-scoped, kopf serves exactly the given namespaces and the CRDs present at start
    (no scanning), so that it needs no cluster-wide list or watch of namespaces and CRDs.
    """
    if memo is not None and _state(memo).settings.namespaces:
        settings.scanning.disabled = True
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration"
    )
    settings.posting.level = logging.WARNING
    # kopf (1.45) posts no log message as an event unless told to: warnings and errors of
    # the handlers, kopf's own included, become events of their objects.
    settings.posting.loggers = True
    settings.watching.server_timeout = 270
    settings.execution.max_workers = 8
    _set_api_timeouts(settings)


# kopf's own API calls: kopf waits 5 minutes for a short request and forever for a watch by
# default, so a hung API server would freeze every watch and the patches of handler results.
REQUEST_TIMEOUT_S = 30.0
CONNECT_TIMEOUT_S = 10.0


def _set_api_timeouts(settings: kopf.OperatorSettings) -> None:
    """Bound kopf's requests and watches (the watch's client timeout a little past the server's,
    which ends a healthy watch first)."""
    settings.networking.request_timeout = REQUEST_TIMEOUT_S
    settings.networking.connect_timeout = CONNECT_TIMEOUT_S
    settings.watching.connect_timeout = CONNECT_TIMEOUT_S
    settings.watching.client_timeout = (settings.watching.server_timeout or 270) + 30
