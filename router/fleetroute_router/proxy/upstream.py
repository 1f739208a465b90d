"""Send one request upstream with retries before the first byte, P/D exchange and streaming."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web

from fleetroute_router import errors
from fleetroute_router.dataplane import DataPlane, Flight
from fleetroute_router.openai_api import StreamUsage, Usage, usage_of
from fleetroute_router.proxy import pd
from fleetroute_router.telemetry import instrumentation

log = logging.getLogger(__name__)
RETRYABLE = (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, TimeoutError)
FORWARDED = ("authorization", "x-request-id", "traceparent", "tracestate")
# Stream events seen before a first time-per-output-token sample is reported.
EARLY_TPOT_EVENTS = 4


@dataclass(frozen=True)
class Timeouts:
    connect_s: float = 2.0
    # Until the first byte of the answer (the whole answer when not streaming).
    first_byte_s: float = 120.0
    # Between two reads of a stream.
    idle_s: float = 120.0
    max_attempts: int = 3


class AttemptFailed(Exception):
    """The endpoint failed before the first byte reached the client: try another."""


class Upstream:
    """Owns the client session to model servers."""

    def __init__(self, dataplane: DataPlane, timeouts: Timeouts | None = None) -> None:
        self.dataplane, self.timeouts = dataplane, timeouts or Timeouts()
        self._session: aiohttp.ClientSession | None = None
        # Between two reads of an answer (the first byte has its own overall bound).
        self._request_timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=self.timeouts.connect_s, sock_read=self.timeouts.idle_s
        )

    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=0, ttl_dns_cache=None, ssl=self.dataplane.upstream_ssl
                ),
                timeout=aiohttp.ClientTimeout(
                    total=None, sock_connect=self.timeouts.connect_s, sock_read=None
                ),
                auto_decompress=False,
                skip_auto_headers=("User-Agent",),
                trace_configs=instrumentation.aiohttp_trace_configs(
                    self.dataplane.telemetry.tracing
                ),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def serve(
        self,
        request: web.Request,
        flight: Flight,
        raw: bytes,
        body: Mapping[str, Any],
        headers: Mapping[str, str],
    ) -> web.StreamResponse:
        """Answer the client; retries on other endpoints until one answers its first byte."""
        forwarded = {k: v for k in FORWARDED if (v := request.headers.get(k)) is not None}
        forwarded["Content-Type"] = "application/json"
        forwarded["x-request-id"] = flight.decision.request_id
        for attempt in range(1, self.timeouts.max_attempts + 1):
            decision = flight.decision
            try:
                payload = await self._payload(flight, raw, body, forwarded)
                d = flight.decision
                with self.dataplane.telemetry.upstream(
                    "decode", d.endpoint, d.model, d.pool
                ) as traced:  # our span's traceparent replaces the caller's
                    sent = {**forwarded, **traced}
                    return await self._attempt(request, flight, payload, sent, headers, attempt)
            except AttemptFailed as failure:
                log.info("endpoint %s failed (%s), retrying", decision.endpoint, failure)
                self.dataplane.failed_attempt(flight, decision.endpoint)
                if attempt == self.timeouts.max_attempts or not self.dataplane.retry(flight):
                    break
        self.dataplane.failed(flight)
        raise errors.UpstreamFailed(
            f"no endpoint answered {body.get('model')!r} (tried {', '.join(flight.tried)})"
        )

    async def _payload(
        self, flight: Flight, raw: bytes, body: Mapping[str, Any], headers: Mapping[str, str]
    ) -> bytes:
        decision = flight.decision
        if decision.prefill_endpoint:
            params = await self._remote_prefill(flight, body, headers)
            if params is not None:
                return pd.decode_body(body, decision.model, params)
        if body.get("model") == decision.model:
            return raw
        return json.dumps({**body, "model": decision.model}).encode()

    async def _remote_prefill(
        self, flight: Flight, body: Mapping[str, Any], headers: Mapping[str, str]
    ) -> dict[str, Any] | None:
        """Run the prefill step; None (decode prefills locally) when the prefiller fails."""
        decision = flight.decision
        url = self.dataplane.fleet.url(decision.prefill_endpoint, flight.path)
        started = time.monotonic()
        telemetry = self.dataplane.telemetry
        load = self.dataplane.load
        # Seen by the prefill pool's queue scorer.
        load.start(decision.prefill_endpoint, decision.prefill_pool)
        try:
            with telemetry.upstream(
                "prefill", decision.prefill_endpoint, decision.model, decision.prefill_pool
            ) as traced:
                async with self.session().post(
                    url,
                    json=pd.prefill_body(body, decision.model),
                    headers={"x-request-id": decision.request_id, **traced},
                    timeout=aiohttp.ClientTimeout(
                        sock_connect=self.timeouts.connect_s, sock_read=self.timeouts.first_byte_s
                    ),
                ) as response:
                    answer = await response.read()
                    status = response.status
        except RETRYABLE as error:
            log.warning("prefill on %s failed: %r", decision.prefill_endpoint, error)
            self.dataplane.breakers.failure(decision.prefill_endpoint)
            telemetry.fallback(decision, "prefill_local")
            return None
        finally:
            load.finish(decision.prefill_endpoint, decision.prefill_pool)
        params = pd.transfer_params(answer) if status == 200 else None
        if params is None:
            self.dataplane.breakers.failure(decision.prefill_endpoint)
            telemetry.fallback(decision, "prefill_local")
            return None
        self.dataplane.breakers.success(decision.prefill_endpoint)
        self.dataplane.prefilled(flight, time.monotonic() - started)
        return params

    async def _attempt(
        self,
        request: web.Request,
        flight: Flight,
        payload: bytes,
        forwarded: Mapping[str, str],
        headers: Mapping[str, str],
        attempt: int,
    ) -> web.StreamResponse:
        decision = flight.decision
        url = self.dataplane.fleet.url(decision.endpoint, flight.path)
        upstream: aiohttp.ClientResponse | None = None
        failed = True
        try:
            # Everything up to the first byte for the client is bounded, and can be retried.
            async with asyncio.timeout(self.timeouts.first_byte_s):
                upstream = await self.session().post(
                    url, data=payload, headers=forwarded, timeout=self._request_timeout
                )
                if upstream.status >= 500:
                    await upstream.read()
                    raise AttemptFailed(f"status {upstream.status}")
                content_type = upstream.headers.get("Content-Type", "")
                streaming = upstream.status == 200 and content_type.startswith("text/event-stream")
                first = await (upstream.content.readany() if streaming else upstream.read())
            if streaming and not first:
                raise AttemptFailed("stream ended before its first byte")
            reply = {**headers, **self._decision_headers(flight, attempt)}
            if streaming:
                answer = await self._stream(request, flight, upstream, first, reply)
            else:
                answer = self._whole(flight, upstream, first, reply)
            failed = False
            return answer
        except RETRYABLE as error:
            raise AttemptFailed(repr(error)) from error
        finally:
            if upstream is not None:
                if failed:
                    upstream.close()  # drop the connection so the server stops working on it
                else:
                    upstream.release()

    def _decision_headers(self, flight: Flight, attempt: int) -> dict[str, str]:
        d = flight.decision
        headers = {
            "x-fleetroute-model": d.model,
            "x-fleetroute-pool": d.pool,
            "x-fleetroute-endpoint": d.endpoint,
            "x-fleetroute-decision-id": d.id,
            "x-fleetroute-attempts": str(attempt),
        }
        if d.policy:
            headers["x-fleetroute-policy"] = d.policy
        if d.prefill_endpoint:
            headers["x-fleetroute-prefill-endpoint"] = d.prefill_endpoint
        return headers

    def _whole(
        self,
        flight: Flight,
        upstream: aiohttp.ClientResponse,
        content: bytes,
        reply: dict[str, str],
    ) -> web.Response:
        if upstream.status == 200:
            usage: Usage | None = None
            try:
                document = json.loads(content)
            except ValueError:
                # Not an answer whatever its status says: the endpoint failed, try another.
                raise AttemptFailed("status 200 with a body that is not JSON") from None
            usage = usage_of(document) if isinstance(document, dict) else None
            result = self.dataplane.succeeded(flight, None, usage)
            reply["x-fleetroute-energy-joules"] = f"{result.joules:.3f}"
        else:
            self.dataplane.abandoned(flight)  # a client error, not the endpoint's fault
        reply["Content-Type"] = upstream.headers.get("Content-Type", "application/json")
        return web.Response(status=upstream.status, body=content, headers=reply)

    async def _stream(
        self,
        request: web.Request,
        flight: Flight,
        upstream: aiohttp.ClientResponse,
        first: bytes,
        reply: dict[str, str],
    ) -> web.StreamResponse:
        ttft = time.monotonic() - flight.started
        reply["Content-Type"] = "text/event-stream"
        reply["Cache-Control"] = "no-cache"
        response = web.StreamResponse(status=200, headers=reply)
        await response.prepare(request)
        usage = StreamUsage()
        usage.feed(first)
        await response.write(first)
        early = True
        # From here on the client has bytes: a failure can no longer move the request.
        try:
            while chunk := await upstream.content.readany():
                usage.feed(chunk)
                await response.write(chunk)
                if early and usage.events > EARLY_TPOT_EVENTS:
                    # A first TPOT sample: lets the policy see a slow pool long before the
                    # request ends (outcomes arrive late under long generations).
                    early = False
                    tpot = (time.monotonic() - flight.started - ttft) / (usage.events - 1)
                    self.dataplane.early_latency(flight, ttft, tpot)
        except (ConnectionResetError, aiohttp.ClientConnectionResetError):
            self.dataplane.abandoned(flight, ttft_s=ttft)
            raise
        except RETRYABLE as error:
            log.warning("stream from %s broke: %r", flight.decision.endpoint, error)
            self.dataplane.failed(flight)
            if request.transport is not None:
                request.transport.abort()  # the client must not take a cut stream as complete
            return response
        await response.write_eof()
        self.dataplane.succeeded(flight, ttft, usage.result())
        return response
