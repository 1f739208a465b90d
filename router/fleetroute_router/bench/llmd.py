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
from pathlib import Path
from types import ModuleType

import aiohttp

NAME = "llm-d-inference-sim"
ENV = "LLM_D_INFERENCE_SIM"  # an explicit path to the binary wins over the harness
HARNESS = Path(__file__).resolve().parents[3] / "e2e" / "localcluster" / "__init__.py"


class Unavailable(RuntimeError):
    """llm-d-inference-sim cannot be had on this machine (the message says why)."""


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
    explicit = os.environ.get(ENV)
    if explicit:
        return Path(explicit)
    if not HARNESS.exists():
        raise Unavailable(f"set {ENV} (no e2e harness at {HARNESS})")
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
        ttft_ms: int = 50,
        itl_ms: int = 10,
        max_num_seqs: int = 16,
        extra: Sequence[str] = (),
    ) -> None:
        self.binary, self.model = binary, model
        self.port = free_port()
        self.args = [
            str(binary),
            "--port", str(self.port),
            "--model", model,
            "--mode", "random",
            "--time-to-first-token", str(ttft_ms),
            "--inter-token-latency", str(itl_ms),
            "--max-num-seqs", str(max_num_seqs),
            *extra,
        ]  # fmt: skip
        self._process: asyncio.subprocess.Process | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self, timeout_s: float = 20.0) -> None:
        self._process = await asyncio.create_subprocess_exec(
            *self.args, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
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
