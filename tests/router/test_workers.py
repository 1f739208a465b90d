"""serve --workers: argument checks, per-worker arguments, and learning shared between workers."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest

from fleetroute_router import command, runtime, workers
from fleetroute_router.policies.bandits import LinUCB
from fleetroute_router.policies.base import SelectionPolicy
from fleetroute_router.policies.baseline import LeastLoaded


def _args(*extra: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    command.configure(parser)
    return parser.parse_args(list(extra))


FIXED = ("--config", "c.yaml", "--no-simulate", "--http", "127.0.0.1:8080",
         "--grpc", "127.0.0.1:50051", "--ext-proc", "")  # fmt: skip


def test_several_workers_need_a_config_and_fixed_ports() -> None:
    assert workers.problems(_args("--workers", "2", *FIXED)) == []
    assert workers.problems(_args()) == []  # one worker: anything goes
    found = workers.problems(_args("--workers", "2"))
    assert any("--config" in p for p in found)
    found = workers.problems(_args("--workers", "2", *FIXED, "--grpc", "127.0.0.1:0"))
    assert found == ["--grpc needs a fixed port with --workers (workers share it)"]
    assert workers.problems(_args("--workers", "0")) == ["--workers must be at least 1"]


def test_each_worker_gets_its_metrics_port_and_only_the_first_writes_the_state(
    tmp_path: Path,
) -> None:
    state = tmp_path / "learning.pb"
    state.write_bytes(b"")
    args = _args("--workers", "3", *FIXED, "--metrics", "127.0.0.1:9100",
                 "--learning-state", str(state))  # fmt: skip
    first, third = workers.worker_args(args, 0), workers.worker_args(args, 2)
    assert (first.workers, first.metrics, first.learning_state) == (1, "127.0.0.1:9100", state)
    assert (third.metrics, third.learning_state, third.learning_prior) == (
        "127.0.0.1:9102",
        None,
        state,
    )
    assert args.workers == 3  # the supervisor's own arguments are untouched


def test_only_the_first_worker_publishes_to_the_cluster() -> None:
    args = _args("--workers", "2", *FIXED, "--learning-publish", "--pod-name", "router-0")
    assert workers.worker_args(args, 0).learning_publish
    assert not workers.worker_args(args, 1).learning_publish


def _taught(bandit: LinUCB, arm: str, count: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for _ in range(count):
        bandit.update(arm, rng.random(3), {"quality": 1.0})


def test_exchanges_make_every_worker_hold_all_the_learning() -> None:
    bandits = [LinUCB(seed=i) for i in range(3)]
    exchanges = [workers.Exchange() for _ in bandits]
    single = LinUCB()  # one learner that sees every worker's traffic
    for bandit, exchange in zip(bandits, exchanges, strict=True):
        assert exchange.swap({"p": bandit}, []) == {}  # start-up: the bases, nothing to send
    for round_ in range(3):
        for i, bandit in enumerate(bandits):
            _taught(bandit, f"arm-{i}", 5, seed=10 * round_ + i)
            _taught(single, f"arm-{i}", 5, seed=10 * round_ + i)
        # The hub forwards each message to the others; a worker absorbs what it has so far.
        inbox: list[list[workers.Message]] = [[] for _ in bandits]
        for i, (bandit, exchange) in enumerate(zip(bandits, exchanges, strict=True)):
            selectors: dict[str, SelectionPolicy] = {"p": bandit, "static": LeastLoaded()}
            message = exchange.swap(selectors, inbox[i])
            inbox[i] = []
            assert set(message) <= {"p"}  # nothing to share for a non-learning policy
            for j in range(len(bandits)):
                if j != i:
                    inbox[j].append(message)
        for i, (bandit, exchange) in enumerate(zip(bandits, exchanges, strict=True)):
            exchange.swap({"p": bandit}, inbox[i])  # the messages still on their way
    expected = {(s.arm, s.objective): s for s in single.statistics()}
    for bandit in bandits:
        found = {(s.arm, s.objective): s for s in bandit.statistics()}
        assert set(found) == set(expected)
        for key, stats in expected.items():
            assert np.allclose(found[key].gram, stats.gram)
            assert np.allclose(found[key].target, stats.target)
            assert found[key].observations == stats.observations


def test_a_rebuilt_policy_starts_a_fresh_exchange() -> None:
    exchange = workers.Exchange()
    old = LinUCB()
    exchange.swap({"p": old}, [])
    _taught(old, "a", 3, seed=0)
    assert exchange.swap({"p": old}, [])["p"][0].observations == 3
    new = LinUCB()  # the config changed the algorithm: a new policy object
    exchange.swap({"p": new}, [])
    _taught(new, "a", 2, seed=1)
    assert exchange.swap({"p": new}, [])["p"][0].observations == 2
    assert exchange.swap({"p": new}, []) == {}  # nothing learned since


def test_the_event_loop_choice() -> None:
    assert runtime.loop_factory("asyncio") is None
    assert runtime.loop_factory("uvloop") is not None
    assert runtime.default_loop() == "uvloop"  # a real dependency on Linux
    with pytest.raises(ValueError, match="unknown event loop"):
        runtime.loop_factory("trio")

    async def answer() -> int:
        return 42

    assert runtime.run(answer(), "uvloop") == 42
    assert runtime.run(answer(), "asyncio") == 42


async def test_two_workers_serve_one_port_and_share_what_they_learn(tmp_path: Path) -> None:
    import asyncio
    import sys

    import grpc

    from fleetroute.v1alpha1 import router_pb2, router_pb2_grpc
    from fleetroute_router.bench import grpc_route, harness
    from fleetroute_router.learning import snapshot

    backend_port, http_port, grpc_port = harness.free_ports(3)
    state = tmp_path / "learning.pb"
    children = harness.Children()
    try:
        await children.python("-m", "fleetroute_router.sim", "--port", str(backend_port),
                              "--model", grpc_route.MODEL, "--speed", "0")  # fmt: skip
        config = children.write_config(grpc_route.bench_config(f"127.0.0.1:{backend_port}", 2))
        await children.start(sys.executable, "-m", "fleetroute", "serve", "--config",
                             str(config), "--no-simulate", "--http", f"127.0.0.1:{http_port}",
                             "--grpc", f"127.0.0.1:{grpc_port}", "--ext-proc", "",
                             "--workers", "2", "--learning-state", str(state),
                             "--snapshot-interval", "0.3", "--admin", "",
                             log="router.log")  # fmt: skip
        await harness.wait_ready(f"http://127.0.0.1:{backend_port}/health")
        await harness.wait_ready(f"http://127.0.0.1:{http_port}/health")
        target = f"127.0.0.1:{grpc_port}"
        request = router_pb2.RouteRequest(model=grpc_route.ALIAS, prompt="two plus two?")
        local: list[int] = []  # what the worker that served each connection counted itself
        reported = 0
        # A connection each: the kernel spreads them over the workers once both listen (the
        # second may still be starting, slowly on a loaded machine); go on until some have
        # reached each.
        clock = asyncio.get_running_loop().time
        deadline = clock() + 60.0
        while reported < 48 or max(local) == reported:
            assert clock() < deadline, (
                f"every connection reached the same worker for 60 s; the router said:\n"
                f"{children.log_tail('router.log')}"
            )
            async with grpc.aio.insecure_channel(target) as channel:
                stub = router_pb2_grpc.RouterStub(channel)
                for _ in range(2):
                    decision = await stub.Route(request)
                    await stub.Report(grpc_route._report(decision.decision_id))
                    reported += 1
                stats = await stub.GetStats(router_pb2.StatsRequest(policy="bench"))
                local.append(sum(a.decisions for a in stats.policies[0].arms))
        await asyncio.sleep(3 * workers.SHARE_INTERVAL_S + 1.0)
        # Worker 0's snapshot holds what both learned: every request's latency observation.
        learner = snapshot.load(state).policies["bench"]
        assert sum(a.observations for a in learner.arms if a.objective == "latency") == reported
    finally:
        await children.close()
