"""A test bed for the data plane: simulated servers on free ports, a config over them, a proxy."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, Protocol

import aiohttp
import pytest
from google.protobuf import duration_pb2
from multidict import CIMultiDict

from fleetroute.v1alpha1 import config_pb2
from fleetroute_router.auth import TokenFile
from fleetroute_router.bench import llmd
from fleetroute_router.dataplane import DataPlane
from fleetroute_router.fleet import Fleet
from fleetroute_router.proxy.app import Limits, ProxyServer
from fleetroute_router.proxy.upstream import Timeouts
from fleetroute_router.sim.model import ServerModel
from fleetroute_router.sim.server import SimServer

SPEED = 0.01  # simulated latencies at 1/100 of the modelled GPU figures
ROLES = {
    "unified": config_pb2.ROLE_UNIFIED,
    "prefill": config_pb2.ROLE_PREFILL,
    "decode": config_pb2.ROLE_DECODE,
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def eventually(check: Callable[[], bool], within: float = 5.0) -> bool:
    """Poll check until it holds (True) or the timeout passes (False)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while loop.time() < deadline:
        if check():
            return True
        await asyncio.sleep(0.02)
    return check()


class Bed:
    """Simulated pools, policies, and the data plane + proxy serving them."""

    def __init__(self) -> None:
        self.sims: dict[str, SimServer] = {}
        self.config = config_pb2.RouterConfig()
        self.dataplane: DataPlane | None = None
        self.proxy: ProxyServer | None = None
        self.session: aiohttp.ClientSession | None = None

    async def pool(
        self,
        name: str,
        model: str = "test/model-8B",
        count: int = 1,
        *,
        role: str = "unified",
        peer: str = "",
        product: str = "NVIDIA-L4",
        engine: int = config_pb2.ENGINE_VLLM,
        dead: int = 0,
        ready: bool = True,
        speed: float = SPEED,
        max_batch: int = 32,
    ) -> list[SimServer]:
        """Start `count` servers (plus `dead` addresses nobody listens on) as one pool."""
        servers = []
        timing = ServerModel.of(model, product, speed=speed, max_batch=max_batch)
        for _ in range(count):
            server = SimServer(model, timing, role=role, engine="sglang" if engine == 2 else "vllm")
            await server.start()
            self.sims[server.address] = server
            servers.append(server)
        pool = self.config.pools.add(
            name=name,
            model=model,
            engine=engine,
            role=ROLES[role],
            peer_pool=peer,
            gpus_per_replica=1,
            gpu=config_pb2.GpuFigures(product=product, idle_watts=16, max_watts=72),
        )
        for server in servers:
            pool.endpoints.add(address=server.address, ready=ready)
        for _ in range(dead):
            pool.endpoints.add(address=f"127.0.0.1:{free_port()}", ready=ready)
        return servers

    def external_pool(
        self, name: str, model: str, addresses: list[str], *, role: str = "unified", peer: str = ""
    ) -> None:
        """A pool of servers this bed did not start (e.g. llm-d-inference-sim processes)."""
        pool = self.config.pools.add(
            name=name,
            model=model,
            role=ROLES[role],
            peer_pool=peer,
            gpus_per_replica=1,
            gpu=config_pb2.GpuFigures(product="NVIDIA-L4", idle_watts=16, max_watts=72),
        )
        for address in addresses:
            pool.endpoints.add(address=address, ready=True)

    def policy(
        self,
        alias: str,
        candidates: list[str],
        *,
        algorithm: str = "round-robin",
        failure_mode: int = config_pb2.FAIL_CLOSE,
        min_uncached_prompt_tokens: int = 0,
        ttft_s: float = 0.0,
        tpot_s: float = 0.0,
        objective: config_pb2.Objective | None = None,
        window_s: float = 0.0,
        parameters: dict[str, float] | None = None,
    ) -> None:
        policy = self.config.policies.add(
            name=alias,
            model_alias=alias,
            candidates=candidates,
            objective=objective or config_pb2.Objective(quality=1, latency=1),
            algorithm=config_pb2.Algorithm(name=algorithm, parameters=parameters or {}),
            failure_mode=failure_mode,  # type: ignore[arg-type]
            min_uncached_prompt_tokens=min_uncached_prompt_tokens,
        )
        if ttft_s:
            policy.slo.ttft.CopyFrom(duration_pb2.Duration(nanos=int(ttft_s * 1e9)))
        if tpot_s:
            policy.slo.tpot.CopyFrom(duration_pb2.Duration(nanos=int(tpot_s * 1e9)))
        if window_s:
            policy.feedback_window.CopyFrom(duration_pb2.Duration(nanos=int(window_s * 1e9)))

    async def serve(
        self,
        *,
        timeouts: Timeouts | None = None,
        limits: Limits | None = None,
        picker_config: dict[str, Any] | None = None,
        scrape: bool = True,
        feedback_token: TokenFile | None = None,
    ) -> ProxyServer:
        self.dataplane = DataPlane(
            Fleet.from_config(self.config),
            picker_config=picker_config,
            scrape=scrape,
            scrape_interval_s=0.02,
            feedback_token=feedback_token,
        )
        self.dataplane.start()
        self.proxy = ProxyServer(
            self.dataplane,
            "127.0.0.1:0",
            limits=limits,
            timeouts=timeouts or Timeouts(connect_s=0.5, first_byte_s=2.0, idle_s=2.0),
        )
        await self.proxy.start()
        self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20))
        return self.proxy

    def url(self, path: str) -> str:
        assert self.proxy is not None
        return f"http://{self.proxy.address}{path}"

    async def post(
        self, path: str, body: Any, headers: dict[str, str] | None = None
    ) -> tuple[int, CIMultiDict[str], Any]:
        """POST JSON (or raw bytes) to the proxy; the body comes back parsed when it is JSON."""
        assert self.session is not None
        kwargs: dict[str, Any] = {"data": body} if isinstance(body, bytes) else {"json": body}
        async with self.session.post(self.url(path), headers=headers, **kwargs) as response:
            text = await response.text()
            parsed: Any = text
            if response.content_type == "application/json":
                parsed = await response.json()
            return response.status, response.headers.copy(), parsed

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()
        if self.proxy is not None:
            await self.proxy.stop()
        if self.dataplane is not None:
            await self.dataplane.close()
        for server in self.sims.values():
            await server.stop()


