"""The gRPC server of the ext_proc service, with health checking."""

from __future__ import annotations

import logging

import grpc
from envoy.service.ext_proc.v3 import external_processor_pb2_grpc as ext_grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from fleetroute_router.dataplane import DataPlane
from fleetroute_router.extproc.service import ExternalProcessor
from fleetroute_router.tls import ReloadingTls

log = logging.getLogger(__name__)
SERVICE_NAME = "envoy.service.ext_proc.v3.ExternalProcessor"
DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024
# Room for the ProcessingRequest around a body chunk (headers, metadata, framing).
MESSAGE_OVERHEAD_BYTES = 1024 * 1024
# Streams served at once (one per HTTP request through Envoy); beyond it gRPC answers
# RESOURCE_EXHAUSTED at once instead of queueing without bound.
MAX_CONCURRENT_STREAMS = 4096


class ExtProcServer:
    """A grpc.aio server for Envoy's ext_proc filter, bound to one address."""

    def __init__(
        self,
        dataplane: DataPlane,
        address: str = "127.0.0.1:9002",
        *,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        tls: ReloadingTls | None = None,
        max_in_flight: int = 2048,
        max_streams: int = MAX_CONCURRENT_STREAMS,
        reuse_port: bool = False,
    ) -> None:
        """`tls`: serve TLS (mutual when it has a client CA, as Envoy's cluster sets it up);
        `max_in_flight`: routed requests whose response has not ended (429 beyond);
        `max_streams`: streams at once, routed or not (RESOURCE_EXHAUSTED beyond);
        `reuse_port`: share the port with sibling workers (serve --workers)."""
        self.address = address
        self.health = health.aio.HealthServicer()  # type: ignore[attr-defined]
        # A buffered body arrives as one message: gRPC's 4 MiB default would refuse it before
        # the processor's own body limit (413) could answer.
        receive_limit = max_body_bytes + MESSAGE_OVERHEAD_BYTES
        self._server = grpc.aio.server(
            maximum_concurrent_rpcs=max_streams,
            options=[
                ("grpc.so_reuseport", int(reuse_port)),
                ("grpc.max_receive_message_length", receive_limit),
            ],
        )
        self.processor = ExternalProcessor(dataplane, max_body_bytes, max_in_flight)
        ext_grpc.add_ExternalProcessorServicer_to_server(self.processor, self._server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self._server)
        self.port = (
            self._server.add_secure_port(address, tls.grpc_credentials())
            if tls is not None
            else self._server.add_insecure_port(address)
        )
        if self.port == 0:
            raise OSError(f"cannot bind the ext_proc server to {address}")

    async def start(self) -> None:
        await self._server.start()
        for service in ("", SERVICE_NAME):
            await self.health.set(service, health_pb2.HealthCheckResponse.SERVING)

    async def stop(self, grace_s: float = 5.0) -> None:
        await self.health.enter_graceful_shutdown()
        await self._server.stop(grace_s)
