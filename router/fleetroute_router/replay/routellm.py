"""The routellm suites: online learning with bandit feedback simulated from full outcomes.

Both arms' correctness is known per prompt, so a run shuffles the prompts (per seed), lets the
policy choose, and reveals only the chosen arm's reward. Reward under cost weight λ:
    reward = (correct + λ · (1 - cost)) / (1 + λ)
cost = the prompt's price on the arm / its price on the strong model; a prompt's price is its
estimated token count times the list price per input token (GPT-4-1106 $10 / 1M, Mixtral-8x7B
$0.6 / 1M; the data has no token counts and output tokens are not priced), so cost is 1 for
the strong arm and 0.06 for the weak one. Sweeping λ draws quality against the share sent to
the strong model; PGR = (quality - weak) / (strong - weak) and APGR is the area under PGR over
the share from 0 to 1 (the all-weak and all-strong end points included); random mixing = 0.5.

Train/evaluate split as in greenserv: with --train equal to --data, prompts are split in
halves by CRC-32 of their text (warm start on half 1 with both outcomes, run on half 0); with
another directory, its prompts that also occur in the evaluated data are left out.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from fleetroute_router.features import RequestInfo, estimate_tokens
from fleetroute_router.replay.common import Featurizer, Matrix, PolicySpec, arms, text_matrix
from fleetroute_router.replay.data import Outcomes, half, load_routellm, same_directory
from fleetroute_router.replay.progress import Progress

WEAK, STRONG = "mixtral-8x7b", "gpt-4-1106"
DOLLARS_PER_INPUT_TOKEN = {WEAK: 0.6e-6, STRONG: 10.0e-6}
COST = {
    arm: price / DOLLARS_PER_INPUT_TOKEN[STRONG] for arm, price in DOLLARS_PER_INPUT_TOKEN.items()
}
COST_WEIGHTS = (0.0, 0.04, 0.08, 0.1, 0.12, 0.14, 0.16, 0.18, 0.2, 0.22, 0.25, 0.3, 0.4, 0.6, 1.0)
REFERENCE_COST_WEIGHT = 0.1


def rewards(outcomes: list[Outcomes], weight: float) -> Matrix:
    """(n, 2) rewards of the weak and strong arm per prompt under cost weight λ."""
    correct = np.array([[o.weak, o.strong] for o in outcomes])
    cost = np.array([COST[WEAK], COST[STRONG]])
    result: Matrix = (correct + weight * (1.0 - cost)) / (1.0 + weight)
    return result


def _split(
    data: list[Outcomes], data_dir: Path, train_dir: Path | None, benchmark: str
) -> tuple[list[Outcomes], list[Outcomes], str]:
    if train_dir is None:
        return data, [], "cold start, all prompts"
    if same_directory(data_dir, train_dir):
        return (
            [o for o in data if half(o.prompt) == 0],
            [o for o in data if half(o.prompt) == 1],
            "prompt CRC-32 halves: warm start on 1, run on 0",
        )
    seen = {o.prompt for o in data}
    train = [o for o in load_routellm(train_dir, benchmark) if o.prompt not in seen]
    return data, train, "train directory, prompts of the evaluated data excluded"


def _features(outcomes: list[Outcomes], featurize: Featurizer) -> Matrix:
    return featurize([RequestInfo("replay", o.prompt) for o in outcomes])


def _online(
    spec: PolicySpec,
    seed: int,
    features: Matrix,
    table: Matrix,
    train: tuple[Matrix, Matrix],
    correct: Matrix,
) -> tuple[float, float, float, list[float]]:
    """One run: mean reward, quality, strong share and the cumulative regret curve."""
    names = [WEAK, STRONG]
    policy = spec.build(
        seed, STRONG if train[1].size and train[1].mean(0)[1] > train[1].mean(0)[0] else WEAK
    )
    train_x, train_r = train
    for i in np.random.default_rng(seed).permutation(len(train_x)):
        for k, arm in enumerate(names):
            policy.update(arm, train_x[i], {"quality": float(train_r[i, k])})
    candidates = arms(names)
    total = quality = strong = regret = 0.0
    curve = []
    best = table.max(1)
    for i in np.random.default_rng(seed + 1_000_003).permutation(len(features)):
        k = names.index(policy.choose(features[i], candidates).arm)
        value = float(table[i, k])
        policy.update(names[k], features[i], {"quality": value})
        total += value
        quality += correct[i, k]
        strong += k
        regret += best[i] - value
        curve.append(regret)
    n = max(len(features), 1)
    return total / n, quality / n, strong / n, curve


def apgr(points: list[tuple[float, float]], weak: float, strong: float) -> float:
    """Area under PGR against the strong share, from (share, quality) points plus both ends."""
    gap = strong - weak
    if gap <= 0:
        return float("nan")
    curve = sorted([(0.0, 0.0), (1.0, 1.0), *((s, (q - weak) / gap) for s, q in points)])
    shares = np.array([s for s, _ in curve])
    pgr = np.array([p for _, p in curve])
    return float(np.sum((shares[1:] - shares[:-1]) * (pgr[1:] + pgr[:-1]) / 2.0))


def quality_at(
    points: list[tuple[float, float]], share: float, weak: float, strong: float
) -> float:
    """Quality at a strong share, linearly interpolated on the curve (with both ends)."""
    curve = sorted([(0.0, weak), (1.0, strong), *points])
    return float(np.interp(share, [s for s, _ in curve], [q for _, q in curve]))


def run(
    data_dir: Path,
    benchmark: str,
    spec: PolicySpec,
    *,
    train_dir: Path | None = None,
    seeds: int = 1,
    featurize: Featurizer = text_matrix,
    cost_weights: tuple[float, ...] = COST_WEIGHTS,
    reference_weight: float = REFERENCE_COST_WEIGHT,
    show_progress: bool | None = None,
) -> dict[str, Any]:
    """Sweep λ (online runs per seed), then APGR and the reference-λ rewards vs baselines."""
    evaluated, trained, split = _split(
        load_routellm(data_dir, benchmark), data_dir, train_dir, benchmark
    )
    if not evaluated:
        raise ValueError(f"no prompts to evaluate in {data_dir}/routellm/{benchmark}.csv")
    features = _features(evaluated, featurize)
    train_x = _features(trained, featurize) if trained else np.zeros((0, features.shape[1]))
    correct = np.array([[o.weak, o.strong] for o in evaluated])
    weights = tuple(sorted(set(cost_weights) | {reference_weight}))
    progress = Progress(
        len(weights) * seeds, f"replay {benchmark} {spec.name}", enabled=show_progress
    )
    sweep, reference, regret_curve = [], {}, []
    for weight in weights:
        table = rewards(evaluated, weight)
        train = (train_x, rewards(trained, weight) if trained else np.zeros((0, 2)))
        runs = [_online(spec, seed, features, table, train, correct) for seed in range(seeds)]
        progress.advance(seeds)
        mean_reward, mean_quality, share = (float(np.mean([r[i] for r in runs])) for i in range(3))
        sweep.append(
            {
                "cost_weight": weight,
                "quality": mean_quality,
                "strong_share": share,
                "mean_reward": mean_reward,
            }
        )
        if weight == reference_weight:
            regret_curve = runs[0][3]
            reference = {
                "policy_mean_reward": mean_reward,
                "policy_std_reward": float(np.std([r[0] for r in runs])),
                "random_mean_reward": float(table.mean()),
                "best_single_mean_reward": float(table.mean(0).max()),
                "best_single_model": [WEAK, STRONG][int(table.mean(0).argmax())],
                "oracle_mean_reward": float(table.max(1).mean()),
                "policy_quality": mean_quality,
                "policy_strong_share": share,
            }
    progress.close()
    weak, strong = (float(v) for v in correct.mean(0))
    points = [(p["strong_share"], p["quality"]) for p in sweep]
    tokens = sum(estimate_tokens(o.prompt) for o in evaluated)
    return {
        "suite": f"routellm-{benchmark}",
        "policy": spec.name,
        "parameters": dict(spec.parameters),
        "seeds": seeds,
        "split": split,
        "prompts": len(evaluated),
        "train_prompts": len(trained),
        "features": int(features.shape[1]),
        "reference_cost_weight": reference_weight,
        **reference,
        "apgr": apgr(points, weak, strong),
        "weak_quality": weak,
        "strong_quality": strong,
        "quality_at_half_strong": quality_at(points, 0.5, weak, strong),
        "random_quality_at_half_strong": (weak + strong) / 2.0,
        "dollars_all_weak": tokens * DOLLARS_PER_INPUT_TOKEN[WEAK],
        "dollars_all_strong": tokens * DOLLARS_PER_INPUT_TOKEN[STRONG],
        "pricing": "input tokens estimated at 4 chars/token; GPT-4-1106 $10/1M, Mixtral $0.6/1M",
        "sweep": sweep,
        "_regret_curves": [regret_curve],
    }
