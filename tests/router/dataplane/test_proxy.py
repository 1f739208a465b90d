"""The OpenAI-compatible proxy: routing headers, model rewriting, streaming, errors, limits."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest

from fleetroute_router.admin import AdminServer
from fleetroute_router.policies.base import Arm
from fleetroute_router.proxy.app import Limits

from .conftest import eventually

Chat = Callable[..., dict[str, Any]]


async def test_alias_goes_through_the_policy_and_gets_the_concrete_model(
    bed: Any, make_chat: Chat
) -> None:
    small = await bed.pool("small", "test/small-8B")
    large = await bed.pool("large", "test/large-70B", product="H100")
    bed.policy("fleet/chat", ["small", "large"])
    await bed.serve()
    seen = set()
    for _ in range(4):
        status, headers, body = await bed.post("/v1/chat/completions", make_chat("fleet/chat"))
        assert status == 200
        assert headers["x-fleetroute-policy"] == "fleet/chat"
        assert body["model"] == headers["x-fleetroute-model"]
        assert headers["x-fleetroute-endpoint"] in {small[0].address, large[0].address}
        assert headers["x-request-id"]
        assert float(headers["x-fleetroute-energy-joules"]) > 0
        seen.add(headers["x-fleetroute-pool"])
    assert seen == {"small", "large"}  # round-robin over both candidates


async def test_a_concrete_model_skips_the_policy(bed: Any, make_chat: Chat) -> None:
    await bed.pool("small", "test/small-8B")
    await bed.pool("large", "test/large-70B")
    bed.policy("fleet/chat", ["small", "large"])
    await bed.serve()
    for _ in range(3):
        status, headers, body = await bed.post("/v1/chat/completions", make_chat("test/large-70B"))
        assert status == 200
        assert headers["x-fleetroute-pool"] == "large"
        assert "x-fleetroute-policy" not in headers
        assert body["choices"][0]["message"]["content"]


async def test_completions_and_the_request_id_is_echoed(bed: Any) -> None:
    await bed.pool("small", "test/small-8B")
    await bed.serve()
    status, headers, body = await bed.post(
        "/v1/completions",
        {"model": "test/small-8B", "prompt": "Once", "max_tokens": 3},
        headers={"x-request-id": "req-42"},
    )
    assert status == 200
    assert headers["x-request-id"] == "req-42"
    assert body["usage"]["completion_tokens"] == 3
    assert body["object"] == "text_completion"


async def test_streaming_passes_chunks_through_with_headers(bed: Any, make_chat: Chat) -> None:
    await bed.pool("small", "test/small-8B")
    bed.policy("fleet/chat", ["small"])
    await bed.serve()
    body = make_chat(
        "fleet/chat", max_tokens=5, stream=True, stream_options={"include_usage": True}
    )
    async with bed.session.post(bed.url("/v1/chat/completions"), json=body) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/event-stream")
        assert response.headers["x-fleetroute-pool"] == "small"
        events = []
        async for line in response.content:
            if line.startswith(b"data: "):
                events.append(line[6:].strip())
    assert events[-1] == b"[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    words = [c["choices"][0]["delta"]["content"] for c in chunks if c["choices"]]
    assert len(words) == 5
    assert chunks[-1]["usage"]["completion_tokens"] == 5
    assert all(c["model"] == "test/small-8B" for c in chunks)


async def test_models_lists_aliases_and_models(bed: Any) -> None:
    await bed.pool("small", "test/small-8B")
    bed.policy("fleet/chat", ["small"])
    await bed.serve()
    async with bed.session.get(bed.url("/v1/models")) as response:
        listing = await response.json()
    assert [m["id"] for m in listing["data"]] == ["fleet/chat", "test/small-8B"]
    assert listing["object"] == "list"


async def test_bad_json_is_an_openai_style_400(bed: Any) -> None:
    await bed.pool("small", "test/small-8B")
    await bed.serve()
    status, _, body = await bed.post("/v1/chat/completions", b"{not json")
    assert status == 400
    assert body["error"]["type"] == "invalid_request_error"
    status, _, body = await bed.post("/v1/chat/completions", {"messages": []})
    assert status == 400
    assert "model" in body["error"]["message"]


async def test_unknown_model_is_a_404_naming_the_known_ones(bed: Any, make_chat: Chat) -> None:
    await bed.pool("small", "test/small-8B")
    await bed.serve()
    status, _, body = await bed.post("/v1/chat/completions", make_chat("nope"))
    assert status == 404
    assert body["error"]["code"] == "model_not_found"
    assert "test/small-8B" in body["error"]["message"]


async def test_body_and_header_limits(bed: Any, make_chat: Chat) -> None:
    await bed.pool("small", "test/small-8B")
    await bed.serve(limits=Limits(max_body_bytes=1024, max_header_bytes=512))
    status, _, body = await bed.post("/v1/chat/completions", make_chat("test/small-8B", "x" * 2000))
    assert status == 413
    assert body["error"]["type"] == "invalid_request_error"
    async with bed.session.post(
        bed.url("/v1/chat/completions"),
        json=make_chat("test/small-8B"),
        headers={"x-big": "y" * 2000},
    ) as response:
        assert response.status in (400, 431)


async def test_metrics_count_requests_and_energy(bed: Any, make_chat: Chat) -> None:
    await bed.pool("small", "test/small-8B")
    await bed.serve()
    await bed.post("/v1/chat/completions", make_chat("test/small-8B"))
    async with bed.session.get(bed.url("/metrics")) as response:
        assert response.status == 404  # not on the public port: the admin listener has it
    admin = AdminServer(bed.dataplane, "127.0.0.1:0")
    await admin.start()
    try:
        async with bed.session.get(f"http://{admin.address}/metrics") as response:
            text = await response.text()
    finally:
        await admin.stop()
    requests = [
        line for line in text.splitlines() if line.startswith("fleetroute_router_requests_total{")
    ]
    assert len(requests) == 1
    assert 'outcome="success"' in requests[0]
    assert 'pool="small"' in requests[0]
    assert requests[0].endswith(" 1.0")
    assert "fleetroute_router_energy_joules_total{" in text


async def test_a_running_stream_reports_its_latency_early(bed: Any, make_chat: Chat) -> None:
    (server,) = await bed.pool("small", "test/small-8B")
    server.faults.slowdown = 100.0  # about 90 ms a token: the whole stream takes seconds
    await bed.serve()
    body = make_chat("test/small-8B", max_tokens=50, stream=True)
    guard = bed.dataplane.core.guard
    async with bed.session.post(bed.url("/v1/chat/completions"), json=body) as response:
        assert response.status == 200
        for _ in range(6):
            await response.content.readline()
            await response.content.readline()
        arm = Arm("small", ready_endpoints=1, in_flight=0)
        # Known long before the stream ends (the client then hangs up).
        assert await eventually(lambda: None not in guard.predict(arm), within=2.0)


async def test_a_stream_teaches_the_guard_its_ttft_once(
    bed: Any, make_chat: Chat, monkeypatch: pytest.MonkeyPatch
) -> None:
    await bed.pool("small", "test/small-8B")
    bed.policy("fleet/chat", ["small"], algorithm="linucb")
    await bed.serve()
    guard = bed.dataplane.core.guard
    told: list[tuple[float | None, float | None]] = []
    observe = guard.observe

    def recording(
        pool: str, queue: float, ttft_s: float | None, tpot_s: float | None, **kwargs: Any
    ) -> None:
        told.append((ttft_s, tpot_s))
        observe(pool, queue, ttft_s, tpot_s, **kwargs)

    monkeypatch.setattr(guard, "observe", recording)
    body = make_chat("fleet/chat", max_tokens=40, stream=True)
    async with bed.session.post(bed.url("/v1/chat/completions"), json=body) as response:
        assert response.status == 200
        await response.read()
    assert await eventually(lambda: len(told) >= 2, within=2.0), told
    # Told early (TTFT and a first TPOT), then only the whole stream's TPOT at its end.
    assert [ttft is not None for ttft, _ in told] == [True, False]
    assert all(tpot is not None for _, tpot in told)


async def test_stopping_lets_a_stream_in_flight_finish(bed: Any, make_chat: Chat) -> None:
    await bed.pool("small", "test/small-8B", speed=1.0)  # real modelled token latency
    proxy = await bed.serve()
    async with bed.session.post(
        bed.url("/v1/chat/completions"), json=make_chat("test/small-8B", stream=True, max_tokens=30)
    ) as response:
        assert response.status == 200
        first = await response.content.readline()
        stopping = asyncio.create_task(proxy.stop())
        rest = await response.read()
    await stopping
    bed.proxy = None  # stopped already
    assert first.startswith(b"data: ")
    assert rest.rstrip().endswith(b"data: [DONE]")
