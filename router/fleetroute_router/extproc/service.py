"""The ext_proc stream processor: route on the request body, report on the response.

Per HTTP request Envoy opens one Process stream. Request headers are answered at once in
BUFFERED body mode and deferred until the whole body has arrived in FULL_DUPLEX_STREAMED mode
(then the body is sent back as a streamed mutation). The chosen endpoint goes to Envoy as the
`x-gateway-destination-endpoint` header and `envoy.lb` metadata; a model the policy changed is
rewritten in the body; a split request carries `x-prefiller-host-port` for the decode side's
routing sidecar. The response's usage (JSON or SSE) feeds the bandit when the stream ends.
"""

from __future__ import annotations

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
from fleetroute_router import errors, openai_api
from fleetroute_router.dataplane import DataPlane, Flight
from fleetroute_router.extproc import messages
from fleetroute_router.features import RequestInfo
from fleetroute_router.proxy import http_errors, pd

log = logging.getLogger(__name__)
FULL_DUPLEX = processing_mode_pb2.ProcessingMode.FULL_DUPLEX_STREAMED


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


class ExternalProcessor(ext_grpc.ExternalProcessorServicer):  # type: ignore[misc]
    """envoy.service.ext_proc.v3.ExternalProcessor over the data plane."""

    def __init__(self, dataplane: DataPlane, max_body_bytes: int = 8 * 1024 * 1024) -> None:
        self.dataplane, self.max_body_bytes = dataplane, max_body_bytes

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
                first = exchange.first_byte
                self.dataplane.abandoned(
                    flight, ttft_s=None if first is None else first - flight.started
                )

    def _handle(
        self, exchange: _Exchange, message: ext.ProcessingRequest
    ) -> list[ext.ProcessingResponse]:
        kind = message.WhichOneof("request")
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
            with telemetry.request("POST", path, exchange.headers):  # traceparent from Envoy
                telemetry.requested(model=info.model, operation="chat", stream=info.stream)
                flight = self.dataplane.route(info, request_id, path)
        except ValueError:  # not JSON, not UTF-8, or nested too deep
            return [
                messages.immediate(
                    400, "body is not valid JSON", "invalid_request_error", "invalid_request"
                )
            ]
        except errors.NoCapacity as error:
            if self._fails_open(exchange):
                return self._pass_through(exchange)  # let Envoy's own balancing pick
            status, kind, code = http_errors.status_of(error)
            return [messages.immediate(status, str(error), kind, code)]
        except errors.RoutingError as error:
            status, kind, code = http_errors.status_of(error)
            return [messages.immediate(status, str(error), kind, code)]
        exchange.flight = flight
        decision = flight.decision
        set_headers = {
            messages.DESTINATION_HEADER: decision.endpoint,
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
        metadata = messages.destination_metadata(decision.endpoint)
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

    def _fails_open(self, exchange: _Exchange) -> bool:
        try:
            model = openai_api.load_body(bytes(exchange.body)).get("model")
        except (ValueError, AttributeError):
            return False
        policy = self.dataplane.core.fleet.policies.get(model)
        return policy is not None and policy.failure_mode == config_pb2.FAIL_OPEN

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
        if exchange.status >= 500 or exchange.status == 0:
            self.dataplane.failed(flight)
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
