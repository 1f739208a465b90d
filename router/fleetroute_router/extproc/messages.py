"""Build the Envoy ext_proc messages the processor answers with."""

from __future__ import annotations

import json
from collections.abc import Mapping

from envoy.config.core.v3 import base_pb2
from envoy.service.ext_proc.v3 import external_processor_pb2 as ext
from envoy.type.v3 import http_status_pb2
from google.protobuf import struct_pb2

from fleetroute_router.openai_api import error_body

DESTINATION_HEADER = "x-gateway-destination-endpoint"
LB_NAMESPACE = "envoy.lb"
OVERWRITE = base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD


def header_map(headers: base_pb2.HeaderMap) -> dict[str, str]:
    """Request or response headers as a dict of lower-case names."""
    return {
        h.key.lower(): h.raw_value.decode("utf-8", "replace") if h.raw_value else h.value
        for h in headers.headers
    }


def mutation(set_headers: Mapping[str, str], remove: tuple[str, ...] = ()) -> ext.HeaderMutation:
    return ext.HeaderMutation(
        set_headers=[
            base_pb2.HeaderValueOption(
                header=base_pb2.HeaderValue(key=key, raw_value=value.encode()),
                append_action=OVERWRITE,
            )
            for key, value in set_headers.items()
        ],
        remove_headers=list(remove),
    )


def destination_metadata(endpoint: str) -> struct_pb2.Struct:
    """`envoy.lb` dynamic metadata naming the endpoint, as the inference extension sets it."""
    metadata = struct_pb2.Struct()
    metadata.fields[LB_NAMESPACE].struct_value.fields[DESTINATION_HEADER].string_value = endpoint
    return metadata


def immediate(status: int, message: str, kind: str, code: str) -> ext.ProcessingResponse:
    """An OpenAI-style error answered by Envoy without contacting any upstream."""
    return ext.ProcessingResponse(
        immediate_response=ext.ImmediateResponse(
            status=http_status_pb2.HttpStatus(code=status),
            headers=mutation({"content-type": "application/json"}),
            body=json.dumps(error_body(message, kind, code)).encode(),
            details=code,
        )
    )
