"""Prefill/decode: the split decision, and the remote-prefill exchange (kv_transfer_params)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from fleetroute_router.proxy import pd

Chat = Callable[..., dict[str, Any]]
MODEL = "test/big-70B"
LONG = "Summarise this document. " * 200  # about 1,250 tokens


async def _pd_bed(bed: Any, *, dead_prefill: bool = False) -> tuple[Any, Any]:
    prefill = await bed.pool(
        "prefill",
        MODEL,
        count=0 if dead_prefill else 1,
        role="prefill",
        peer="decode",
        product="H100",
        dead=1 if dead_prefill else 0,
    )
    (decode,) = await bed.pool("decode", MODEL, role="decode", peer="prefill", product="H100")
    bed.policy("fleet/big", ["decode"], min_uncached_prompt_tokens=256)
    await bed.serve()
    return (prefill[0] if prefill else None), decode


async def test_a_long_prompt_is_prefilled_remotely(bed: Any, make_chat: Chat) -> None:
    prefill, decode = await _pd_bed(bed)
    status, headers, body = await bed.post(
        "/v1/chat/completions", make_chat("fleet/big", LONG, max_tokens=4)
    )
    assert status == 200
    assert headers["x-fleetroute-prefill-endpoint"] == prefill.address
    assert headers["x-fleetroute-endpoint"] == decode.address
    assert prefill.stats.prefilled_for_remote == 1
    assert decode.stats.remote_prefills == [prefill.address]
    assert body["usage"]["completion_tokens"] == 4
    assert "kv_transfer_params" not in body


async def test_streaming_after_a_remote_prefill(bed: Any, make_chat: Chat) -> None:
    prefill, decode = await _pd_bed(bed)
    body = make_chat("fleet/big", LONG, max_tokens=3, stream=True)
    async with bed.session.post(bed.url("/v1/chat/completions"), json=body) as response:
        assert response.status == 200
        text = await response.text()
    assert text.rstrip().endswith("data: [DONE]")
    assert decode.stats.remote_prefills == [prefill.address]


async def test_short_or_cached_prompts_stay_on_the_decode_pool(bed: Any, make_chat: Chat) -> None:
    prefill, _ = await _pd_bed(bed)
    status, headers, _ = await bed.post("/v1/chat/completions", make_chat("fleet/big", "Hi"))
    assert status == 200
    assert "x-fleetroute-prefill-endpoint" not in headers
    await bed.post("/v1/chat/completions", make_chat("fleet/big", LONG))
    # The same long prompt again: the decode endpoint caches its prefix, nothing to split.
    status, headers, _ = await bed.post("/v1/chat/completions", make_chat("fleet/big", LONG))
    assert status == 200
    assert "x-fleetroute-prefill-endpoint" not in headers
    assert prefill.stats.prefilled_for_remote == 1


async def test_a_failed_prefill_falls_back_to_local_prefill(bed: Any, make_chat: Chat) -> None:
    _, decode = await _pd_bed(bed, dead_prefill=True)
    status, _, _ = await bed.post("/v1/chat/completions", make_chat("fleet/big", LONG))
    assert status == 200
    assert decode.stats.remote_prefills == []
    assert decode.stats.served == 1


def test_the_prefill_body_follows_the_sidecar_protocol() -> None:
    body = {"model": "alias", "prompt": "x", "stream": True, "stream_options": {"a": 1}}
    prefill = pd.prefill_body(body, "real")
    assert prefill["model"] == "real"
    assert prefill["stream"] is False
    assert prefill["max_tokens"] == 1
    assert "stream_options" not in prefill
    assert prefill["kv_transfer_params"]["do_remote_decode"] is True
    assert prefill["kv_transfer_params"]["do_remote_prefill"] is False
    params = {"do_remote_prefill": True, "remote_host": "h", "remote_port": 1}
    answer = json.dumps({"kv_transfer_params": params}).encode()
    assert pd.transfer_params(answer) == params
    decode = json.loads(pd.decode_body(body, "real", params))
    assert decode["kv_transfer_params"] == params
    assert decode["stream"] is True
    assert pd.transfer_params(b"not json") is None
