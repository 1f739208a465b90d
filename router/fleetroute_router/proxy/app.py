"""The proxy's HTTP routes: /v1/chat/completions, /v1/completions, /v1/models, /v1/feedback,
/health (and /metrics only when asked: the admin listener serves it)."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from aiohttp import web

from fleetroute_router import admin, errors, objectives, openai_api
from fleetroute_router.dataplane import DataPlane
from fleetroute_router.features import RequestInfo
from fleetroute_router.proxy import http_errors
from fleetroute_router.proxy.admission import Admission
from fleetroute_router.proxy.upstream import Timeouts, Upstream
from fleetroute_router.telemetry import instrumentation
from fleetroute_router.tls import ReloadingTls

log = logging.getLogger(__name__)
FEEDBACK_PATH = "/v1/feedback"
FEEDBACK_FIELDS = frozenset(("decision_id", "request_id", "score", "label", "source", "metadata"))


@dataclass(frozen=True)
class Limits:
    max_body_bytes: int = 8 * 1024 * 1024
    max_header_bytes: int = 16 * 1024
    max_line_bytes: int = 8 * 1024
    max_in_flight: int = 2048
    max_queue: int = 2048


class ProxyServer:
    """The HTTP transport over a DataPlane, bound to one address."""

    def __init__(
        self,
        dataplane: DataPlane,
        address: str = "127.0.0.1:8080",
        *,
        limits: Limits | None = None,
        timeouts: Timeouts | None = None,
        drain_s: float = 10.0,
        metrics: bool = False,
        tls: ReloadingTls | None = None,
        reuse_port: bool = False,
    ) -> None:
        """`drain_s`: on stop, how long requests in flight may take to finish; `metrics`: serve
        /metrics here too (it names endpoints: by default only the admin listener has it);
        `reuse_port`: share the port with sibling workers (serve --workers)."""
        self.reuse_port = reuse_port
        self.dataplane = dataplane
        self.metrics = metrics
        self.tls = tls
        self.drain_s = drain_s
        self.host, _, port = address.rpartition(":")
        self.port = int(port)
        self.limits = limits or Limits()
        self.upstream = Upstream(dataplane, timeouts)
        self._admission: Admission | None = None
        self._runner: web.AppRunner | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def app(self) -> web.Application:
        api = (openai_api.CHAT_PATH, openai_api.COMPLETIONS_PATH)
        traced = instrumentation.aiohttp_middlewares(self.dataplane.telemetry.tracing, api)
        app = web.Application(
            client_max_size=self.limits.max_body_bytes,
            middlewares=[*traced, http_errors.openai_errors],
        )
        app.router.add_post(openai_api.CHAT_PATH, self._completions)
        app.router.add_post(openai_api.COMPLETIONS_PATH, self._completions)
        app.router.add_get(openai_api.MODELS_PATH, self._models)
        app.router.add_post(FEEDBACK_PATH, self._feedback)
        if self.metrics:
            app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/health", self._health)
        return app

    async def start(self) -> None:
        self._admission = Admission(self.limits.max_in_flight, self.limits.max_queue)
        self._runner = web.AppRunner(
            self.app(),
            handler_cancellation=True,  # a client that disconnects cancels its upstream request
            access_log=None,
            shutdown_timeout=self.drain_s,  # stop() lets requests in flight finish this long
            max_line_size=self.limits.max_line_bytes,
            max_field_size=self.limits.max_header_bytes,
        )
        await self._runner.setup()
        context = self.tls.context if self.tls is not None else None
        site = web.TCPSite(
            self._runner, self.host, self.port, ssl_context=context,
            reuse_port=self.reuse_port or None,
        )  # fmt: skip
        await site.start()
        if self.port == 0:
            self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await self.upstream.close()

    async def _health(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def _metrics(self, request: web.Request) -> web.Response:
        return admin.metrics_response(self.dataplane, request)

    async def _models(self, request: web.Request) -> web.Response:
        fleet = self.dataplane.fleet
        data = [
            {
                "id": name,
                "object": "model",
                "created": 0,
                "owned_by": "fleetroute-policy" if name in fleet.policies else "fleetroute",
            }
            for name in fleet.models()
        ]
        return web.json_response({"object": "list", "data": data})

    async def _feedback(self, request: web.Request) -> web.Response:
        """POST /v1/feedback: a quality score for a decision (see feedback.py)."""
        with self.dataplane.telemetry.request(
            request.method, request.path, request.headers, operation="feedback"
        ):
            try:
                body = openai_api.load_body(await request.read())
            except ValueError as error:
                raise errors.InvalidFeedback(f"body is not valid JSON: {error}") from None
            if not isinstance(body, dict):
                raise errors.InvalidFeedback("body must be a JSON object")
            unknown = sorted(set(body) - FEEDBACK_FIELDS)
            if unknown:
                raise errors.InvalidFeedback(
                    f"unknown field {unknown[0]!r}; known: {', '.join(sorted(FEEDBACK_FIELDS))}"
                )
            reply = self.dataplane.receive_feedback(request.headers.get("Authorization"), **body)
        return web.json_response(
            {
                "status": reply.result,
                "decision_id": reply.decision.id,
                "policy": reply.decision.policy,
                "pool": reply.decision.pool,
                "quality": reply.quality,
            }
        )

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        assert self._admission is not None  # noqa: S101 (start() sets it)
        with self.dataplane.telemetry.request(request.method, request.path, request.headers):
            async with self._admission:
                return await self._route(request)

    async def _route(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body = openai_api.load_body(raw)
        except ValueError as error:
            raise errors.InvalidRequest(f"body is not valid JSON: {error}") from None
        if not isinstance(body, dict):
            raise errors.InvalidRequest("body must be a JSON object")
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise errors.InvalidRequest("model is required (a policy alias or a served model)")
        chat = request.path == openai_api.CHAT_PATH
        if chat and not isinstance(body.get("messages"), list):
            raise errors.InvalidRequest("messages must be a list")
        if not chat and "prompt" not in body:
            raise errors.InvalidRequest("prompt is required")
        priority = body.get("priority")
        info = RequestInfo(
            model=model,
            prompt=openai_api.prompt_text(body),
            max_tokens=openai_api.max_tokens(body),
            stream=bool(body.get("stream")),
            priority=priority if isinstance(priority, int) else 0,
        )
        self.dataplane.telemetry.requested(
            model=model,
            operation="chat" if chat else "text_completion",
            max_tokens=info.max_tokens,
            stream=info.stream,
            prompt=info.prompt,
        )
        request_id = request.headers.get("x-request-id", "")  # none: the core makes one
        override = request.headers.get(objectives.OBJECTIVE_HEADER)
        flight = self.dataplane.route(
            info,
            request_id,
            request.path,
            objectives.parse(override) if override is not None else None,
        )
        headers = {"x-request-id": flight.decision.request_id}
        try:
            return await self.upstream.serve(request, flight, raw, body, headers)
        except asyncio.CancelledError:
            self.dataplane.abandoned(flight)
            raise
