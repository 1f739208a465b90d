"""Config reloads: a changed file takes effect, a bad one is reported and the last good one kept."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml

from fleetroute import routerconfig
from fleetroute_router.config_source import ConfigSource
from fleetroute_router.core import RoutingCore
from fleetroute_router.features import RequestInfo
from fleetroute_router.fleet import Fleet

from .conftest import EMBEDDED


def _write(path: Path, document: dict) -> None:  # type: ignore[type-arg]
    path.write_text(yaml.safe_dump(document))


def test_changed_file_takes_effect_and_listeners_hear_it(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    document = yaml.safe_load(EMBEDDED.read_text())
    _write(path, document)
    source = ConfigSource(path)
    assert source.reload()
    assert source.fleet is not None
    heard: list[Fleet] = []
    source.subscribe(heard.append)
    assert not source.reload()  # unchanged content
    document["policies"][0]["modelAlias"] = "fleet/assistant"
    _write(path, document)
    assert source.reload()
    assert list(heard[-1].policies) == ["fleet/assistant"]


def test_bad_file_keeps_the_last_good_config(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(EMBEDDED.read_text())
    source = ConfigSource(path)
    source.reload()
    good = source.fleet
    path.write_text("policies: [{modelAlias: x, candidates: [missing]}]")
    assert not source.reload()
    assert source.fleet is good
    assert source.last_error is not None
    assert "unknown pool 'missing'" in source.last_error
    assert "keeping the last good config" in caplog.text
    path.unlink()
    assert not source.reload()
    assert source.fleet is good
    assert "cannot read" in (source.last_error or "")


def test_a_bad_first_config_is_fatal(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("pools: [")
    with pytest.raises(routerconfig.ConfigError, match="not JSON or YAML"):
        ConfigSource(path).reload()


async def test_watch_picks_up_changes(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    document = yaml.safe_load(EMBEDDED.read_text())
    _write(path, document)
    source = ConfigSource(path)
    source.reload()
    core = RoutingCore(source.fleet)  # type: ignore[arg-type]
    source.subscribe(core.set_fleet)
    watcher = asyncio.create_task(source.watch(interval=0.01))
    try:
        document["policies"][0]["candidates"] = ["llm/llama-8b-l4"]
        _write(path, document)
        for _ in range(200):
            await asyncio.sleep(0.01)
            if core.fleet.policies["fleet/chat"].candidates == ["llm/llama-8b-l4"]:
                break
        decision = core.route(RequestInfo(model="fleet/chat", prompt="hello"))
        assert decision.pool == "llm/llama-8b-l4"
    finally:
        watcher.cancel()


def test_bad_algorithm_parameters_are_refused_and_the_last_good_config_kept(
    tmp_path: Path,
) -> None:
    path = tmp_path / "config.yaml"
    document = yaml.safe_load(EMBEDDED.read_text())
    _write(path, document)
    source = ConfigSource(path)
    source.reload()
    core = RoutingCore(source.fleet)  # type: ignore[arg-type]
    source.subscribe(core.set_fleet)
    good = source.fleet
    document["policies"][0]["algorithm"] = {"name": "epsilon-greedy", "parameters": {"alpha": 1}}
    _write(path, document)
    assert not source.reload()
    assert source.fleet is good
    assert core.fleet is good
    assert "policy llm/chat" in (source.last_error or "")
    assert "alpha" in (source.last_error or "")
    assert core.route(RequestInfo(model="fleet/chat", prompt="hi")).algorithm == "linucb"


def test_bad_algorithm_parameters_stop_start_up(tmp_path: Path) -> None:
    document = yaml.safe_load(EMBEDDED.read_text())
    document["policies"][0]["algorithm"] = {"name": "linucb", "parameters": {"epsilon": 0.5}}
    bad = tmp_path / "config.yaml"
    _write(bad, document)
    source = ConfigSource(bad)
    source.reload()
    with pytest.raises(routerconfig.ConfigError, match="policy llm/chat"):
        RoutingCore(source.fleet)  # type: ignore[arg-type]


async def test_the_watch_reads_and_parses_off_the_event_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "config.yaml"
    document = yaml.safe_load(EMBEDDED.read_text())
    _write(path, document)
    source = ConfigSource(path)
    source.reload()
    released = threading.Event()
    parsed_while_loop_ran: list[bool] = []
    loads = routerconfig.loads

    def slow_loads(data: bytes | str) -> Any:
        # Blocks until a task on the event loop releases it: only possible off the loop.
        parsed_while_loop_ran.append(released.wait(timeout=10))
        return loads(data)

    monkeypatch.setattr("fleetroute_router.config_source.routerconfig.loads", slow_loads)
    document["policies"][0]["modelAlias"] = "fleet/off-loop"
    _write(path, document)

    async def release() -> None:
        await asyncio.sleep(0)
        released.set()

    took, _ = await asyncio.gather(source.reload_async(), release())
    assert took
    assert parsed_while_loop_ran == [True]
    assert source.fleet is not None
    assert list(source.fleet.policies) == ["fleet/off-loop"]
