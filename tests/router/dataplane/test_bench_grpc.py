"""`fleetroute bench grpc`: one row per mode against a real `fleetroute serve` (speed is not
asserted, only that the figures are there and consistent)."""

from __future__ import annotations

import json

import pytest

from fleetroute.cli import main
from fleetroute_router.bench import grpc_route


@pytest.mark.parametrize("workers", [1, 2])
def test_route_and_route_report_rows(workers: int, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["bench", "grpc", "--json", "--seconds", "0.5", "--concurrency", "2", "--arms", "3",
            "--workers", str(workers), "--event-loop", "asyncio"]  # fmt: skip
    assert main(argv) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["mode"] for r in rows] == list(grpc_route.MODES)
    for row in rows:
        assert row["benchmark"] == "grpc"
        assert (row["workers"], row["router_event_loop"]) == (workers, "asyncio")
        assert row["errors"] == 0
        assert row["decisions"] > 0
        assert row["router_cpu_s"] > 0
        # router_cpu_s is rounded to 10 ms in the row, the per-core figure is not
        per_core = row["decisions"] / row["router_cpu_s"]
        assert row["decisions_per_core_s"] == pytest.approx(
            per_core, rel=0.01 / row["router_cpu_s"]
        )
        assert row["floor"]["decisions_per_core_s"] > 0
        assert row["floor"]["errors"] == 0
        assert row["ratio_to_floor_per_core"] > 0
        assert row["meets_goal"] == (row["decisions_per_core_s"] >= grpc_route.GOAL_PER_CORE)


def test_the_bench_config_puts_every_pool_under_one_linucb_alias() -> None:
    config = grpc_route.bench_config("127.0.0.1:9", 4)
    assert [p.name for p in config.pools] == [f"pool-{i}" for i in range(4)]
    (policy,) = config.policies
    assert (policy.model_alias, policy.algorithm.name) == (grpc_route.ALIAS, "linucb")
    assert list(policy.candidates) == [p.name for p in config.pools]
