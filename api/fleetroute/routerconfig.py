"""Read, write and check a RouterConfig: the file the operator renders and the router serves."""

from __future__ import annotations

import hashlib
from pathlib import Path

import yaml
from google.protobuf import json_format

from fleetroute.v1alpha1 import config_pb2

RouterConfig = config_pb2.RouterConfig

KNOWN_ALGORITHMS = frozenset(
    {"linucb", "thompson", "epsilon-greedy", "random", "round-robin", "static", "least-loaded"}
)


class ConfigError(ValueError):
    """A RouterConfig that cannot be served; the message lists every problem found."""


def loads(data: bytes | str) -> RouterConfig:
    """Parse a RouterConfig from JSON or YAML (protobuf JSON mapping) and check it."""
    text = data.decode() if isinstance(data, bytes) else data
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(f"not JSON or YAML: {error}") from error
    if not isinstance(document, dict):
        raise ConfigError("a RouterConfig must be a mapping with pools and policies")
    config = RouterConfig()
    try:
        json_format.ParseDict(document, config)
    except json_format.ParseError as error:
        raise ConfigError(str(error)) from error
    check(config)
    return config


def load(path: Path) -> RouterConfig:
    """Read and check the RouterConfig at path."""
    try:
        return loads(path.read_bytes())
    except OSError as error:
        raise ConfigError(f"cannot read {path}: {error.strerror}") from error


def dumps(config: RouterConfig) -> str:
    """Stable JSON of a config (what the operator writes into the ConfigMap)."""
    return json_format.MessageToJson(config, indent=2, sort_keys=True) + "\n"


def revision(config: RouterConfig) -> str:
    """Content hash of a config, ignoring its own revision field."""
    unstamped = RouterConfig()
    unstamped.CopyFrom(config)
    unstamped.ClearField("revision")
    return hashlib.sha256(unstamped.SerializeToString(deterministic=True)).hexdigest()[:16]


def problems(config: RouterConfig) -> list[str]:
    """Every reason the config cannot be served, empty when it is fine."""
    found: list[str] = []
    pools = {}
    for pool in config.pools:
        if not pool.name:
            found.append("a pool has no name")
        elif pool.name in pools:
            found.append(f"pool {pool.name!r} is defined twice")
        if not pool.model:
            found.append(f"pool {pool.name!r} has no model")
        if pool.scheme not in ("", "http", "https"):
            found.append(f"pool {pool.name!r}: scheme must be http or https, not {pool.scheme!r}")
        for endpoint in pool.endpoints:
            host, _, port = endpoint.address.rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                found.append(f"pool {pool.name!r}: endpoint {endpoint.address!r} is not host:port")
        pools[pool.name] = pool
    for pool in config.pools:
        if pool.role in (config_pb2.ROLE_PREFILL, config_pb2.ROLE_DECODE):
            peer = pools.get(pool.peer_pool)
            if peer is None:
                found.append(f"pool {pool.name!r} names unknown peer pool {pool.peer_pool!r}")
            elif {peer.role, pool.role} != {config_pb2.ROLE_PREFILL, config_pb2.ROLE_DECODE}:
                found.append(
                    f"pools {pool.name!r} and {peer.name!r} must be one prefill, one decode"
                )
    aliases: set[str] = set()
    for policy in config.policies:
        label = policy.name or policy.model_alias
        if not policy.model_alias:
            found.append(f"policy {label!r} has no model alias")
        elif policy.model_alias in aliases:
            found.append(f"model alias {policy.model_alias!r} is used by two policies")
        aliases.add(policy.model_alias)
        if not policy.candidates:
            found.append(f"policy {label!r} has no candidates")
        for name in policy.candidates:
            candidate = pools.get(name)
            if candidate is None:
                found.append(f"policy {label!r} names unknown pool {name!r}")
            elif candidate.role == config_pb2.ROLE_PREFILL:
                found.append(f"policy {label!r}: name the decode pool of a P/D pair, not {name!r}")
        weights = policy.objective
        if min(weights.quality, weights.latency, weights.energy, weights.cost) < 0:
            found.append(f"policy {label!r}: objective weights must not be negative")
        if weights.quality + weights.latency + weights.energy + weights.cost <= 0:
            found.append(f"policy {label!r}: objective weights must not all be zero")
        if policy.algorithm.name and policy.algorithm.name not in KNOWN_ALGORITHMS:
            found.append(f"policy {label!r}: unknown algorithm {policy.algorithm.name!r}")
    return found


def check(config: RouterConfig) -> None:
    """Raise ConfigError listing every problem of the config."""
    found = problems(config)
    if found:
        raise ConfigError("; ".join(found))
