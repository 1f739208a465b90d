"""`fleetroute serve` without a config: the embedded simulated fleet behind the proxy."""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from fleetroute import routerconfig
from fleetroute.v1alpha1 import config_pb2, learning_pb2
from fleetroute_router import command, defaults
from fleetroute_router.dataplane import DataPlane
from fleetroute_router.fleet import Fleet
from fleetroute_router.sim.fleet import SimFleet


def test_help_names_the_transports() -> None:
    parser = argparse.ArgumentParser()
    command.configure(parser)
    text = parser.format_help()
    for flag in ("--config", "--simulate", "--http", "--grpc", "--ext-proc", "--endpoint-picker"):
        assert flag in text


@pytest.fixture
def embedded_ports_taken() -> Iterator[None]:
    """Every port of the embedded fleet held by someone else, as while `make serve` runs."""
    held = []
    try:
        for address in SimFleet(routerconfig.load(defaults.embedded_config_path())).servers:
            host, _, port = address.rpartition(":")
            sock = socket.socket()
            try:
                sock.bind((host, int(port)))
            except OSError:  # already taken, e.g. by a `make serve`: that is the point too
                sock.close()
                continue
            sock.listen()
            held.append(sock)
        yield
    finally:
        for sock in held:
            sock.close()


@pytest.mark.usefixtures("embedded_ports_taken")
async def test_serve_starts_the_embedded_fleet_and_answers_openai_requests() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "fleetroute", "serve", "--http", "127.0.0.1:0",
        "--grpc", "127.0.0.1:0", "--ext-proc", "127.0.0.1:0", "--sim-speed", "0.01",
        "--sim-ports", "free", "--admin", "127.0.0.1:0",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    assert process.stdout is not None
    try:
        base = admin = None
        async with asyncio.timeout(30):
            while base is None or admin is None:
                line = (await process.stdout.readline()).decode()
                assert line, "serve exited before printing its address"
                found = re.search(r"OpenAI-compatible API: (http://\S+/v1)", line)
                base = found.group(1) if found else base
                found = re.search(r"admin \(/metrics, /stats\): (http://127\.0\.0\.1:\d+)", line)
                admin = found.group(1) if found else admin
        body = {
            "model": "fleet/chat",
            "messages": [{"role": "user", "content": "Hello"}],
            "max_tokens": 4,
        }
        async with aiohttp.ClientSession() as session:
            async with session.post(base + "/chat/completions", json=body) as response:
                assert response.status == 200
                assert response.headers["x-fleetroute-pool"].startswith("llm/")
                document = await response.json()
            assert document["choices"][0]["message"]["content"]
            async with session.post(
                base + "/chat/completions", json={**body, "stream": True}
            ) as response:
                text = await response.text()
            assert text.rstrip().endswith("data: [DONE]")
            async with session.get(base.removesuffix("/v1") + "/metrics") as response:
                assert response.status == 404  # the public port does not expose metrics
            async with session.get(admin + "/metrics") as response:
                assert "fleetroute_router_requests_total" in await response.text()
    finally:
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            await process.wait()
    assert process.returncode == 0


async def _serve(*extra: str) -> tuple[asyncio.subprocess.Process, str]:
    """`fleetroute serve` on free ports with instant simulated servers, and its proxy URL."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "fleetroute", "serve", "--http", "127.0.0.1:0",
        "--grpc", "127.0.0.1:0", "--ext-proc", "", "--sim-speed", "0", "--sim-ports", "free",
        "--admin", "",
        *extra,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None
    async with asyncio.timeout(30):
        while True:
            line = (await process.stdout.readline()).decode()
            assert line, "serve exited before printing its address"
            if found := re.search(r"OpenAI-compatible API: (http://\S+/v1)", line):
                return process, found.group(1)


async def _stop(process: asyncio.subprocess.Process) -> str:
    process.send_signal(signal.SIGTERM)
    async with asyncio.timeout(30):
        _, err = await process.communicate()
    assert process.returncode == 0
    return err.decode()


async def test_learning_survives_a_restart(tmp_path: Path) -> None:
    state = tmp_path / "learning.pb"
    process, base = await _serve("--learning-state", str(state), "--snapshot-interval", "3600")
    try:
        body = {
            "model": "fleet/chat",
            "messages": [{"role": "user", "content": "Hi"}],
            "max_tokens": 2,
        }
        async with aiohttp.ClientSession() as session:
            for _ in range(6):
                async with session.post(base + "/chat/completions", json=body) as response:
                    assert response.status == 200
    finally:
        await _stop(process)
    saved = learning_pb2.RouterLearning()
    saved.ParseFromString(state.read_bytes())
    assert "llm/chat" in saved.policies
    process, _ = await _serve("--learning-state", str(state))
    log = await _stop(process)
    assert "learning restored for 1 policies" in log


async def test_a_corrupt_learning_state_stops_start_up_clearly(tmp_path: Path) -> None:
    state = tmp_path / "learning.pb"
    state.write_bytes(b"\xff not a snapshot")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "fleetroute", "serve", "--http", "127.0.0.1:0", "--grpc",
        "127.0.0.1:0", "--ext-proc", "", "--sim-ports", "free", "--learning-state", str(state),
        "--admin", "",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    async with asyncio.timeout(30):
        _, err = await process.communicate()
    assert process.returncode == 2
    assert "is not a fleetroute learning snapshot" in err.decode()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        pytest.param([], "--learning-publish needs --pod-name", id="no-pod-name"),
        pytest.param(
            ["--pod-name", "r-1", "--learning-state", "state.pb"],
            "drop --learning-state",
            id="with-a-state-file",
        ),
        pytest.param(
            ["--pod-name", "r-1", "--kubeconfig", "missing.kubeconfig"],
            "no Kubernetes API to publish learning to",
            id="no-kubeconfig",
        ),
    ],
)
async def test_sharing_learning_without_what_it_needs_stops_start_up_clearly(
    tmp_path: Path, extra: list[str], message: str
) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "fleetroute", "serve", "--http", "", "--grpc", "127.0.0.1:0",
        "--ext-proc", "", "--sim-ports", "free", "--learning-publish", *extra,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE, cwd=tmp_path,
        env={k: v for k, v in os.environ.items() if not k.startswith("FLEETROUTE_POD")},
    )  # fmt: skip
    async with asyncio.timeout(30):
        _, err = await process.communicate()
    assert process.returncode == 2
    assert message in err.decode()


async def test_a_scrape_interval_not_above_zero_stops_start_up_clearly(tmp_path: Path) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "fleetroute", "serve", "--http", "", "--grpc", "127.0.0.1:0",
        "--ext-proc", "", "--sim-ports", "free", "--scrape-interval", "0",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE, cwd=tmp_path,
    )  # fmt: skip
    async with asyncio.timeout(30):
        _, err = await process.communicate()
    assert process.returncode == 2
    assert "--scrape-interval must be above 0, got 0.0" in err.decode()


def test_the_scrape_interval_reaches_the_scraper(
    example_config: config_pb2.RouterConfig,
) -> None:
    parser = argparse.ArgumentParser()
    command.configure(parser)
    assert parser.parse_args([]).scrape_interval == 0.075
    seconds = parser.parse_args(["--scrape-interval", "0.5"]).scrape_interval
    dataplane = DataPlane(Fleet.from_config(example_config), scrape_interval_s=seconds)
    assert dataplane.scraper is not None
    assert dataplane.scraper.interval_s == 0.5
    assert dataplane.scraper.stale_after_s == 2.0  # four missed scrapes
