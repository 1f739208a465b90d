"""Learned statistics: protobuf round trips, snapshots on disk, restore into a router."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fleetroute.v1alpha1 import config_pb2, learning_pb2
from fleetroute_router import feedback, learning
from fleetroute_router.core import RoutingCore
from fleetroute_router.dataplane import DataPlane
from fleetroute_router.features import FEATURE_NAMES, RequestInfo
from fleetroute_router.fleet import Fleet
from fleetroute_router.policies import registry
from fleetroute_router.policies.bandits import LinearBandit
from fleetroute_router.policies.base import Arm
from tests.router.conftest import serve

ARMS = [Arm("x", 1, 0), Arm("y", 1, 0), Arm("z", 1, 0)]


def _trained(name: str = "linucb", seed: int = 0) -> LinearBandit:
    policy = registry.create(name, {"seed": 1})
    assert isinstance(policy, LinearBandit)
    rng = np.random.default_rng(seed)
    for _ in range(200):
        x = rng.random(4)
        arm = policy.choose(x, ARMS).arm
        policy.update(arm, x, {"quality": float(x[0] if arm == "x" else rng.random() * 0.5)})
    return policy


@pytest.mark.parametrize("name", ["linucb", "thompson", "epsilon-greedy"])
def test_serialise_and_restore_round_trip(name: str) -> None:
    policy = _trained(name)
    wire = learning.to_proto(policy, FEATURE_NAMES[:4]).SerializeToString()
    restored = registry.create(name, {"seed": 1})
    assert isinstance(restored, LinearBandit)
    state = learning_pb2.LearnerState.FromString(wire)
    assert learning.restore_into(restored, state, FEATURE_NAMES[:4]) == 3
    assert restored.model.arms == policy.model.arms
    np.testing.assert_array_equal(restored.model.gram, policy.model.gram)
    np.testing.assert_array_equal(restored.model.target, policy.model.target)
    np.testing.assert_allclose(restored.model.theta, policy.model.theta, rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(restored.model.observations, policy.model.observations)
    x = np.array([0.9, 0.1, 0.5, 0.2])
    for got, want in zip(
        restored.model.mean_and_variance(x), policy.model.mean_and_variance(x), strict=True
    ):
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)


def test_statistics_of_other_features_are_refused() -> None:
    state = learning.to_proto(_trained(), ["a", "b", "c", "d"])
    with pytest.raises(ValueError, match="different feature extractor"):
        learning.restore_into(registry.create("linucb", {}), state, ["a", "b", "c", "e"])  # type: ignore[arg-type]
    other = registry.create("linucb", {})
    assert isinstance(other, LinearBandit)
    other.update("x", np.ones(2), {"quality": 1.0})
    with pytest.raises(ValueError, match="saved statistics have 4 features, the policy 2"):
        learning.restore_into(other, state)
    state.delta = True
    with pytest.raises(ValueError, match="a delta cannot be restored"):
        learning.restore_into(registry.create("linucb", {}), state)  # type: ignore[arg-type]


def test_statistics_relative_to_another_prior_mean_are_refused() -> None:
    state = learning.to_proto(_trained())
    state.prior_mean = 0.25
    with pytest.raises(ValueError, match=r"relative to prior mean 0\.25, the policy's is 1\.0"):
        learning.restore_into(registry.create("linucb", {}), state)  # type: ignore[arg-type]


def test_truncated_statistics_are_refused() -> None:
    state = learning.to_proto(_trained())
    del state.arms[0].gram[-1]
    with pytest.raises(ValueError, match="not of dimension 4"):
        learning.from_proto(state)


def test_snapshot_file_round_trip_and_garbage(tmp_path: Path) -> None:
    snapshot = learning.take({"p": _trained(), "q": registry.create("random", {})}, replica="r1")
    assert set(snapshot.policies) == {"p"}  # only learners are saved
    path = tmp_path / "state" / "learning.pb"
    learning.save(path, snapshot)
    assert learning.load(path) == snapshot
    assert list(path.parent.iterdir()) == [path]  # the temporary file is gone
    path.write_bytes(b"\xff\xff not a snapshot")
    with pytest.raises(ValueError, match="is not a fleetroute learning snapshot"):
        learning.load(path)


def _learning_plane(config: config_pb2.RouterConfig) -> DataPlane:
    dataplane = DataPlane(Fleet.from_config(config), scrape=False)
    for _ in range(30):
        decision = serve(dataplane, "What is 2+2?")
        good = decision.pool == "llm/llama-8b-l4"
        dataplane.feedback(feedback.grade(decision_id=decision.id, score=float(good)))
    return dataplane


def _snapshotter(path: Path, dataplane: DataPlane) -> learning.Snapshotter:
    return learning.Snapshotter(
        path,
        dataplane.core.selectors,
        FEATURE_NAMES,
        extra=dataplane.save_state,
        on_restore=dataplane.restore_state,
    )


def test_a_restarted_router_restores_what_it_learned(
    example_config: config_pb2.RouterConfig, tmp_path: Path
) -> None:
    before = _learning_plane(example_config)
    waiting = serve(before, "Graded after the restart")
    path = tmp_path / "learning.pb"
    _snapshotter(path, before).close()  # the snapshot on shutdown
    after = DataPlane(Fleet.from_config(example_config), scrape=False)
    assert _snapshotter(path, after).restore() == ["llm/chat"]
    old, new = before.core.selectors()["llm/chat"], after.core.selectors()["llm/chat"]
    assert isinstance(old, LinearBandit)
    assert isinstance(new, LinearBandit)
    np.testing.assert_array_equal(old.model.target, new.model.target)
    # Statistics for status, the SLO guard's figures and quality observed come back too.
    assert after.core.stats("llm/chat") == before.core.stats("llm/chat")
    assert after.core.guard.state() == before.core.guard.state()
    assert not after.core.quality_unobserved("llm/chat")
    # Feedback for a decision made before the restart is still learned, once.
    reply = after.feedback(feedback.grade(decision_id=waiting.id, score=1.0))
    assert (reply.result, reply.decision.pool) == ("accepted", waiting.pool)
    assert after.feedback(feedback.grade(decision_id=waiting.id, score=1.0)).result == "duplicate"


def test_a_quality_prior_primes_only_the_quality_estimates(
    example_config: config_pb2.RouterConfig, tmp_path: Path
) -> None:
    prior = registry.create("linucb", {}, ("quality",))
    assert isinstance(prior, LinearBandit)
    x = np.ones(len(FEATURE_NAMES))
    for _ in range(20):
        prior.update("llm/qwen-14b-a10g", x, {"quality": 0.9})
    path = tmp_path / "prior.pb"
    learning.save(path, learning.take({"llm/chat": prior}, FEATURE_NAMES))
    dataplane = DataPlane(Fleet.from_config(example_config), scrape=False)
    assert dataplane.core.quality_unobserved("llm/chat")
    snapshots = learning.Snapshotter(
        tmp_path / "state.pb",
        dataplane.core.selectors,
        FEATURE_NAMES,
        on_restore=dataplane.restore_state,
        prior=path,
    )
    assert snapshots.restore() == ["llm/chat"]
    live = dataplane.core.selectors()["llm/chat"]
    assert isinstance(live, LinearBandit)
    k = live.model.arms.index("llm/qwen-14b-a10g")
    assert live.model.observations[:, k].tolist() == [20.0, 0.0, 0.0, 0.0]
    assert not dataplane.core.quality_unobserved("llm/chat")


# The text features before per-query signal (markup, brevity, math:*) was added.
PREVIOUS_FEATURE_NAMES = (
    "bias",
    "prompt_tokens",
    "max_tokens",
    "max_tokens_unset",
    "stream",
    "priority",
    "digits",
    "uppercase",
    "symbols",
    "lines",
    "word_length",
    "questions",
    "options",
    "complexity",
    "task:math",
    "task:code",
    "task:multiple-choice",
    "task:sentence-completion",
    "task:fill-in",
    "task:summary",
    "task:chat",
)


def test_a_snapshot_of_the_previous_features_is_refused_cleanly(
    example_config: config_pb2.RouterConfig,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert FEATURE_NAMES[: len(PREVIOUS_FEATURE_NAMES)] == PREVIOUS_FEATURE_NAMES
    assert len(FEATURE_NAMES) > len(PREVIOUS_FEATURE_NAMES)
    old = registry.create("linucb", {"seed": 1})
    assert isinstance(old, LinearBandit)
    old.update("llm/llama-8b-l4", np.ones(len(PREVIOUS_FEATURE_NAMES)), {"quality": 1.0})
    path = tmp_path / "learning.pb"
    learning.save(path, learning.take({"llm/chat": old}, PREVIOUS_FEATURE_NAMES))
    core = RoutingCore(Fleet.from_config(example_config))
    assert learning.Snapshotter(path, core.selectors, FEATURE_NAMES).restore() == []
    assert "policy llm/chat starts fresh" in caplog.text
    assert "different feature extractor" in caplog.text
    fresh = core.selectors()["llm/chat"]
    assert isinstance(fresh, LinearBandit)
    assert fresh.model.arms == []  # nothing of the old statistics was loaded
    decision = core.route(RequestInfo(model="fleet/chat", prompt="What is 2+2?"))
    assert len(decision.features) == len(FEATURE_NAMES)


def test_first_start_has_nothing_to_restore(
    example_config: config_pb2.RouterConfig, tmp_path: Path
) -> None:
    core = RoutingCore(Fleet.from_config(example_config))
    assert learning.Snapshotter(tmp_path / "none.pb", core.selectors).restore() == []


async def test_periodic_snapshots(example_config: config_pb2.RouterConfig, tmp_path: Path) -> None:
    import asyncio

    dataplane = _learning_plane(example_config)
    path = tmp_path / "learning.pb"
    task = asyncio.create_task(_snapshotter(path, dataplane).run(0.01))
    for _ in range(200):
        await asyncio.sleep(0.01)
        if path.exists():
            break
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert "llm/chat" in learning.load(path).policies
