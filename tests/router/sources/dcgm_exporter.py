"""A fake NVIDIA DCGM exporter on 127.0.0.1: real dcgm-exporter exposition text (Kubernetes pod
attribution on), one node with four GPUs, two of them held by one model-server pod."""

from __future__ import annotations

from aiohttp import web

_GPU = (
    'gpu="{gpu}",UUID="GPU-8a6c3f2e-5d1b-4e9a-9c7f-0{gpu}d1e2f3a4b5c",pci_bus_id="00000000:{bus}:00.0",'
    'device="nvidia{gpu}",modelName="NVIDIA H100 80GB HBM3",Hostname="h100-node-1",'
    'DCGM_FI_DRIVER_VERSION="550.90.07"'
)
_POD = ',container="vllm",namespace="{namespace}",pod="{pod}"'
# (gpu, pci bus, namespace, pod or "", watts, SM clock)
GPUS = (
    (0, "18", "llm", "llama-70b-decode-0", 312.5, 1980),
    (1, "2A", "llm", "llama-70b-decode-0", 298.25, 1980),
    (2, "3A", "llm", "llama-70b-decode-1", 101.0, 1755),
    (3, "5D", "", "", 61.0, 345),
)
POD_WATTS = 312.5 + 298.25  # llama-70b-decode-0's two GPUs


def _labels(gpu: int, bus: str, namespace: str, pod: str) -> str:
    text = _GPU.format(gpu=gpu, bus=bus)
    return text + (_POD.format(namespace=namespace, pod=pod) if pod else "")


def exposition(carbon_intensity: float | None = None) -> str:
    """The exporter's /metrics body; with a grid intensity series when given."""
    lines = [
        "# HELP DCGM_FI_DEV_SM_CLOCK SM clock frequency (in MHz).",
        "# TYPE DCGM_FI_DEV_SM_CLOCK gauge",
        *(f"DCGM_FI_DEV_SM_CLOCK{{{_labels(g, b, n, p)}}} {c}" for g, b, n, p, _, c in GPUS),
        "# HELP DCGM_FI_DEV_POWER_USAGE Power draw (in W).",
        "# TYPE DCGM_FI_DEV_POWER_USAGE gauge",
        *(f"DCGM_FI_DEV_POWER_USAGE{{{_labels(g, b, n, p)}}} {w}" for g, b, n, p, w, _ in GPUS),
        "# HELP DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION Total energy consumption since boot (in mJ).",
        "# TYPE DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION counter",
        *(
            f"DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION{{{_labels(g, b, n, p)}}} {int(w * 86400e3)}"
            for g, b, n, p, w, _ in GPUS
        ),
    ]
    if carbon_intensity is not None:
        lines += [
            "# HELP grid_carbon_intensity_grams_per_kwh Grid carbon intensity.",
            "# TYPE grid_carbon_intensity_grams_per_kwh gauge",
            f'grid_carbon_intensity_grams_per_kwh{{zone="DE"}} {carbon_intensity}',
            'grid_carbon_intensity_grams_per_kwh{zone="FR"} 56',
        ]
    return "\n".join(lines) + "\n"


class FakeExporter:
    """Serves `exposition()` at /metrics until stopped; `body` can be changed while running."""

    def __init__(self, carbon_intensity: float | None = None) -> None:
        self.body = exposition(carbon_intensity)
        self.requests = 0
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def _metrics(self, _: web.Request) -> web.Response:
        self.requests += 1
        return web.Response(text=self.body, content_type="text/plain")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}/metrics"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
