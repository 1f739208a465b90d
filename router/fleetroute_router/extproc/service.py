"""The ext_proc stream processor: route on the request body, report on the response.

Per HTTP request Envoy opens one Process stream. Request headers are answered at once in
BUFFERED body mode and deferred until the whole body has arrived in FULL_DUPLEX_STREAMED mode
(then the body is sent back as a streamed mutation). It speaks the Endpoint Picker Protocol v0.4:
the chosen endpoint and its fallbacks go to Envoy as one ordered comma list, in the
`x-gateway-destination-endpoint` header and the same `envoy.lb` metadata entry; an
`envoy.lb.subset_hint` restricts the choice (nothing eligible: 503); shedding answers 429; the
`x-gateway-destination-endpoint-served` metadata of the response says which endpoint Envoy ended
on. A model the policy changed is rewritten in the body; a split request carries
`x-prefiller-host-port` for the decode side's routing sidecar. The response's usage (JSON or SSE)
feeds the bandit when the stream ends; the request's span stays open until then.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import grpc
from envoy.extensions.filters.http.ext_proc.v3 import processing_mode_pb2
from envoy.service.ext_proc.v3 import external_processor_pb2 as ext
from envoy.service.ext_proc.v3 import external_processor_pb2_grpc as ext_grpc

from fleetroute.v1alpha1 import config_pb2
from fleetroute_router import errors, objectives, openai_api
from fleetroute_router.dataplane import DataPlane, Flight
from fleetroute_router.extproc import messages
from fleetroute_router.features import RequestInfo
from fleetroute_router.proxy import http_errors, pd

log = logging.getLogger(__name__)
FULL_DUPLEX = processing_mode_pb2.ProcessingMode.FULL_DUPLEX_STREAMED
# Endpoints after the chosen one in the destination list, for Envoy's retries to fall back on.
MAX_FALLBACKS = 3


class _Exchange:
    """State of one HTTP request's stream."""

    def __init__(self) -> None:
        self.headers: dict[str, str] = {}
        self.body = bytearray()
        self.duplex = False
        self.flight: Flight | None = None
        self.status = 0
        self.first_byte: float | None = None
        self.response = bytearray()
        self.usage = openai_api.StreamUsage()
        self.sse = False
        self.done = False
        # EPP: the allowed endpoints (None: all), the list sent, the endpoint that served.
        self.subset: list[str] | None = None
        self.destinations: list[str] = []
        self.served = ""
        # The request span (and the in-flight slot), open from routing to the response's end.
        self.scope: contextlib.ExitStack | None = None


