"""The Router gRPC service: converts messages to and from the routing core, nothing more."""

from __future__ import annotations

import math
from typing import Any

import grpc

from fleetroute.v1alpha1 import router_pb2, router_pb2_grpc
from fleetroute_router import errors, reward
from fleetroute_router.core import RoutingCore
from fleetroute_router.decisions import Decision
from fleetroute_router.features import RequestInfo, chat_prompt
from fleetroute_router.telemetry.tracing import grpc_span

Context = grpc.aio.ServicerContext[Any, Any]


def request_info(message: router_pb2.RouteRequest) -> RequestInfo:
    """RequestInfo from a RouteRequest; exactly one of prompt and messages must be given."""
    if message.prompt and message.messages:
        raise errors.InvalidRequest("give either prompt or messages, not both")
    if not message.prompt and not message.messages:
        raise errors.InvalidRequest("prompt or messages is required")
    prompt = message.prompt or chat_prompt([(m.role, m.content) for m in message.messages])
    return RequestInfo(
        model=message.model,
        prompt=prompt,
        max_tokens=message.max_tokens,
        stream=message.stream,
        priority=message.priority,
    )


def decision_message(decision: Decision) -> router_pb2.RouteDecision:
    return router_pb2.RouteDecision(
        decision_id=decision.id,
        request_id=decision.request_id,
        policy=decision.policy,
        model=decision.model,
        pool=decision.pool,
        endpoint=decision.endpoint,
        prefill_pool=decision.prefill_pool,
        prefill_endpoint=decision.prefill_endpoint,
        algorithm=decision.algorithm,
        scores=[router_pb2.ArmScore(pool=p, score=s) for p, s in sorted(decision.scores.items())],
    )


def outcome(message: router_pb2.Feedback) -> reward.Outcome:
    """An Outcome from Feedback, rejecting values that cannot be true."""
    quality = message.quality if message.HasField("quality") else None
    energy = message.energy_joules if message.HasField("energy_joules") else None
    if quality is not None and not (0.0 <= quality <= 1.0):
        raise errors.InvalidRequest(f"quality must be in [0, 1], got {quality}")
    if energy is not None and (energy < 0 or not math.isfinite(energy)):
        raise errors.InvalidRequest(
            f"energy_joules must be a finite non-negative number, got {energy}"
        )
    ttft = message.ttft.ToTimedelta().total_seconds() if message.HasField("ttft") else None
    e2e = (
        message.e2e_latency.ToTimedelta().total_seconds()
        if message.HasField("e2e_latency")
        else None
    )
    if (ttft is not None and ttft < 0) or (e2e is not None and e2e < 0):
        raise errors.InvalidRequest("latencies must not be negative")
    if ttft is not None and e2e is not None and ttft > e2e:
        raise errors.InvalidRequest("ttft cannot exceed e2e_latency")
    return reward.Outcome(
        success=message.success,
        ttft_s=ttft,
        e2e_s=e2e,
        prompt_tokens=message.prompt_tokens,
        completion_tokens=message.completion_tokens,
        energy_joules=energy,
        quality=quality,
    )


class RouterService(router_pb2_grpc.RouterServicer):
    """Route and Report over the routing core."""

    def __init__(self, core: RoutingCore) -> None:
        self._core = core

    async def Route(
        self, request: router_pb2.RouteRequest, context: Context
    ) -> router_pb2.RouteDecision:
        with grpc_span("Route", context.invocation_metadata()):
            return decision_message(self._core.route(request_info(request), request.request_id))

    async def Report(self, request: router_pb2.Feedback, context: Context) -> router_pb2.ReportAck:
        scores = self._core.report(request.decision_id, outcome(request))
        return router_pb2.ReportAck(reward=scores.reward)

    async def GetStats(
        self, request: router_pb2.StatsRequest, context: Context
    ) -> router_pb2.RouterStats:
        return router_pb2.RouterStats(
            config_revision=self._core.fleet.config.revision,
            policies=[
                router_pb2.PolicyStats(
                    policy=name,
                    algorithm=algorithm,
                    arms=[
                        router_pb2.ArmStats(
                            pool=a.pool,
                            decisions=a.decisions,
                            share=a.share,
                            rewards=a.rewards,
                            mean_reward=a.mean_reward,
                        )
                        for a in arms
                    ],
                )
                for name, (algorithm, arms) in self._core.stats(request.policy).items()
            ],
        )
