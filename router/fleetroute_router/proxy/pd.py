"""vLLM's remote-prefill exchange, as llm-d's routing sidecar runs it (NixlConnector protocol).

1. POST the request to the prefill endpoint with `kv_transfer_params.do_remote_decode = true`,
   `stream = false` and one output token; the prefiller computes the prompt's KV cache.
2. Its answer carries `kv_transfer_params` (do_remote_prefill, remote_engine_id,
   remote_block_ids, remote_host, remote_port): where the decoder fetches the KV blocks.
3. POST the original request to the decode endpoint with those `kv_transfer_params`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

PREFILLER_HEADER = "x-prefiller-host-port"


def prefill_body(body: Mapping[str, Any], model: str) -> dict[str, Any]:
    """The body sent to the prefill endpoint."""
    prefill = {key: value for key, value in body.items() if key != "stream_options"}
    prefill.update(
        model=model,
        stream=False,
        max_tokens=1,
        kv_transfer_params={
            "do_remote_decode": True,
            "do_remote_prefill": False,
            "remote_engine_id": None,
            "remote_block_ids": None,
            "remote_host": None,
            "remote_port": None,
        },
    )
    if "max_completion_tokens" in prefill:
        prefill["max_completion_tokens"] = 1
    return prefill


def transfer_params(prefill_answer: bytes) -> dict[str, Any] | None:
    """The kv_transfer_params the prefiller returned, None when absent or malformed."""
    try:
        document = json.loads(prefill_answer)
    except ValueError:
        return None
    params = document.get("kv_transfer_params") if isinstance(document, dict) else None
    return params if isinstance(params, dict) else None


def decode_body(body: Mapping[str, Any], model: str, params: Mapping[str, Any]) -> bytes:
    """The original request for the decode endpoint, carrying the prefiller's transfer params."""
    return json.dumps({**body, "model": model, "kv_transfer_params": dict(params)}).encode()
