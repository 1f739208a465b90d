"""The Router gRPC API served on loopback and called through a real client."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from google.protobuf import duration_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from fleetroute.v1alpha1 import config_pb2, router_pb2, router_pb2_grpc
from fleetroute_router.auth import TokenFile
from fleetroute_router.dataplane import DataPlane
from fleetroute_router.fleet import Fleet
from fleetroute_router.server import SERVICE_NAME, RouterServer

LONG_PROMPT = "Summarise the following report. " + "The quarterly figures rose again. " * 200


def _ms(value: int) -> duration_pb2.Duration:
    duration = duration_pb2.Duration()
    duration.FromMilliseconds(value)
    return duration


async def test_route_picks_a_candidate_of_the_policy(stub: router_pb2_grpc.RouterStub) -> None:
    decision = await stub.Route(router_pb2.RouteRequest(model="fleet/chat", prompt="Hello"))
    assert decision.policy == "llm/chat"
    assert decision.pool in {
        "llm/llama-70b-decode",
        "llm/llama-8b-l4",
        "llm/qwen-14b-a10g",
        "llm/mistral-7b-external",
    }
    assert decision.endpoint.startswith("127.0.0.1:")
    assert {s.pool for s in decision.scores} >= {decision.pool}
    assert decision.decision_id
    assert decision.request_id
    assert decision.algorithm


async def test_route_by_concrete_model_skips_the_policy(stub: router_pb2_grpc.RouterStub) -> None:
    decision = await stub.Route(
        router_pb2.RouteRequest(
            model="meta-llama/Llama-3.1-8B-Instruct", prompt="Hi", request_id="req-1"
        )
    )
    assert (decision.policy, decision.pool, decision.request_id) == ("", "llm/llama-8b-l4", "req-1")


async def test_long_prompts_to_the_decode_pool_get_a_prefill_endpoint(
    stub: router_pb2_grpc.RouterStub,
) -> None:
    request = router_pb2.RouteRequest(model="meta-llama/Llama-3.1-70B-Instruct", prompt=LONG_PROMPT)
    decision = await stub.Route(request)
    assert decision.pool == "llm/llama-70b-decode"
    assert (decision.prefill_pool, decision.prefill_endpoint) == (
        "llm/llama-70b-prefill",
        "127.0.0.1:8101",
    )


async def test_chat_messages_are_accepted(stub: router_pb2_grpc.RouterStub) -> None:
    request = router_pb2.RouteRequest(
        model="fleet/chat", messages=[router_pb2.ChatMessage(role="user", content="What is 2+2?")]
    )
    assert (await stub.Route(request)).pool


async def test_report_returns_the_reward(stub: router_pb2_grpc.RouterStub) -> None:
    decision = await stub.Route(router_pb2.RouteRequest(model="fleet/chat", prompt="Hello"))
    ack = await stub.Report(
        router_pb2.Feedback(
            decision_id=decision.decision_id,
            success=True,
            ttft=_ms(120),
            e2e_latency=_ms(1200),
            prompt_tokens=10,
            completion_tokens=40,
            quality=0.9,
        )
    )
    assert 0.0 < ack.reward <= 1.0
    with pytest.raises(grpc.aio.AioRpcError) as twice:
        await stub.Report(router_pb2.Feedback(decision_id=decision.decision_id, success=True))
    assert twice.value.code() == grpc.StatusCode.NOT_FOUND


async def test_failed_requests_earn_nothing(stub: router_pb2_grpc.RouterStub) -> None:
    decision = await stub.Route(router_pb2.RouteRequest(model="fleet/chat", prompt="Hello"))
    ack = await stub.Report(router_pb2.Feedback(decision_id=decision.decision_id, success=False))
    assert ack.reward == 0.0


@pytest.mark.parametrize(
    ("request_message", "code", "fragment"),
    [
        (
            router_pb2.RouteRequest(prompt="hi"),
            grpc.StatusCode.INVALID_ARGUMENT,
            "model is required",
        ),
        (
            router_pb2.RouteRequest(model="fleet/chat"),
            grpc.StatusCode.INVALID_ARGUMENT,
            "prompt or messages",
        ),
        (
            router_pb2.RouteRequest(
                model="fleet/chat",
                prompt="x",
                messages=[router_pb2.ChatMessage(role="user", content="y")],
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "not both",
        ),
        (
            router_pb2.RouteRequest(model="fleet/none", prompt="x"),
            grpc.StatusCode.NOT_FOUND,
            "fleet/none",
        ),
    ],
    ids=["no-model", "no-prompt", "prompt-and-messages", "unknown-model"],
)
async def test_bad_route_requests_get_a_status_and_a_reason(
    stub: router_pb2_grpc.RouterStub,
    request_message: router_pb2.RouteRequest,
    code: grpc.StatusCode,
    fragment: str,
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.Route(request_message)
    assert raised.value.code() == code
    assert fragment in (raised.value.details() or "")


@pytest.mark.parametrize(
    ("feedback", "code", "fragment"),
    [
        (
            router_pb2.Feedback(success=True),
            grpc.StatusCode.INVALID_ARGUMENT,
            "decision_id is required",
        ),
        (
            router_pb2.Feedback(decision_id="nope", success=True),
            grpc.StatusCode.NOT_FOUND,
            "awaits a report",
        ),
        (
            router_pb2.Feedback(decision_id="x", quality=1.5),
            grpc.StatusCode.INVALID_ARGUMENT,
            "quality must be in [0, 1]",
        ),
        (
            router_pb2.Feedback(decision_id="x", energy_joules=-1),
            grpc.StatusCode.INVALID_ARGUMENT,
            "energy_joules",
        ),
        (
            router_pb2.Feedback(decision_id="x", ttft=_ms(500), e2e_latency=_ms(100)),
            grpc.StatusCode.INVALID_ARGUMENT,
            "ttft cannot exceed",
        ),
    ],
    ids=["no-id", "unknown-id", "quality-out-of-range", "negative-energy", "ttft-after-end"],
)
async def test_bad_feedback_gets_a_status_and_a_reason(
    stub: router_pb2_grpc.RouterStub,
    feedback: router_pb2.Feedback,
    code: grpc.StatusCode,
    fragment: str,
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.Report(feedback)
    assert raised.value.code() == code
    assert fragment in (raised.value.details() or "")


async def test_no_ready_endpoint_is_unavailable(example_config: config_pb2.RouterConfig) -> None:
    for pool in example_config.pools:
        for endpoint in pool.endpoints:
            endpoint.ready = False
    server = RouterServer(DataPlane(Fleet.from_config(example_config), scrape=False), "127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await router_pb2_grpc.RouterStub(channel).Route(
                    router_pb2.RouteRequest(model="fleet/chat", prompt="Hello")
                )
    finally:
        await server.drain(0)
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "no ready endpoint" in (raised.value.details() or "")


async def test_health_reports_serving_then_not_serving_on_drain(
    served: RouterServer, channel: grpc.aio.Channel
) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    for service in ("", SERVICE_NAME):
        reply = await health.Check(health_pb2.HealthCheckRequest(service=service))
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    await served.health.enter_graceful_shutdown()
    reply = await health.Check(health_pb2.HealthCheckRequest(service=SERVICE_NAME))
    assert reply.status == health_pb2.HealthCheckResponse.NOT_SERVING


async def test_reflection_lists_the_router_service(channel: grpc.aio.Channel) -> None:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    call = stub.ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")])
    )
    async for reply in call:
        names = {s.name for s in reply.list_services_response.service}
        break
    assert {SERVICE_NAME, "grpc.health.v1.Health"} <= names


async def test_stats_count_decisions_and_rewards_per_arm(stub: router_pb2_grpc.RouterStub) -> None:
    decisions = [
        await stub.Route(router_pb2.RouteRequest(model="fleet/chat", prompt=f"Hello {i}"))
        for i in range(8)
    ]
    await stub.Report(
        router_pb2.Feedback(decision_id=decisions[0].decision_id, success=True, quality=1.0)
    )
    stats = await stub.GetStats(router_pb2.StatsRequest(policy="llm/chat"))
    (policy,) = stats.policies
    assert policy.policy == "llm/chat"
    assert sum(a.decisions for a in policy.arms) == 8
    assert sum(a.share for a in policy.arms) == pytest.approx(1.0)
    rewarded = next(a for a in policy.arms if a.pool == decisions[0].pool)
    assert rewarded.rewards == 1
    assert rewarded.mean_reward > 0
    assert [a.decisions for a in policy.arms] == sorted(
        (a.decisions for a in policy.arms), reverse=True
    )


async def test_stats_of_an_unknown_policy_is_not_found(stub: router_pb2_grpc.RouterStub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.GetStats(router_pb2.StatsRequest(policy="llm/nope"))
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND


async def test_a_grpc_decision_takes_the_same_path_as_a_proxied_one(
    stub: router_pb2_grpc.RouterStub, dataplane: DataPlane
) -> None:
    """Breakers, metrics and learning: Route/Report go through the data plane too."""
    decision = await stub.Route(router_pb2.RouteRequest(model="fleet/chat", prompt="Hello"))
    assert dataplane.load.in_flight(decision.endpoint) == 1
    for _ in range(3):  # a failing endpoint's breaker opens, as for proxied requests
        failing = await stub.Route(
            router_pb2.RouteRequest(model="Qwen/Qwen2.5-14B-Instruct", prompt="x")
        )
        await stub.Report(router_pb2.Feedback(decision_id=failing.decision_id, success=False))
    assert dataplane.breakers.is_open(failing.endpoint)
    await stub.Report(
        router_pb2.Feedback(
            decision_id=decision.decision_id,
            success=True,
            e2e_latency=_ms(800),
            completion_tokens=30,
        )
    )
    assert dataplane.load.in_flight(decision.endpoint) == 0
    metrics = dataplane.telemetry.metrics
    served = metrics.requests.labels(
        "llm/chat", decision.model, decision.pool, decision.endpoint, "success"
    )
    assert served._value.get() == 1
    (arm,) = [a for a in dataplane.core.stats("llm/chat")["llm/chat"].arms if a.rewards]
    assert set(arm.means) == {"latency", "energy", "cost"}  # quality is not assumed


async def test_submit_feedback_is_idempotent_per_source(stub: router_pb2_grpc.RouterStub) -> None:
    decision = await stub.Route(router_pb2.RouteRequest(model="fleet/chat", prompt="Hello"))
    grade = router_pb2.QualityFeedback(decision_id=decision.decision_id, score=0.7, source="judge")
    first = await stub.SubmitFeedback(grade)
    assert (first.status, first.pool, first.quality) == (
        router_pb2.FeedbackAck.ACCEPTED,
        decision.pool,
        pytest.approx(0.7),
    )
    again = await stub.SubmitFeedback(grade)
    assert again.status == router_pb2.FeedbackAck.DUPLICATE
    by_request = router_pb2.QualityFeedback(request_id=decision.request_id, label="good")
    assert (await stub.SubmitFeedback(by_request)).status == router_pb2.FeedbackAck.ACCEPTED
    with pytest.raises(grpc.aio.AioRpcError) as conflict:
        await stub.SubmitFeedback(
            router_pb2.QualityFeedback(decision_id=decision.decision_id, score=0.1, source="judge")
        )
    assert conflict.value.code() == grpc.StatusCode.ALREADY_EXISTS


@pytest.mark.parametrize(
    ("grade", "code", "fragment"),
    [
        (router_pb2.QualityFeedback(decision_id="nope", score=1.0), grpc.StatusCode.NOT_FOUND, ""),
        (router_pb2.QualityFeedback(score=1.0), grpc.StatusCode.INVALID_ARGUMENT, "required"),
        (
            router_pb2.QualityFeedback(decision_id="x", score=1.5),
            grpc.StatusCode.INVALID_ARGUMENT,
            "score must be in [0, 1]",
        ),
        (
            router_pb2.QualityFeedback(decision_id="x", label="meh"),
            grpc.StatusCode.INVALID_ARGUMENT,
            "label must be one of",
        ),
        (
            router_pb2.QualityFeedback(decision_id="x", score=1.0, label="good"),
            grpc.StatusCode.INVALID_ARGUMENT,
            "exactly one of",
        ),
        (
            router_pb2.QualityFeedback(decision_id="x", score=1.0, source="bot"),
            grpc.StatusCode.INVALID_ARGUMENT,
            "source must be one of",
        ),
    ],
    ids=["unknown", "no-id", "score-out-of-range", "bad-label", "score-and-label", "bad-source"],
)
async def test_bad_quality_feedback_gets_a_status_and_a_reason(
    stub: router_pb2_grpc.RouterStub,
    grade: router_pb2.QualityFeedback,
    code: grpc.StatusCode,
    fragment: str,
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.SubmitFeedback(grade)
    assert raised.value.code() == code
    assert fragment in (raised.value.details() or "")


async def test_route_takes_an_objective_override(stub: router_pb2_grpc.RouterStub) -> None:
    override = config_pb2.Objective(energy=1.0)
    decision = await stub.Route(
        router_pb2.RouteRequest(model="fleet/chat", prompt="Hello", objective=override)
    )
    assert decision.pool
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.Route(
            router_pb2.RouteRequest(
                model="fleet/chat", prompt="Hello", objective=config_pb2.Objective(energy=2.0)
            )
        )
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_feedback_needs_the_token_when_the_router_has_one(
    example_config: config_pb2.RouterConfig, tmp_path: Path
) -> None:
    token = tmp_path / "token"
    token.write_text("s3cret\n")
    dataplane = DataPlane(
        Fleet.from_config(example_config), scrape=False, feedback_token=TokenFile(token)
    )
    server = RouterServer(dataplane, "127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = router_pb2_grpc.RouterStub(channel)
            decision = await stub.Route(router_pb2.RouteRequest(model="fleet/chat", prompt="Hi"))
            grade = router_pb2.QualityFeedback(decision_id=decision.decision_id, score=1.0)
            for metadata in ((), (("authorization", "Bearer wrong"),)):
                with pytest.raises(grpc.aio.AioRpcError) as raised:
                    await stub.SubmitFeedback(grade, metadata=metadata)
                assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
            with pytest.raises(grpc.aio.AioRpcError) as raised:  # Report's quality too
                await stub.Report(
                    router_pb2.Feedback(decision_id=decision.decision_id, success=True, quality=1)
                )
            assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
            token.write_text("rotated")  # re-read on change
            ack = await stub.SubmitFeedback(grade, metadata=(("authorization", "Bearer rotated"),))
            assert ack.status == router_pb2.FeedbackAck.ACCEPTED
    finally:
        await server.drain(0)
    refused = dataplane.telemetry.metrics.feedback.labels("", "user", "unauthorized")
    assert refused._value.get() == 3
