"""GPUPool (cluster-scoped): a class of GPU nodes with their power and price figures."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from fleetroute.crds.common import (
    DEFAULT_GPU_RESOURCE,
    GPU_PRODUCT_LABEL,
    ApiModel,
    Condition,
    Toleration,
    cel,
    validations,
)

DecimalString = Annotated[
    str, Field(pattern=r"^[0-9]+(\.[0-9]+)?$", max_length=20, description="A decimal number.")
]


class GpuPower(ApiModel):
    """Power draw of one GPU, used for energy accounting until it is measured."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": validations(
            cel("self.maxWatts >= self.idleWatts", "maxWatts must be at least idleWatts")
        )
    }

    idle_watts: int = Field(ge=0, le=5000, description="Watts drawn by an idle GPU.")
    max_watts: int = Field(gt=0, le=5000, description="Watts drawn at full load (TDP).")


class MetricSource(ApiModel):
    """A value read from a Prometheus text exposition: the sum of the matching series."""

    url: str = Field(
        max_length=2048,
        pattern=r"^https?://\S+$",
        description="URL of the exposition, e.g. http://carbon-exporter.monitoring:9100/metrics.",
    )
    metric: str = Field(
        max_length=200,
        pattern=r"^[a-zA-Z_:][a-zA-Z0-9_:]*$",
        description="Metric name.",
    )
    labels: dict[str, str] | None = Field(
        default=None, max_length=16, description="Label values a series must carry to count."
    )


class DcgmExporter(ApiModel):
    """The NVIDIA DCGM exporter on the pool's nodes (a DaemonSet, usually host port 9400), read
    for DCGM_FI_DEV_POWER_USAGE of each model-server pod's GPUs."""

    port: int = Field(default=9400, ge=1, le=65535, description="Port on the node's IP.")
    path: str = Field(
        default="/metrics", max_length=200, pattern=r"^/\S*$", description="Metrics path."
    )


def default_tolerations() -> list[Toleration]:
    """Tolerate the NoSchedule taint the NVIDIA GPU operator puts on GPU nodes."""
    return [Toleration(key=DEFAULT_GPU_RESOURCE, operator="Exists", effect="NoSchedule")]


class GPUPoolSpec(ApiModel):
    """Which nodes form the pool, and what their GPUs cost in power and money."""

    product: str = Field(
        min_length=1,
        max_length=63,
        pattern=r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$",
        description=f"GPU product, as in the node label {GPU_PRODUCT_LABEL}.",
    )
    node_selector: dict[str, str] | None = Field(
        default=None,
        max_length=16,
        description=f"More node labels to match, besides {GPU_PRODUCT_LABEL}=<product>.",
    )
    gpu_resource: str = Field(
        default=DEFAULT_GPU_RESOURCE,
        max_length=253,
        pattern=r"^[a-z0-9.\-]+/[a-z0-9.\-]+$",
        description="Extended resource name of the GPUs.",
    )
    tolerations: list[Toleration] = Field(
        default_factory=default_tolerations,
        max_length=16,
        description="Tolerations given to model-server pods scheduled on this pool.",
    )
    power: GpuPower
    cost_per_gpu_hour: DecimalString | None = Field(
        default=None, description="US dollars per GPU-hour."
    )
    carbon_intensity: int | None = Field(
        default=None, ge=0, le=2000, description="gCO2e per kWh of the grid feeding the GPUs."
    )
    carbon_intensity_from: MetricSource | None = Field(
        default=None,
        description="A metric giving the grid's current gCO2e per kWh; carbonIntensity is the "
        "fallback while it cannot be read.",
    )
    dcgm_exporter: DcgmExporter | None = Field(
        default=None,
        description="Read GPU power from the DCGM exporter on each model-server pod's node.",
    )

    def selector(self) -> dict[str, str]:
        """The full node selector: the product label and any extra labels."""
        return {**(self.node_selector or {}), GPU_PRODUCT_LABEL: self.product}


class GPUPoolStatus(ApiModel):
    """What the operator found on the nodes the pool selects."""

    observed_generation: int | None = Field(default=None, ge=0)
    nodes: int = Field(default=0, ge=0, description="Ready, schedulable nodes that match.")
    capacity: int = Field(default=0, ge=0, description="GPUs allocatable on those nodes.")
    allocated: int = Field(default=0, ge=0, description="GPUs requested by pods bound to them.")
    free: int = Field(default=0, ge=0, description="capacity - allocated, never below zero.")
    conditions: list[Condition] = Field(default_factory=list, max_length=16)


class GPUPool(ApiModel):
    """A class of GPU nodes."""

    spec: GPUPoolSpec
    status: GPUPoolStatus | None = None
