"""A simulated server for every endpoint of a RouterConfig, all in the current event loop."""

from __future__ import annotations

from collections.abc import Mapping

from fleetroute.v1alpha1 import config_pb2
from fleetroute_router.sim.model import ServerModel
from fleetroute_router.sim.server import SimServer

ROLES = {config_pb2.ROLE_PREFILL: "prefill", config_pb2.ROLE_DECODE: "decode"}
ENGINES = {config_pb2.ENGINE_SGLANG: "sglang"}


class SimFleet:
    """Starts and stops one SimServer per endpoint address of the config's pools."""

    def __init__(
        self, config: config_pb2.RouterConfig, *, speed: float = 1.0, free_ports: bool = False
    ) -> None:
        """`free_ports`: bind each server to a port the OS picks instead of the config's (so a
        second fleet can run beside one already on those ports); `remap` then gives the config
        with the addresses actually served."""
        self.servers: dict[str, SimServer] = {}
        for pool in config.pools:
            timing = ServerModel.of(
                pool.model,
                pool.gpu.product,
                gpus=pool.gpus_per_replica,
                idle_watts=pool.gpu.idle_watts,
                max_watts=pool.gpu.max_watts,
                speed=speed,
            )
            for endpoint in pool.endpoints:
                host, _, port = endpoint.address.rpartition(":")
                self.servers[endpoint.address] = SimServer(
                    pool.model,
                    timing,
                    host=host,
                    port=0 if free_ports else int(port),
                    role=ROLES.get(pool.role, "unified"),
                    engine=ENGINES.get(pool.engine, "vllm"),
                )

    async def start(self) -> None:
        try:
            for server in self.servers.values():
                await server.start()
        except OSError:
            await self.stop()
            raise

    @property
    def addresses(self) -> Mapping[str, str]:
        """The address each config endpoint is served at (itself unless ports were free)."""
        return {configured: server.address for configured, server in self.servers.items()}

    def remap(self, config: config_pb2.RouterConfig) -> config_pb2.RouterConfig:
        """A copy of a config whose endpoints point at the addresses these servers listen on."""
        served = self.addresses
        remapped = config_pb2.RouterConfig()
        remapped.CopyFrom(config)
        for pool in remapped.pools:
            for endpoint in pool.endpoints:
                endpoint.address = served.get(endpoint.address, endpoint.address)
        return remapped

    async def stop(self) -> None:
        for server in self.servers.values():
            await server.stop()
