"""Build the Envoy ext_proc messages the processor answers with."""

from __future__ import annotations

import json
from collections.abc import Mapping

from envoy.config.core.v3 import base_pb2
from envoy.service.ext_proc.v3 import external_processor_pb2 as ext
from envoy.type.v3 import http_status_pb2
from google.protobuf import struct_pb2

from fleetroute_router.openai_api import error_body

# Endpoint Picker Protocol v0.4 (gateway-api-inference-extension, proposal 004).
DESTINATION_HEADER = "x-gateway-destination-endpoint"
SERVED_KEY = "x-gateway-destination-endpoint-served"
SUBSET_KEY = "x-gateway-destination-endpoint-subset"
LB_NAMESPACE = "envoy.lb"
SUBSET_NAMESPACE = "envoy.lb.subset_hint"
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


def destination_metadata(endpoints: str) -> struct_pb2.Struct:
    """`envoy.lb` dynamic metadata naming the endpoints (the same comma list as the header)."""
    metadata = struct_pb2.Struct()
    metadata.fields[LB_NAMESPACE].struct_value.fields[DESTINATION_HEADER].string_value = endpoints
    return metadata


def subset_hint(metadata: base_pb2.Metadata) -> list[str] | None:
    """The endpoints the data plane allows (`envoy.lb.subset_hint`), None when it sets none."""
    namespace = metadata.filter_metadata.get(SUBSET_NAMESPACE)
    if namespace is None or SUBSET_KEY not in namespace.fields:
        return None
    value = namespace.fields[SUBSET_KEY]
    if value.HasField("list_value"):
        return [v.string_value for v in value.list_value.values if v.string_value]
    return [part.strip() for part in value.string_value.split(",") if part.strip()]


def served_endpoint(metadata: base_pb2.Metadata) -> str:
    """The endpoint that produced the response (`envoy.lb` served key), empty when unknown."""
    namespace = metadata.filter_metadata.get(LB_NAMESPACE)
    if namespace is None or SERVED_KEY not in namespace.fields:
        return ""
    served: str = namespace.fields[SERVED_KEY].string_value
    return served.strip()


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
