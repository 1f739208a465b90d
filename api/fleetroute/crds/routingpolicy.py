"""RoutingPolicy (namespaced): a model alias clients call and how to choose among its pools."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from fleetroute.crds.common import ApiModel, Condition, DnsLabel, Duration, cel, validations

AlgorithmName = Literal[
    "linucb", "thompson", "epsilon-greedy", "random", "round-robin", "static", "least-loaded"
]


class Candidate(ApiModel):
    """A ModelPool the policy may choose; a prefill/decode pair is named by its decode pool."""

    model_pool: DnsLabel


class Objective(ApiModel):
    """Weights of the reward the policy maximises."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": validations(
            cel(
                "self.quality + self.latency + self.energy + self.cost > 0.0",
                "objective weights must not all be zero",
            )
        )
    }

    quality: float = Field(default=0.0, ge=0, le=1)
    latency: float = Field(default=0.0, ge=0, le=1)
    energy: float = Field(default=0.0, ge=0, le=1)
    cost: float = Field(default=0.0, ge=0, le=1)


class Slo(ApiModel):
    """Per-request service-level objectives."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": validations(
            cel(
                "!has(self.ttft) || duration(self.ttft) > duration('0s')",
                "slo.ttft must be positive",
            ),
            cel(
                "!has(self.tpot) || duration(self.tpot) > duration('0s')",
                "slo.tpot must be positive",
            ),
        )
    }

    ttft: Duration | None = Field(default=None, description="Time to first token.")
    tpot: Duration | None = Field(default=None, description="Time per output token.")


class AlgorithmParameters(ApiModel):
    """Parameters of the selection algorithm; each applies to the algorithms named."""

    alpha: float | None = Field(
        default=None, ge=0, le=100, description="linucb: width of the confidence bound."
    )
    epsilon: float | None = Field(
        default=None, ge=0, le=1, description="epsilon-greedy: share of random choices."
    )
    exploration: float | None = Field(
        default=None, ge=0, le=100, description="thompson: scale of the posterior sample."
    )
    regularization: float | None = Field(
        default=None, gt=0, le=1000, description="linucb/thompson: ridge prior strength."
    )
    discount: float | None = Field(
        default=None, gt=0, le=1, description="Forgetting factor per update for drift; 1 = none."
    )
    seed: int | None = Field(default=None, ge=0, le=2**31 - 1, description="Random seed.")


def _only_for(parameter: str, algorithm: str) -> dict[str, str]:
    """A rule that a parameter is set only for the algorithm it belongs to."""
    return cel(
        f"!has(self.parameters) || !has(self.parameters.{parameter}) || self.name == '{algorithm}'",
        f"parameters.{parameter} applies only to {algorithm}",
    )


class Algorithm(ApiModel):
    """Which algorithm chooses, with its parameters."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": validations(
            _only_for("epsilon", "epsilon-greedy"),
            _only_for("alpha", "linucb"),
            _only_for("exploration", "thompson"),
        )
    }

    name: AlgorithmName = "linucb"
    parameters: AlgorithmParameters | None = None


class Disaggregation(ApiModel):
    """When a prefill/decode pair splits a request."""

    min_uncached_prompt_tokens: int = Field(
        default=512,
        ge=0,
        le=1_000_000,
        description="Below this many uncached prompt tokens the decode pool serves alone.",
    )


class RoutingPolicySpec(ApiModel):
    """A model alias, its candidate pools, the objective and how to choose."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": validations(
            cel(
                "duration(self.feedbackWindow) > duration('0s') && "
                "duration(self.feedbackWindow) <= duration('24h')",
                "feedbackWindow must be above 0 and at most 24h",
            )
        )
    }

    model_alias: str = Field(
        min_length=1,
        max_length=256,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/\-]*$",
        description="The `model` value clients send.",
    )
    candidates: list[Candidate] = Field(
        min_length=1,
        max_length=64,
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["modelPool"],
        },
    )
    objective: Objective
    slo: Slo | None = None
    algorithm: Algorithm = Field(default_factory=Algorithm)
    disaggregation: Disaggregation = Field(default_factory=Disaggregation)
    failure_mode: Literal["FailOpen", "FailClose"] = "FailClose"
    feedback_window: Duration = Field(
        default="10m",
        description="How long after a decision quality feedback for it is still learned "
        "(POST /v1/feedback or SubmitFeedback); later feedback is refused as expired.",
    )


class ArmStatus(ApiModel):
    """What the router learned of one candidate."""

    model_pool: str = Field(max_length=63)
    share: str = Field(max_length=16, description="Share of recent decisions, e.g. 0.61.")
    mean_reward: str = Field(max_length=16, description="Mean observed reward, e.g. 0.78.")
    decisions: int | None = Field(
        default=None, ge=0, description="Decisions that chose it, over every router replica."
    )


class ReplicaStatus(ApiModel):
    """One router replica sharing its learning (its learning ConfigMap)."""

    name: str = Field(max_length=253, description="The replica's Pod.")
    last_publish_time: str | None = Field(
        default=None, max_length=40, description="When it last published what it learned."
    )
    sequence: int = Field(default=0, ge=0, description="Its last publish's sequence number.")
    stale: bool = Field(
        default=False, description="It has not published for longer than the operator allows."
    )


class RoutingPolicyStatus(ApiModel):
    """Candidate readiness and a summary of what the router learned."""

    observed_generation: int | None = Field(default=None, ge=0)
    ready_candidates: int = Field(default=0, ge=0)
    top_arm: str | None = Field(default=None, max_length=63)
    arms: list[ArmStatus] = Field(default_factory=list, max_length=64)
    replicas: list[ReplicaStatus] = Field(
        default_factory=list,
        max_length=256,
        description="Router replicas whose learning the arms merge (learning sharing on).",
    )
    conditions: list[Condition] = Field(default_factory=list, max_length=16)


class RoutingPolicy(ApiModel):
    """What clients call, and how to choose."""

    spec: RoutingPolicySpec
    status: RoutingPolicyStatus | None = None
