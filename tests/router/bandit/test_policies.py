"""Contextual bandits on synthetic environments with a known best arm per context."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import pytest

from fleetroute_router.policies import registry
from fleetroute_router.policies.bandits import LinearBandit
from fleetroute_router.policies.base import Arm, SelectionPolicy

LEARNERS = [
    ("linucb", {"alpha": 0.5}),
    ("thompson", {"exploration": 0.2}),
    ("epsilon-greedy", {"epsilon": 0.05}),
]


@dataclass
class LinearEnv:
    """Reward of arm k for context x: θ_kᵀx plus Gaussian noise; contexts have a bias term."""

    weights: dict[str, npt.NDArray[np.float64]]
    noise: float = 0.05
    rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(7))

    @classmethod
    def random(cls, arms: int, dimension: int, seed: int = 7) -> LinearEnv:
        rng = np.random.default_rng(seed)
        weights = {f"arm-{k}": rng.random(dimension) / dimension for k in range(arms)}
        return cls(weights, rng=np.random.default_rng(seed + 1))

    def context(self) -> npt.NDArray[np.float64]:
        dimension = len(next(iter(self.weights.values())))
        return np.concatenate([[1.0], self.rng.random(dimension - 1)])

    def mean(self, arm: str, x: npt.NDArray[np.float64]) -> float:
        return float(self.weights[arm] @ x)

    def best(self, x: npt.NDArray[np.float64], arms: list[str]) -> str:
        return max(arms, key=lambda a: self.mean(a, x))


def play(
    policy: SelectionPolicy, env: LinearEnv, steps: int, arms: list[str] | None = None
) -> tuple[list[float], list[bool]]:
    """Run a policy; per-step regret and whether it chose the best arm."""
    names = arms or sorted(env.weights)
    candidates = [Arm(a, 1, 0) for a in names]
    regrets, hits = [], []
    for _ in range(steps):
        x = env.context()
        chosen = policy.choose(x, candidates).arm
        best = env.best(x, names)
        regrets.append(env.mean(best, x) - env.mean(chosen, x))
        hits.append(chosen == best)
        policy.update(chosen, x, {"quality": env.mean(chosen, x) + env.rng.normal(0.0, env.noise)})
    return regrets, hits


@pytest.mark.parametrize(
    ("name", "params", "ratio"),
    [(*learner, ratio) for learner, ratio in zip(LEARNERS, (0.35, 0.35, 0.6), strict=True)],
)
def test_regret_grows_sublinearly_and_the_policy_converges(
    name: str, params: dict[str, float], ratio: float
) -> None:
    """Regret of the last 500 steps is a fraction of the first 500 (ε-greedy keeps paying ε)."""
    env = LinearEnv.random(arms=4, dimension=5)
    policy = registry.create(name, {**params, "seed": 3})
    regrets, hits = play(policy, env, 3000)
    early, late = sum(regrets[:500]), sum(regrets[-500:])
    assert late < ratio * early
    assert np.mean(hits[-500:]) > 0.85


def test_random_baseline_has_linear_regret() -> None:
    env = LinearEnv.random(arms=4, dimension=5)
    regrets, hits = play(registry.create("random", {"seed": 3}), env, 3000)
    assert sum(regrets[-500:]) > 0.6 * sum(regrets[:500])
    assert np.mean(hits) < 0.5


@pytest.mark.parametrize(("name", "params"), LEARNERS)
def test_a_seed_makes_runs_reproducible(name: str, params: dict[str, float]) -> None:
    runs = [
        play(registry.create(name, {**params, "seed": 11}), LinearEnv.random(3, 4), 300)[0]
        for _ in range(2)
    ]
    assert runs[0] == runs[1]


def test_different_seeds_explore_differently() -> None:
    runs = [
        play(registry.create("thompson", {"seed": s}), LinearEnv.random(3, 4), 200)[0]
        for s in (1, 2)
    ]
    assert runs[0] != runs[1]


@pytest.mark.parametrize(("name", "params"), LEARNERS)
def test_arms_added_and_removed_mid_run(name: str, params: dict[str, float]) -> None:
    env = LinearEnv.random(arms=3, dimension=4, seed=5)
    ranked = sorted(env.weights, key=lambda a: -float(env.weights[a].sum()))
    policy = registry.create(name, {**params, "seed": 1})
    play(policy, env, 400, arms=ranked[1:])  # the best arm is not there yet
    _, hits = play(policy, env, 1500, arms=ranked)  # it is added
    assert np.mean(hits[-300:]) > 0.8
    x = env.context()
    survivors = [Arm(a, 1, 0) for a in ranked[1:]]  # it scales to zero
    assert all(policy.choose(x, survivors).arm != ranked[0] for _ in range(50))
    assert isinstance(policy, LinearBandit)
    before = policy.model.observations[0, policy.model.arms.index(ranked[0])]
    assert before > 0  # what it learned is kept for when it comes back


def test_a_forgotten_arm_restarts_from_the_prior() -> None:
    policy = registry.create("linucb", {"seed": 0})
    assert isinstance(policy, LinearBandit)
    policy.update("a", np.ones(3), {"quality": 1.0})
    policy.update("b", np.ones(3), {"quality": 0.5})
    policy.forget("a")
    assert policy.model.arms == ["b"]
    choice = policy.choose(np.ones(3), [Arm("a", 1, 0), Arm("b", 1, 0)])
    assert choice.scores["a"] == pytest.approx(1.0 + np.sqrt(3.0))  # prior mean + sqrt(xᵀx/λ)


def _after_swap(discount: float) -> list[bool]:
    env = LinearEnv.random(arms=2, dimension=3, seed=3)
    policy = registry.create("linucb", {"alpha": 0.3, "discount": discount, "seed": 0})
    play(policy, env, 800)
    env.weights = {"arm-0": env.weights["arm-1"], "arm-1": env.weights["arm-0"]}  # drift
    return play(policy, env, 800)[1]


def test_discounting_follows_drift_faster() -> None:
    forgetting, remembering = _after_swap(0.98), _after_swap(1.0)
    assert np.mean(forgetting[:200]) > np.mean(remembering[:200]) + 0.3
    assert np.mean(forgetting[-200:]) > 0.9


def test_without_features_the_policy_learns_arm_means() -> None:
    policy = registry.create("linucb", {"alpha": 0.1, "seed": 0})
    arms = [Arm("good", 1, 0), Arm("bad", 1, 0)]
    for _ in range(50):
        for arm, reward in (("good", 0.9), ("bad", 0.2)):
            policy.update(arm, np.zeros(0), {"quality": reward})
    choice = policy.choose(np.zeros(0), arms)
    assert choice.arm == "good"
    assert choice.scores["good"] == pytest.approx(0.9, abs=0.05)


def test_a_feature_vector_of_another_length_is_refused() -> None:
    policy = registry.create("linucb", {})
    policy.update("a", np.ones(3), {"quality": 1.0})
    with pytest.raises(ValueError, match="4 dimensions, the model learned 3"):
        policy.choose(np.ones(4), [Arm("a", 1, 0)])


def test_static_serves_its_pool_when_present() -> None:
    static = registry.create("static", {})
    arms = [Arm("x", 1, 0), Arm("y", 1, 0)]
    assert static.choose(np.zeros(0), arms).arm == "x"
    pinned = type(static)("y")  # type: ignore[call-arg]
    assert pinned.choose(np.zeros(0), arms).arm == "y"
    assert pinned.choose(np.zeros(0), arms[:1]).arm == "x"


def test_round_robin_takes_turns() -> None:
    policy: SelectionPolicy = registry.create("round-robin", {})
    arms = [Arm("x", 1, 0), Arm("y", 1, 0), Arm("z", 1, 0)]
    assert [policy.choose(np.zeros(0), arms).arm for _ in range(4)] == ["x", "y", "z", "x"]


@pytest.mark.parametrize(("name", "params"), LEARNERS)
def test_weights_combine_objectives_at_choice_time_without_relearning(
    name: str, params: dict[str, float]
) -> None:
    """A fast, poor arm and a slow, good one: which wins follows the weights of the moment."""
    policy = registry.create(name, {**params, "seed": 0}, ("quality", "latency"))
    x = np.ones(2)
    for _ in range(300):
        policy.update("fast", x, {"quality": 0.3, "latency": 0.95})
        policy.update("good", x, {"quality": 0.9, "latency": 0.35})
    arms = [Arm("fast", 1, 0), Arm("good", 1, 0)]
    quality_first = np.array([0.9, 0.1])
    latency_first = np.array([0.1, 0.9])
    picks = [policy.choose(x, arms, quality_first).arm for _ in range(40)]
    assert picks.count("good") > 30
    picks = [policy.choose(x, arms, latency_first).arm for _ in range(40)]
    assert picks.count("fast") > 30
