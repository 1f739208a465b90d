"""llm-d-inference-sim processes: find the binary (through the e2e harness, which builds it)."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import signal
import socket
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import aiohttp

NAME = "llm-d-inference-sim"
BINARY_ENV = "LLM_D_INFERENCE_SIM"  # an explicit path to the binary wins over the harness
HARNESS = Path(__file__).resolve().parents[3] / "e2e" / "localcluster" / "__init__.py"


class Unavailable(RuntimeError):
    """llm-d-inference-sim cannot be had on this machine (the message says why)."""


@dataclass(frozen=True)
class LatencyProfile:
    """One GPU's latencies for a 7-8B model at batch size 1: the middle of the ranges in the
    sim's docs/latency-profiles.md (FP16, 256-token prompt), for its constant and per-token
    calculators."""

    gpu: str
    ttft_ms: float
    itl_ms: float
    prefill_overhead_ms: float
    prefill_per_token_us: float


# docs/latency-profiles.md, "7-8B" rows: TTFT 60-120 / 100-180 / 180-280 ms, ITL 10-15 /
# 15-25 / 25-35 ms, prefill-overhead 25-40 ms, prefill-time-per-token 0.15-0.30 / 0.30-0.55 /
# 0.65-1.00 ms (overhead + 256 x per-token lands on the TTFT row).
PROFILES = {
    "H100": LatencyProfile("NVIDIA-H100-80GB-HBM3", 90, 12, 30, 250),
    "A100": LatencyProfile("NVIDIA-A100-SXM4-80GB", 140, 20, 32, 420),
    "L40S": LatencyProfile("NVIDIA-L40S", 230, 30, 32, 800),
}
# KV transfer for P/D over RDMA (docs: setup 0.5-2 ms; 8B over InfiniBand NDR ~3 us/token).
KV_TRANSFER_MS = 2.0
KV_TRANSFER_PER_TOKEN_US = 3.0


# The sim's default context (1,024 tokens) refuses the long prompts P/D and prefix tests send.
MAX_MODEL_LEN = 32768
# Its KV cache wants the pod's IP (it names the engine in KV events): loopback here.
ENV = {"POD_IP": "127.0.0.1"}


def duration(ms: float) -> str:
    """A Go duration as the sim's flags want it (whole microseconds)."""
    return f"{round(ms * 1000)}us"


def _harness() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "localcluster", HARNESS, submodule_search_locations=[str(HARNESS.parent)]
    )
    if spec is None or spec.loader is None:
        raise Unavailable(f"no e2e harness at {HARNESS}")
    module = sys.modules.get("localcluster")
    if module is None:
        module = importlib.util.module_from_spec(spec)
        sys.modules["localcluster"] = module
        spec.loader.exec_module(module)
    return module


def find_binary(build: bool = True) -> Path:
    """The binary's path; builds it through e2e/localcluster/ when missing. Raises Unavailable."""
    explicit = os.environ.get(BINARY_ENV)
    if explicit:
        return Path(explicit)
    if not HARNESS.exists():
        raise Unavailable(f"set {BINARY_ENV} (no e2e harness at {HARNESS})")
    harness = _harness()
    try:
        cluster = harness.Cluster()
        path = Path(cluster.binary(NAME))
        if not path.exists() and build:
            cluster.build([NAME])
    except harness.ClusterError as error:
        raise Unavailable(str(error)) from error
    if not path.exists():
        raise Unavailable(f"{path} was not built")
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class SimProcess:
    """One llm-d-inference-sim process on 127.0.0.1 serving `model`."""

    def __init__(
        self,
        binary: Path,
        model: str,
        *,
        ttft_ms: float = 50,
        itl_ms: float = 10,
        max_num_seqs: int = 16,
        profile: LatencyProfile | None = None,
        per_token: bool = False,
        scale: float = 1.0,
        kvcache: bool = False,
        failure_rate: float = 0.0,
        port: int = 0,
        extra: Sequence[str] = (),
    ) -> None:
        """`profile` (scaled by `scale`) replaces ttft_ms/itl_ms; `per_token` makes the time to
        first token grow with the uncached prompt tokens (prefix-cache hits shorten it);
        `kvcache` turns the sim's KV/prefix cache on; `failure_rate` (percent) answers that
        share of requests with an injected server error."""
        self.binary, self.model = binary, model
        self.port = port or free_port()
        if profile is not None:
            ttft_ms, itl_ms = profile.ttft_ms, profile.itl_ms
        latency = ["--inter-token-latency", duration(itl_ms * scale)]
        if per_token:
            overhead = profile.prefill_overhead_ms if profile else ttft_ms / 3
            per_token_us = profile.prefill_per_token_us if profile else ttft_ms * 2000 / 3 / 256
            latency += [
                "--latency-calculator", "per-token",
                "--prefill-overhead", duration(overhead * scale),
                "--prefill-time-per-token", duration(per_token_us * scale / 1000),
                "--kv-cache-transfer-time-per-token", duration(KV_TRANSFER_PER_TOKEN_US / 1000),
            ]  # fmt: skip
        else:
            latency += [
                "--latency-calculator", "constant",
                "--time-to-first-token", duration(ttft_ms * scale),
                "--kv-cache-transfer-latency", duration(KV_TRANSFER_MS * scale),
            ]  # fmt: skip
        options = ["--enable-kvcache"] if kvcache else []
        if failure_rate:
            options += [
                "--failure-injection-rate", f"{failure_rate:g}", "--failure-types", "server_error"
            ]  # fmt: skip
        self.args = [
            str(binary),
            "--port", str(self.port),
            "--model", model,
            "--mode", "random",
            "--force-dummy-tokenizer",
            "--max-num-seqs", str(max_num_seqs),
            "--max-model-len", str(MAX_MODEL_LEN),
            *latency,
            *options,
            *extra,
        ]  # fmt: skip
        self._process: asyncio.subprocess.Process | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self, timeout_s: float = 20.0) -> None:
        self._process = await asyncio.create_subprocess_exec(
            *self.args,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            env={**os.environ, **ENV},
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        async with aiohttp.ClientSession() as session:
            while loop.time() < deadline:
                with contextlib.suppress(aiohttp.ClientError):
                    async with session.get(f"http://{self.address}/v1/models") as response:
                        if response.status == 200:
                            return
                await asyncio.sleep(0.1)
        await self.stop()
        raise Unavailable(f"{NAME} did not answer on {self.address} within {timeout_s}s")

    def pause(self) -> None:
        """Freeze the process: it accepts connections but never answers (a hang)."""
        if self._process is not None:
            self._process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self._process is not None:
            self._process.send_signal(signal.SIGCONT)

    async def stop(self) -> None:
        """Kill the process (a crash, as clients see it) and reap it."""
        process, self._process = self._process, None
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGCONT)
            process.kill()
        await process.wait()