@pytest.fixture
async def bed() -> AsyncIterator[Bed]:
    instance = Bed()
    yield instance
    await instance.close()


def chat(model: str, text: str = "Hello", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": text}], **extra}


@pytest.fixture
def make_chat() -> Callable[..., dict[str, Any]]:
    return chat


# -- the two model-server simulators the data-plane contract tests run against ---------------

CONTRACT_MODEL = "test/model-8B"
# llm-d-inference-sim runs its docs' latency profiles at this fraction (tests stay short).
LLMD_SCALE = 0.25


class Backend(Protocol):
    """Starts model servers of one simulator for the contract tests; `name` says which."""

    name: str

    async def start(
        self,
        count: int = 1,
        *,
        profile: str = "H100",
        kvcache: bool = False,
        per_token: bool = False,
        failure_rate: float = 0.0,
        max_num_seqs: int = 16,
    ) -> list[str]:
        """`count` servers of CONTRACT_MODEL; returns their host:port addresses."""
        ...

    async def close(self) -> None: ...


class FleetrouteSim:
    """fleetroute's Python simulator (sim/), in this event loop."""

    name = "fleetroute-sim"

    def __init__(self) -> None:
        self.servers: list[SimServer] = []

    async def start(
        self,
        count: int = 1,
        *,
        profile: str = "H100",
        kvcache: bool = False,
        per_token: bool = False,
        failure_rate: float = 0.0,
        max_num_seqs: int = 16,
    ) -> list[str]:
        product = llmd.PROFILES[profile].gpu
        timing = ServerModel.of(CONTRACT_MODEL, product, speed=SPEED, max_batch=max_num_seqs)
        started = []
        for _ in range(count):
            server = SimServer(CONTRACT_MODEL, timing)
            server.faults.error_rate = failure_rate
            await server.start()
            self.servers.append(server)
            started.append(server.address)
        return started

    async def close(self) -> None:
        for server in self.servers:
            await server.stop()


class LlmdSim:
    """llm-d-inference-sim processes (the binary built by the e2e harness)."""

    name = "llm-d-inference-sim"

    def __init__(self, binary: Path) -> None:
        self.binary = binary
        self.processes: list[llmd.SimProcess] = []

    async def start(
        self,
        count: int = 1,
        *,
        profile: str = "H100",
        kvcache: bool = False,
        per_token: bool = False,
        failure_rate: float = 0.0,
        max_num_seqs: int = 16,
    ) -> list[str]:
        started = []
        for _ in range(count):
            process = llmd.SimProcess(
                self.binary,
                CONTRACT_MODEL,
                profile=llmd.PROFILES[profile],
                scale=LLMD_SCALE,
                kvcache=kvcache,
                per_token=per_token,
                failure_rate=failure_rate,
                max_num_seqs=max_num_seqs,
            )
            self.processes.append(process)
            await process.start()
            started.append(process.address)
        return started

    async def close(self) -> None:
        for process in self.processes:
            await process.stop()


@pytest.fixture(scope="session")
def llmd_binary() -> Path:
    """The llm-d-inference-sim binary; built on first use. Its absence fails the tests that
    need it (select them out with `-m "not sim"`), it does not skip them."""
    try:
        return llmd.find_binary()
    except llmd.Unavailable as error:
        pytest.fail(f"llm-d-inference-sim is needed by the `sim` tests: {error}")


@pytest.fixture(
    params=[
        pytest.param("fleetroute-sim"),
        pytest.param("llm-d-inference-sim", marks=pytest.mark.sim),
    ]
)
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    instance: Backend
    if request.param == "fleetroute-sim":
        instance = FleetrouteSim()
    else:
        instance = LlmdSim(request.getfixturevalue("llmd_binary"))
    try:
        yield instance
    finally:
        await instance.close()
