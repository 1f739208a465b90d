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
