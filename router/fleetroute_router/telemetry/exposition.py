"""Serve a registry on /metrics: Prometheus text, or OpenMetrics (with exemplars) when asked."""

from __future__ import annotations

import logging
import threading
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.exposition import choose_encoder

log = logging.getLogger(__name__)


def render(registry: CollectorRegistry, accept: str | None) -> tuple[bytes, str]:
    """The exposition body and its Content-Type for a scrape's Accept header; exemplars appear
    only in OpenMetrics, which Prometheus asks for first."""
    encoder, content_type = choose_encoder(accept or "")
    return encoder(registry), content_type


class MetricsServer:
    """A small HTTP server in its own thread answering /metrics (for processes without an
    HTTP listener of their own, e.g. `fleetroute serve --metrics 127.0.0.1:9090`)."""

    def __init__(self, registry: CollectorRegistry, address: str) -> None:
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"metrics address must be host:port, got {address!r}")
        self.registry, self.host, self.port = registry, host.strip("[]"), int(port)
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._server, self._thread = start_http_server(
            self.port, addr=self.host, registry=self.registry
        )
        self.port = self._server.server_port
        log.info("metrics on http://%s:%d/metrics", self.host, self.port)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
