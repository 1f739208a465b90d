"""ModelPool (namespaced): one model served by vLLM or SGLang on a GPUPool, or adopted."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from fleetroute.crds.common import (
    ApiModel,
    Condition,
    DnsLabel,
    HostPort,
    LabelSelector,
    cel,
    validations,
)

Role = Literal["unified", "prefill", "decode"]
Engine = Literal["vllm", "sglang"]


class EnvVar(ApiModel):
    """A literal environment variable for the model server."""

    name: str = Field(min_length=1, max_length=256, pattern=r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
    value: str = Field(default="", max_length=4096)


class ServerResources(ApiModel):
    """CPU and memory requests of one replica (GPUs come from gpusPerReplica)."""

    cpu: str | None = Field(default=None, max_length=32, pattern=r"^[0-9]+(\.[0-9]+)?m?$")
    memory: str | None = Field(
        default=None, max_length=32, pattern=r"^[0-9]+(\.[0-9]+)?([EPTGMk]i?)?$"
    )


class Deploy(ApiModel):
    """Run the model servers as a Deployment on a GPUPool."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": validations(
            cel(
                "!(self.runAsNonRoot && has(self.runAsUser) && self.runAsUser == 0)",
                "runAsUser 0 is root, which runAsNonRoot forbids",
            ),
        )
    }

    gpu_pool: DnsLabel = Field(description="Name of the GPUPool to run on.")
    replicas: int = Field(default=1, ge=0, le=1024)
    gpus_per_replica: int = Field(default=1, ge=1, le=64)
    image: str = Field(min_length=1, max_length=512, description="Model-server image.")
    args: list[str] = Field(default_factory=list, max_length=128)
    env: list[EnvVar] = Field(default_factory=list, max_length=64)
    port: int = Field(default=8000, ge=1, le=65535, description="Port of the OpenAI API.")
    resources: ServerResources | None = None
    # The common vLLM and SGLang images (vllm/vllm-openai, lmsysorg/sglang) run as root and keep
    # their caches under /root, and the kubelet refuses to start a root image under
    # runAsNonRoot: so it is off by default, and on for images that allow it (or with runAsUser).
    run_as_non_root: bool = Field(
        default=False,
        description=(
            "Refuse to start the servers as root (pod securityContext.runAsNonRoot). Off by "
            "default because the vLLM and SGLang images run as root; set it with runAsUser (and a "
            "writable HF_HOME) to run them as another user."
        ),
    )
    run_as_user: int | None = Field(
        default=None,
        ge=0,
        le=2147483647,
        description="UID the servers run as (pod securityContext.runAsUser); default: the image's.",
    )


class Adopt(ApiModel):
    """Route to model servers that already run, found by selector or given as addresses."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": validations(
            cel(
                "has(self.selector) != has(self.endpoints)",
                "exactly one of adopt.selector or adopt.endpoints must be set",
            ),
            cel(
                "!has(self.selector) || has(self.port)",
                "adopt.port is required with adopt.selector",
            ),
        )
    }

    selector: LabelSelector | None = Field(
        default=None, description="Pods in the ModelPool's namespace that serve the model."
    )
    endpoints: list[HostPort] | None = Field(
        default=None, min_length=1, max_length=256, description="Static host:port addresses."
    )
    port: int | None = Field(default=None, ge=1, le=65535, description="Port on selected pods.")
    gpu_product: str | None = Field(
        default=None, max_length=63, description="GPU product, for energy and cost figures."
    )
    gpu_pool: DnsLabel | None = Field(
        default=None, description="GPUPool whose power and price figures apply."
    )
    gpus_per_replica: int = Field(default=1, ge=1, le=64)


class ModelPoolSpec(ApiModel):
    """A model, its engine and role, and where its servers come from."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": validations(
            cel(
                "has(self.deploy) != has(self.adopt)", "exactly one of deploy or adopt must be set"
            ),
            cel(
                "self.role == 'unified' || has(self.peerPool)",
                "a prefill or decode pool must name its peerPool",
            ),
            cel(
                "self.role != 'unified' || !has(self.peerPool)",
                "peerPool is only for prefill or decode pools",
            ),
        )
    }

    model: str = Field(
        min_length=1, max_length=256, description="Model name the servers answer to."
    )
    engine: Engine = "vllm"
    role: Role = "unified"
    peer_pool: DnsLabel | None = Field(
        default=None, description="The ModelPool of the other role in a prefill/decode pair."
    )
    scheme: Literal["http", "https"] = Field(
        default="http",
        description="How the router reaches the servers' OpenAI API and /metrics: https is "
        "verified against the router's CA bundle (fleetroute serve --upstream-ca-file).",
    )
    deploy: Deploy | None = None
    adopt: Adopt | None = None


class EndpointStatus(ApiModel):
    """One server address and whether it is ready."""

    address: str = Field(max_length=261)
    ready: bool = False
    pod: str | None = Field(default=None, max_length=253, description="Pod serving it.")
    node_ip: str | None = Field(default=None, max_length=45, description="Its node's IP.")


class ModelPoolStatus(ApiModel):
    """Replicas, endpoints and conditions as the operator last saw them."""

    observed_generation: int | None = Field(default=None, ge=0)
    replicas: int = Field(default=0, ge=0, description="Desired replicas (or adopted servers).")
    ready_replicas: int = Field(default=0, ge=0)
    gpu_product: str | None = Field(default=None, max_length=63)
    endpoints: list[EndpointStatus] = Field(default_factory=list, max_length=1024)
    conditions: list[Condition] = Field(default_factory=list, max_length=16)


class ModelPool(ApiModel):
    """One model served on one GPUPool, or adopted."""

    spec: ModelPoolSpec
    status: ModelPoolStatus | None = None
