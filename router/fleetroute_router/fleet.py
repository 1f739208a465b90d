"""An immutable, indexed view of one RouterConfig: pools by name, policies by alias."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from fleetroute.v1alpha1 import config_pb2


@dataclass(frozen=True)
class Fleet:
    """Pools and policies of a config, with the lookups routing needs."""

    config: config_pb2.RouterConfig
    pools: Mapping[str, config_pb2.Pool]
    # Policies by model alias (what clients send) and by name (what decisions record).
    policies: Mapping[str, config_pb2.Policy]
    policies_by_name: Mapping[str, config_pb2.Policy]
    pools_by_model: Mapping[str, tuple[config_pb2.Pool, ...]]
    # Endpoints whose pool says https.
    secure: frozenset[str] = frozenset()

    @classmethod
    def from_config(cls, config: config_pb2.RouterConfig) -> Fleet:
        pools = {p.name: p for p in config.pools}
        by_model: dict[str, list[config_pb2.Pool]] = {}
        for pool in config.pools:
            if pool.role != config_pb2.ROLE_PREFILL:
                by_model.setdefault(pool.model, []).append(pool)
        return cls(
            config=config,
            pools=MappingProxyType(pools),
            policies=MappingProxyType({p.model_alias: p for p in config.policies}),
            policies_by_name=MappingProxyType({p.name: p for p in config.policies}),
            pools_by_model=MappingProxyType({m: tuple(ps) for m, ps in by_model.items()}),
            secure=frozenset(
                e.address for p in config.pools if p.scheme == "https" for e in p.endpoints
            ),
        )

    def url(self, address: str, path: str = "") -> str:
        """The URL of `path` on an endpoint: https when its pool says so, else http."""
        return f"{'https' if address in self.secure else 'http'}://{address}{path}"

    def prefill_peer(self, pool: config_pb2.Pool) -> config_pb2.Pool | None:
        """The prefill pool paired with a decode pool, if any."""
        if pool.role != config_pb2.ROLE_DECODE or not pool.peer_pool:
            return None
        return self.pools.get(pool.peer_pool)

    def models(self) -> list[str]:
        """Every name a client may send as `model`: policy aliases, then served models."""
        return sorted(self.policies) + sorted(
            m for m in self.pools_by_model if m not in self.policies
        )
