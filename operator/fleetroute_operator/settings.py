"""Settings of one operator process, from flags or the environment."""

from __future__ import annotations

from dataclasses import dataclass, field

from fleetroute_operator.router_stats import RouterAccess


@dataclass(frozen=True)
class Settings:
    """Where the operator writes the router config, and how often it refreshes status."""

    router_config_namespace: str = "fleetroute-system"
    router_config_name: str = "fleetroute-router-config"
    status_interval: float = 5.0
    namespaces: tuple[str, ...] = ()
    # host:port of the router's gRPC API, to show what it learned in RoutingPolicy status.
    router_address: str | None = None
    # Token and TLS files for the router's control rpcs (GetStats).
    router_access: RouterAccess = field(default_factory=RouterAccess)
    # Write GPUPool status. A namespace-scoped operator sees only its namespaces' pods, so its GPU
    # allocation is partial: the chart turns this off for it and leaves GPUPools to another one.
    gpupool_status: bool = True
    # Fold the learning of router replicas whose Pods are gone into the base ConfigMap (in
    # router_config_namespace), and show the replicas' merged view in RoutingPolicy status.
    learning_fold: bool = True
    # A replica that has not published for this long is flagged stale in RoutingPolicy status.
    learning_stale_after: float = 60.0
