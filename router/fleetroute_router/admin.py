"""The admin listener: /metrics, /stats and /health on their own port, apart from the public
API (metrics and stats name endpoint addresses and what was learned)."""

from __future__ import annotations

import dataclasses
import ssl
from typing import Any

from aiohttp import web

from fleetroute_router.dataplane import DataPlane
from fleetroute_router.telemetry.exposition import render

DEFAULT_ADDRESS = "127.0.0.1:9091"


def stats(dataplane: DataPlane, policy: str = "") -> dict[str, Any]:
    """What GetStats says, as JSON: config revision, per policy its algorithm and arms, and
    the gRPC Routes awaiting their Report."""
    return {
        "config_revision": dataplane.fleet.config.revision,
        "unreported_routes": dataplane.unreported,
        "policies": {
            name: {
                "algorithm": summary.algorithm,
                "quality_observations": summary.quality_observations,
                "quality_weight": summary.quality_weight,
                "arms": [dataclasses.asdict(arm) for arm in summary.arms],
            }
            for name, summary in dataplane.core.stats(policy).items()
        },
    }


class AdminServer:
    """An aiohttp server answering /metrics, /stats and /health, bound to one address."""

    def __init__(
        self,
        dataplane: DataPlane,
        address: str = DEFAULT_ADDRESS,
        *,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.dataplane = dataplane
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"admin address must be host:port, got {address!r}")
        self.host, self.port = host.strip("[]"), int(port)
        self._ssl = ssl_context
        self._runner: web.AppRunner | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/stats", self._stats)
        app.router.add_get("/health", self._health)
        return app

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port, ssl_context=self._ssl).start()
        if self.port == 0:
            self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _metrics(self, request: web.Request) -> web.Response:
        return metrics_response(self.dataplane, request)

    async def _stats(self, request: web.Request) -> web.Response:
        policy = request.query.get("policy", "")
        if policy and policy not in self.dataplane.core.selectors():
            raise web.HTTPNotFound(text=f"no policy {policy!r}\n")
        return web.json_response(stats(self.dataplane, policy))

    async def _health(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")


def metrics_response(dataplane: DataPlane, request: web.Request) -> web.Response:
    """The registry's exposition for a scrape (OpenMetrics when the Accept header asks)."""
    body, content_type = render(dataplane.telemetry.registry, request.headers.get("Accept"))
    return web.Response(body=body, headers={"Content-Type": content_type})
