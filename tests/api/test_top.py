"""`fleetroute top` against a real router started in-process (simulated model servers, the
routing core, the gRPC API and the proxy on loopback), rendered headlessly by rich."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import grpc
import pytest
from rich.console import Console

from fleetroute import routerconfig
from fleetroute.cli import parser
from fleetroute.top import command, snapshot, view
from fleetroute.v1alpha1 import router_pb2_grpc
from fleetroute_router.admin import AdminServer
from fleetroute_router.auth import TokenFile
from fleetroute_router.control_auth import ControlGuard
from fleetroute_router.dataplane import DataPlane
from fleetroute_router.defaults import embedded_config_path
from fleetroute_router.fleet import Fleet
from fleetroute_router.proxy.app import ProxyServer
from fleetroute_router.server import RouterServer
from fleetroute_router.sim.fleet import SimFleet


@dataclass
class Router:
    grpc: str
    metrics: str
    chat: str


@pytest.fixture
async def router() -> AsyncIterator[Router]:
    config = routerconfig.load(embedded_config_path())
    async with contextlib.AsyncExitStack() as stack:
        sims = SimFleet(config, speed=0.0, free_ports=True)
        await sims.start()
        stack.push_async_callback(sims.stop)
        dataplane = DataPlane(Fleet.from_config(sims.remap(config)))
        dataplane.start()
        stack.push_async_callback(dataplane.close)
        server = RouterServer(dataplane, "127.0.0.1:0")
        await server.start()
        stack.push_async_callback(server.drain, 0.5)
        proxy = ProxyServer(dataplane, "127.0.0.1:0")
        await proxy.start()
        stack.push_async_callback(proxy.stop)
        admin = AdminServer(dataplane, "127.0.0.1:0")
        await admin.start()
        stack.push_async_callback(admin.stop)
        yield Router(
            f"127.0.0.1:{server.port}",
            f"http://{admin.address}/metrics",
            f"http://{proxy.address}/v1/chat/completions",
        )


async def _traffic(url: str, count: int) -> int:
    served = 0
    async with aiohttp.ClientSession() as session:
        for index in range(count):
            body = {
                "model": "fleet/chat",
                "messages": [{"role": "user", "content": f"question {index}"}],
                "max_tokens": 8,
            }
            async with session.post(url, json=body) as response:
                await response.read()
                served += response.status == 200
    return served


def _args(router: Router, *extra: str) -> argparse.Namespace:
    argv = ["top", "--router", router.grpc, "--metrics", router.metrics, *extra]
    return parser(argv).parse_args(argv)


async def test_the_view_shows_decisions_split_reward_and_energy_per_arm(router: Router) -> None:
    with grpc.insecure_channel(router.grpc) as channel:
        stub = router_pb2_grpc.RouterStub(channel)
        before = await asyncio.to_thread(snapshot.take, stub, router.metrics)
        assert await _traffic(router.chat, 30) == 30
        after = await asyncio.to_thread(snapshot.take, stub, router.metrics)
    shown = view.compute(before, after)
    (chat,) = [p for p in shown.policies if p.policy == "llm/chat"]
    assert chat.decisions_per_s > 0
    assert sum(a.decisions_per_s for a in chat.arms) == pytest.approx(chat.decisions_per_s)
    assert sum(a.split for a in chat.arms) == pytest.approx(1.0)
    used = [a for a in chat.arms if a.split > 0]
    assert used
    for arm in used:
        assert arm.watts > 0, arm  # energy of the requests served there, per second
        assert arm.joules_per_request is not None
        assert arm.joules_per_request > 0
        assert arm.measured == pytest.approx(1.0)  # the simulated servers report DCGM power
    # pools with a configured grid intensity emit carbon
    assert sum(a.grams_per_hour for a in used) > 0


async def test_top_once_renders_the_policy_table(router: Router) -> None:
    console = Console(record=True, width=160, force_terminal=False)
    args = _args(router, "--once", "--interval", "1.5")
    top = asyncio.create_task(asyncio.to_thread(command.run, args, console))
    await asyncio.sleep(0.2)
    assert await _traffic(router.chat, 20) == 20
    assert await top == 0
    text = console.export_text()
    assert "fleetroute top" in text
    assert "llm/chat  (linucb)" in text
    for column in ("dec/s", "split", "reward", "J/req", "measured", "gCO2e/h"):
        assert column in text
    rows = [line for line in text.splitlines() if "│ llm/" in line]
    assert len(rows) == 4, text
    assert any("100%" in line for line in rows), text  # measured share of a used arm


def test_an_unreachable_router_is_a_clear_error(unused_tcp_port: int) -> None:
    console = Console(record=True, width=120)
    argv = ["top", "--router", f"127.0.0.1:{unused_tcp_port}", "--once", "--timeout", "0.5"]
    assert command.run(parser(argv).parse_args(argv), console) == 1
    assert "UNAVAILABLE" in console.export_text()


async def test_top_sends_the_control_token(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("c0ntrol\n")
    config = routerconfig.load(embedded_config_path())
    dataplane = DataPlane(Fleet.from_config(config), scrape=False)
    server = RouterServer(dataplane, "127.0.0.1:0", guard=ControlGuard(TokenFile(token)))
    await server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = router_pb2_grpc.RouterStub(channel)
            with pytest.raises(grpc.RpcError) as raised:
                await asyncio.to_thread(snapshot.take, stub, "")
            assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED  # type: ignore[attr-defined]
            secret = token.read_text().strip()
            taken = await asyncio.to_thread(snapshot.take, stub, "", token=secret)
        assert [p.policy for p in taken.stats.policies] == ["llm/chat"]
    finally:
        await server.drain(0)
