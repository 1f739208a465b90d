"""The latency and power model of a simulated model server (see sim/README.md).

prefill_s(tokens) = 2 * params * tokens / (gpus * peak_flops * MFU)          compute-bound
decode_step_s(b)  = 2 * params / (gpus * mem_bandwidth * MBU) * (1 + BATCH_COST * (b - 1))
power_watts(b)    = gpus * (idle + (max - idle) * u),  u = 0 when idle, else
                    min(1, U_BUSY + (1 - U_BUSY) * b / max_batch)
All times are multiplied by `speed` (1 = the model's figures, 0 = instant).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MFU = 0.4  # model FLOPs utilisation during prefill
MBU = 0.6  # memory-bandwidth utilisation during decode
BATCH_COST = 0.02  # extra step time per additional sequence in the batch
U_BUSY = 0.5  # utilisation of a GPU serving one sequence
KV_TRANSFER_S_PER_1K_TOKENS = 0.002  # remote prefill: moving the KV cache to the decoder


@dataclass(frozen=True)
class GpuSpec:
    """Dense bf16 peak and memory bandwidth of one GPU, with default power figures."""

    tflops: float
    mem_tbps: float
    idle_watts: float
    max_watts: float


GPUS: dict[str, GpuSpec] = {
    "H100": GpuSpec(989.0, 3.35, 70.0, 700.0),
    "A100": GpuSpec(312.0, 2.0, 50.0, 400.0),
    "L40S": GpuSpec(362.0, 0.86, 35.0, 350.0),
    "A10G": GpuSpec(125.0, 0.6, 25.0, 150.0),
    "L4": GpuSpec(121.0, 0.3, 16.0, 72.0),
}
DEFAULT_GPU = "L4"


def gpu_spec(product: str) -> GpuSpec:
    """The spec of a GPU product name (nvidia.com/gpu.product or a short name like 'H100')."""
    upper = product.upper()
    for name, spec in GPUS.items():
        if name in upper:
            return spec
    return GPUS[DEFAULT_GPU]


def model_billions(model: str) -> float:
    """Parameters in billions from a model name ('Llama-3.1-70B' -> 70); 7 when unstated."""
    match = re.search(r"(\d+(?:\.\d+)?)[bB](?![a-zA-Z])", model)
    return float(match.group(1)) if match else 7.0


@dataclass(frozen=True)
class ServerModel:
    """Timing and power of one simulated replica."""

    params_b: float
    gpu: GpuSpec
    gpus: int = 1
    idle_watts: float = 0.0
    max_watts: float = 0.0
    max_batch: int = 32
    speed: float = 1.0

    @classmethod
    def of(
        cls,
        model: str,
        product: str,
        *,
        gpus: int = 1,
        idle_watts: float = 0.0,
        max_watts: float = 0.0,
        max_batch: int = 32,
        speed: float = 1.0,
    ) -> ServerModel:
        spec = gpu_spec(product)
        return cls(
            params_b=model_billions(model),
            gpu=spec,
            gpus=max(gpus, 1),
            idle_watts=idle_watts or spec.idle_watts,
            max_watts=max_watts or spec.max_watts,
            max_batch=max(max_batch, 1),
            speed=max(speed, 0.0),
        )

    def prefill_s(self, tokens: int) -> float:
        flops = 2.0 * self.params_b * 1e9 * max(tokens, 0)
        return self.speed * flops / (self.gpus * self.gpu.tflops * 1e12 * MFU)

    def decode_step_s(self, batch: int) -> float:
        weights = 2.0 * self.params_b * 1e9
        base = weights / (self.gpus * self.gpu.mem_tbps * 1e12 * MBU)
        return self.speed * base * (1.0 + BATCH_COST * max(batch - 1, 0))

    def kv_transfer_s(self, tokens: int) -> float:
        return self.speed * KV_TRANSFER_S_PER_1K_TOKENS * tokens / 1000.0

    def utilisation(self, batch: int) -> float:
        if batch <= 0:
            return 0.0
        return min(1.0, U_BUSY + (1.0 - U_BUSY) * batch / self.max_batch)

    def power_watts(self, batch: int) -> float:
        """Power of the whole replica (all its GPUs)."""
        per_gpu = self.idle_watts + (self.max_watts - self.idle_watts) * self.utilisation(batch)
        return self.gpus * per_gpu