class ExternalProcessor(ext_grpc.ExternalProcessorServicer):  # type: ignore[misc]
    """envoy.service.ext_proc.v3.ExternalProcessor over the data plane."""

    def __init__(
        self,
        dataplane: DataPlane,
        max_body_bytes: int = 8 * 1024 * 1024,
        max_in_flight: int = 2048,
    ) -> None:
        self.dataplane, self.max_body_bytes = dataplane, max_body_bytes
        self.max_in_flight = max_in_flight
        self.in_flight = 0  # routed requests whose response has not ended

    async def Process(
        self,
        request_iterator: AsyncIterator[ext.ProcessingRequest],
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[ext.ProcessingResponse]:
        exchange = _Exchange()
        try:
            async for message in request_iterator:
                for answer in self._handle(exchange, message):
                    yield answer
        finally:
            flight = exchange.flight
            if flight is not None and not exchange.done:
                exchange.done = True
                first = exchange.first_byte
                self.dataplane.abandoned(
                    flight, ttft_s=None if first is None else first - flight.started
                )
            self._close(exchange)

    def _close(self, exchange: _Exchange) -> None:
        """End the request span and free the in-flight slot (once)."""
        scope, exchange.scope = exchange.scope, None
        if scope is not None:
            scope.close()

    def _handle(
        self, exchange: _Exchange, message: ext.ProcessingRequest
    ) -> list[ext.ProcessingResponse]:
        kind = message.WhichOneof("request")
        if message.HasField("metadata_context"):
            if exchange.flight is None and exchange.subset is None:
                exchange.subset = messages.subset_hint(message.metadata_context)
            exchange.served = messages.served_endpoint(message.metadata_context) or exchange.served
        if message.HasField("protocol_config"):
            exchange.duplex = message.protocol_config.request_body_mode == FULL_DUPLEX
        if kind == "request_headers":
            exchange.headers = messages.header_map(message.request_headers.headers)
            if message.request_headers.end_of_stream or not exchange.duplex:
                return [ext.ProcessingResponse(request_headers=ext.HeadersResponse())]
            return []
        if kind == "request_body":
            exchange.body += message.request_body.body
            if len(exchange.body) > self.max_body_bytes:
                return [
                    messages.immediate(
                        413, "request body too large", "invalid_request_error", "413"
                    )
                ]
            if not message.request_body.end_of_stream:
                if exchange.duplex:
                    return []
                return [ext.ProcessingResponse(request_body=ext.BodyResponse())]
            return self._route(exchange)
        if kind == "response_headers":
            return [self._response_headers(exchange, message.response_headers)]
        if kind == "response_body":
            return self._response_body(exchange, message.response_body)
        if kind == "request_trailers":
            return [ext.ProcessingResponse(request_trailers=ext.TrailersResponse())]
        if kind == "response_trailers":
            return [ext.ProcessingResponse(response_trailers=ext.TrailersResponse())]
        return []

    def _route(self, exchange: _Exchange) -> list[ext.ProcessingResponse]:
        try:
            body = openai_api.load_body(bytes(exchange.body))
            if not isinstance(body, dict) or not isinstance(body.get("model"), str):
                raise errors.InvalidRequest("body must be a JSON object with a model")
            info = RequestInfo(
                model=body["model"],
                prompt=openai_api.prompt_text(body),
                max_tokens=openai_api.max_tokens(body),
                stream=bool(body.get("stream")),
            )
            request_id = exchange.headers.get("x-request-id") or uuid.uuid4().hex
            path, telemetry = exchange.headers.get(":path", ""), self.dataplane.telemetry
            override = exchange.headers.get(objectives.OBJECTIVE_HEADER)
            objective = objectives.parse(override) if override is not None else None
            with contextlib.ExitStack() as scope:
                # traceparent from Envoy; the span stays open until the response ends
                scope.enter_context(telemetry.request("POST", path, exchange.headers))
                telemetry.requested(model=info.model, operation="chat", stream=info.stream)
                if self.in_flight >= self.max_in_flight:
                    raise errors.Overloaded(
                        f"endpoint picker shedding: {self.in_flight} requests in flight"
                    )
                flight = self._pick(exchange, info, request_id, path, objective)
                self.in_flight += 1
                scope.callback(self._release)
                exchange.scope = scope.pop_all()
        except ValueError:  # not JSON, not UTF-8, or nested too deep
            return [
                messages.immediate(
                    400, "body is not valid JSON", "invalid_request_error", "invalid_request"
                )
            ]
        except errors.NoCapacity as error:
            if exchange.subset is None and self._fails_open(exchange):
                return self._pass_through(exchange)  # let Envoy's own balancing pick
            status, kind, code = http_errors.status_of(error)
            return [messages.immediate(status, str(error), kind, code)]
        except errors.RoutingError as error:
            status, kind, code = http_errors.status_of(error)
            return [messages.immediate(status, str(error), kind, code)]
        exchange.flight = flight
        decision = flight.decision
        exchange.destinations = self._destinations(exchange, flight)
        destinations = ",".join(exchange.destinations)
        set_headers = {
            messages.DESTINATION_HEADER: destinations,
            "x-request-id": decision.request_id,
            "x-fleetroute-model": decision.model,
            "x-fleetroute-pool": decision.pool,
        }
        if decision.prefill_endpoint:
            set_headers[pd.PREFILLER_HEADER] = decision.prefill_endpoint
        new_body = bytes(exchange.body)
        if body["model"] != decision.model:
            new_body = json.dumps({**body, "model": decision.model}).encode()
        set_headers["content-length"] = str(len(new_body))
        common = ext.CommonResponse(
            header_mutation=messages.mutation(set_headers), clear_route_cache=True
        )
        metadata = messages.destination_metadata(destinations)
        if exchange.duplex:
            return [
                ext.ProcessingResponse(
                    request_headers=ext.HeadersResponse(response=common), dynamic_metadata=metadata
                ),
                ext.ProcessingResponse(
                    request_body=ext.BodyResponse(
                        response=ext.CommonResponse(
                            body_mutation=ext.BodyMutation(
                                streamed_response=ext.StreamedBodyResponse(
                                    body=new_body, end_of_stream=True
                                )
                            )
                        )
                    )
                ),
            ]
        if new_body != bytes(exchange.body):
            common.body_mutation.body = new_body
        return [
            ext.ProcessingResponse(
                request_body=ext.BodyResponse(response=common), dynamic_metadata=metadata
            )
        ]

    def _release(self) -> None:
        self.in_flight -= 1

    def _pick(
        self,
        exchange: _Exchange,
        info: RequestInfo,
        request_id: str,
        path: str,
        objective: config_pb2.Objective | None,
    ) -> Flight:
        """Route the request, within the subset hint when Envoy sent one."""
        subset = exchange.subset
        if subset is not None and not subset:
            raise errors.NoCapacity("the subset hint allows no endpoint")
        flight = self.dataplane.route(info, request_id, path, objective)
        if subset is None or flight.decision.endpoint in subset:
            return flight
        allowed = set(subset)
        outside = {address for address in self._addresses() if address not in allowed}
        if self.dataplane.retry(flight, exclude=outside):
            return flight
        self.dataplane.abandoned(flight)
        raise errors.NoCapacity(
            f"no eligible endpoint for {info.model!r} in the subset hint ({', '.join(subset)})"
        )

    def _addresses(self) -> set[str]:
        return {e.address for pool in self.dataplane.fleet.config.pools for e in pool.endpoints}

    def _destinations(self, exchange: _Exchange, flight: Flight) -> list[str]:
        """The chosen endpoint, then the pool's other eligible endpoints by load (EPP v0.4's
        ordered list: Envoy's retries go down it)."""
        decision = flight.decision
        pool = self.dataplane.fleet.pools.get(decision.pool)
        if pool is None:
            return [decision.endpoint]
        subset, breakers = exchange.subset, self.dataplane.breakers
        others = [
            e.address
            for e in pool.endpoints
            if e.ready
            and e.address != decision.endpoint
            and not breakers.is_open(e.address)
            and (subset is None or e.address in subset)
        ]
        others.sort(key=self.dataplane.load.in_flight)
        return [decision.endpoint, *others[:MAX_FALLBACKS]]

    def _served(self, exchange: _Exchange, flight: Flight) -> None:
        """Envoy reports it ended on a fallback: the endpoints before it in the list failed,
        and the outcome belongs to the one that served."""
        served, listed = exchange.served, exchange.destinations
        if not served or served == flight.decision.endpoint:
            return
        if served not in listed:
            log.warning("Envoy reports %s served, which was not among %s", served, listed)
            return
        for endpoint in listed[: listed.index(served)]:
            self.dataplane.failed_attempt(flight, endpoint)
        started, power = flight.started, flight.power
        others = self._addresses() - {served}
        if self.dataplane.retry(flight, exclude=others):
            flight.started, flight.power = started, power  # the clock ran from the first try

    def _fails_open(self, exchange: _Exchange) -> bool:
        try:
            model = openai_api.load_body(bytes(exchange.body)).get("model")
        except (ValueError, AttributeError):
            return False
        return isinstance(model, str) and self.dataplane.fails_open(model)

    def _pass_through(self, exchange: _Exchange) -> list[ext.ProcessingResponse]:
        if not exchange.duplex:
            return [ext.ProcessingResponse(request_body=ext.BodyResponse())]
        streamed = ext.StreamedBodyResponse(body=bytes(exchange.body), end_of_stream=True)
        return [
            ext.ProcessingResponse(request_headers=ext.HeadersResponse()),
            ext.ProcessingResponse(
                request_body=ext.BodyResponse(
                    response=ext.CommonResponse(
                        body_mutation=ext.BodyMutation(streamed_response=streamed)
                    )
                )
            ),
        ]

    def _response_headers(
        self, exchange: _Exchange, headers: ext.HttpHeaders
    ) -> ext.ProcessingResponse:
        found = messages.header_map(headers.headers)
        exchange.status = int(found.get(":status", "0") or 0)
        exchange.sse = found.get("content-type", "").startswith("text/event-stream")
        flight = exchange.flight
        if flight is None:
            return ext.ProcessingResponse(response_headers=ext.HeadersResponse())
        self._served(exchange, flight)
        decision = flight.decision
        set_headers = {
            "x-fleetroute-model": decision.model,
            "x-fleetroute-pool": decision.pool,
            "x-fleetroute-endpoint": decision.endpoint,
            "x-fleetroute-decision-id": decision.id,
            "x-request-id": decision.request_id,
        }
        if headers.end_of_stream:
            self._finish(exchange)
        return ext.ProcessingResponse(
            response_headers=ext.HeadersResponse(
                response=ext.CommonResponse(header_mutation=messages.mutation(set_headers))
            )
        )

    def _response_body(
        self, exchange: _Exchange, body: ext.HttpBody
    ) -> list[ext.ProcessingResponse]:
        if exchange.first_byte is None and body.body:
            exchange.first_byte = time.monotonic()
        if exchange.sse:
            exchange.usage.feed(body.body)
        elif len(exchange.response) < self.max_body_bytes:
            exchange.response += body.body
        if body.end_of_stream:
            self._finish(exchange)
        if exchange.duplex:
            streamed = ext.StreamedBodyResponse(body=body.body, end_of_stream=body.end_of_stream)
            return [
                ext.ProcessingResponse(
                    response_body=ext.BodyResponse(
                        response=ext.CommonResponse(
                            body_mutation=ext.BodyMutation(streamed_response=streamed)
                        )
                    )
                )
            ]
        return [ext.ProcessingResponse(response_body=ext.BodyResponse())]

    def _finish(self, exchange: _Exchange) -> None:
        flight = exchange.flight
        if flight is None or exchange.done:
            return
        exchange.done = True
        try:
            self._report(exchange, flight)
        finally:
            self._close(exchange)

    def _report(self, exchange: _Exchange, flight: Flight) -> None:
        """The response's outcome to the data plane (breaker, learning, metrics, span)."""
        if exchange.status >= 500 or exchange.status == 0:
            self.dataplane.failed(flight)  # the endpoint's breaker counts it
            return
        if exchange.status >= 400:
            self.dataplane.abandoned(flight)
            return
        if exchange.sse:
            usage = exchange.usage.result()
            ttft = None if exchange.first_byte is None else exchange.first_byte - flight.started
        else:
            ttft = None
            try:
                document = json.loads(bytes(exchange.response))
                usage = openai_api.usage_of(document) if isinstance(document, dict) else None
            except ValueError:
                usage = None
        self.dataplane.succeeded(flight, ttft, usage)
