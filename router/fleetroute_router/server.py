"""The router's gRPC server: Router service, health, reflection, and a graceful drain."""

from __future__ import annotations

import logging

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from fleetroute.v1alpha1 import router_pb2, router_pb2_grpc
from fleetroute_router.control_auth import ControlAuth, ControlGuard
from fleetroute_router.dataplane import DataPlane
from fleetroute_router.grpc_api import RouterService
from fleetroute_router.grpc_errors import DomainErrors
from fleetroute_router.telemetry import instrumentation, tracing
from fleetroute_router.tls import ReloadingTls

log = logging.getLogger(__name__)
SERVICE_NAME = router_pb2.DESCRIPTOR.services_by_name["Router"].full_name
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
OPTIONS = [
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
]
# Calls handled at once; beyond it gRPC answers RESOURCE_EXHAUSTED instead of queueing unbounded.
MAX_CONCURRENT_RPCS = 4096


class RouterServer:
    """A grpc.aio server bound to one address; drain() stops it gracefully."""

    def __init__(
        self,
        dataplane: DataPlane,
        address: str,
        *,
        guard: ControlGuard | None = None,
        tls: ReloadingTls | None = None,
        max_concurrent_rpcs: int = MAX_CONCURRENT_RPCS,
        reuse_port: bool = False,
    ) -> None:
        """`guard`: who may call the control rpcs (default: anyone); `tls`: serve TLS (mutual
        when it has a client CA) instead of plaintext; `max_concurrent_rpcs`: calls at once,
        RESOURCE_EXHAUSTED beyond; `reuse_port`: share the port with sibling workers (serve
        --workers)."""
        self.address = address
        self.health = health.aio.HealthServicer()  # type: ignore[attr-defined]
        traced = instrumentation.grpc_server_interceptors(tracing.active())
        guard = guard or ControlGuard()
        control = ControlAuth(guard, on_refused=dataplane.telemetry.refused)
        self._server = grpc.aio.server(
            interceptors=[*traced, control, DomainErrors()],
            options=[*OPTIONS, ("grpc.so_reuseport", int(reuse_port))],
            maximum_concurrent_rpcs=max_concurrent_rpcs,
        )
        router_pb2_grpc.add_RouterServicer_to_server(
            RouterService(dataplane, control_checked=guard.enabled), self._server
        )
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self._server)
        reflection.enable_server_reflection(
            (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), self._server
        )
        self.port = (
            self._server.add_secure_port(address, tls.grpc_credentials())
            if tls is not None
            else self._server.add_insecure_port(address)
        )
        if self.port == 0:
            raise OSError(f"cannot bind the gRPC server to {address}")

    async def start(self) -> None:
        await self._server.start()
        for service in ("", SERVICE_NAME):
            await self.health.set(service, health_pb2.HealthCheckResponse.SERVING)
        log.info(
            "router gRPC API listening on %s", self.address.rsplit(":", 1)[0] + f":{self.port}"
        )

    async def drain(self, grace_s: float = 10.0) -> None:
        """Report NOT_SERVING so balancers move away, let calls in flight finish, then stop."""
        await self.health.enter_graceful_shutdown()
        await self._server.stop(grace_s)

    async def wait(self) -> None:
        await self._server.wait_for_termination()
