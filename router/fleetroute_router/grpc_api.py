"""The Router gRPC service: converts messages to and from the data plane, nothing more."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import grpc

from fleetroute.v1alpha1 import router_pb2, router_pb2_grpc
from fleetroute_router import errors, objectives, reward
from fleetroute_router.control_auth import authorization
from fleetroute_router.dataplane import DataPlane
from fleetroute_router.decisions import Decision
from fleetroute_router.features import RequestInfo, chat_prompt
from fleetroute_router.unreported import peer_host

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
    message = router_pb2.RouteDecision(
        decision_id=decision.id,
        request_id=decision.request_id,
        policy=decision.policy,
        model=decision.model,
        pool=decision.pool,
        endpoint=decision.endpoint,
        prefill_pool=decision.prefill_pool,
        prefill_endpoint=decision.prefill_endpoint,
        algorithm=decision.algorithm,
    )
    # Added in place: half the cost of building ArmScore messages and copying them in.
    add = message.scores.add
    for pool, score in sorted(decision.scores.items()):
        add(pool=pool, score=score)
    return message


def outcome(message: router_pb2.Feedback) -> reward.Outcome:
    """An Outcome from Feedback, rejecting values that cannot be true."""
    energy = message.energy_joules if message.HasField("energy_joules") else None
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
    )


STATUS = {
    "accepted": router_pb2.FeedbackAck.ACCEPTED,
    "duplicate": router_pb2.FeedbackAck.DUPLICATE,
}


class RouterService(router_pb2_grpc.RouterServicer):
    """Route, Report, SubmitFeedback and GetStats over the data plane.

    `control_checked`: the server authenticates control rpcs (control_auth.ControlAuth), so a
    Report that arrives here may carry quality without the feedback token as well."""

    def __init__(self, dataplane: DataPlane, *, control_checked: bool = False) -> None:
        self._dataplane = dataplane
        self._control_checked = control_checked

    async def Route(
        self, request: router_pb2.RouteRequest, context: Context
    ) -> router_pb2.RouteDecision:
        override = (
            objectives.checked(request.objective) if objectives.is_set(request.objective) else None
        )
        decision = self._dataplane.route_remote(
            request_info(request), request.request_id, override, peer=peer_host(context.peer())
        )
        return decision_message(decision)

    async def Report(self, request: router_pb2.Feedback, context: Context) -> router_pb2.ReportAck:
        measured = outcome(request)
        quality = request.quality if request.HasField("quality") else None
        if quality is not None and not (0.0 <= quality <= 1.0):
            raise errors.InvalidRequest(f"quality must be in [0, 1], got {quality}")
        if not request.decision_id:
            raise errors.InvalidRequest("decision_id is required")
        try:
            finished = self._dataplane.report_remote(request.decision_id, measured)
        except errors.UnknownDecision:
            if quality is None:
                raise
            finished = None  # served elsewhere (the proxy, ext_proc): quality alone is news
        if quality is None:
            value = finished.reward if finished is not None else None
            return router_pb2.ReportAck(reward=value or 0.0)
        reply = self._dataplane.receive_feedback(
            authorization(context),
            authenticated=self._control_checked,
            decision_id=request.decision_id,
            score=quality,
            source=request.quality_source or None,
        )
        weights = reply.decision.weights
        scores = finished.scores if finished is not None else reward.Scores()
        graded = dataclasses.replace(scores, quality=reply.quality)
        value = graded.reward(weights) if weights is not None else None
        return router_pb2.ReportAck(reward=value or 0.0)

    async def SubmitFeedback(
        self, request: router_pb2.QualityFeedback, context: Context
    ) -> router_pb2.FeedbackAck:
        reply = self._dataplane.receive_feedback(
            authorization(context),
            decision_id=request.decision_id,
            request_id=request.request_id,
            score=request.score if request.HasField("score") else None,
            label=request.label or None,
            source=request.source or None,
            metadata=dict(request.metadata),
        )
        return router_pb2.FeedbackAck(
            status=STATUS[reply.result],
            decision_id=reply.decision.id,
            policy=reply.decision.policy,
            pool=reply.decision.pool,
            quality=reply.quality,
        )

    async def GetStats(
        self, request: router_pb2.StatsRequest, context: Context
    ) -> router_pb2.RouterStats:
        dataplane = self._dataplane
        return router_pb2.RouterStats(
            config_revision=dataplane.fleet.config.revision,
            policies=[
                router_pb2.PolicyStats(
                    policy=name,
                    algorithm=summary.algorithm,
                    quality_observations=summary.quality_observations,
                    quality_weight=summary.quality_weight,
                    arms=[
                        router_pb2.ArmStats(
                            pool=a.pool,
                            decisions=a.decisions,
                            share=a.share,
                            rewards=a.rewards,
                            mean_reward=a.mean_reward,
                            observations=a.observations,
                            mean_scores=a.means,
                        )
                        for a in summary.arms
                    ],
                )
                for name, summary in dataplane.core.stats(request.policy).items()
            ],
        )
