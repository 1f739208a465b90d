"""The greenserv suite: unbiased replay (Li et al., 2011) of a policy over a uniform random log.

Walk the log in order (seed s starts at run s mod runs, then the others in turn, so seeds
replay different orders); at each step ask the policy for an arm among all models; keep the step
only when it equals the logged model, and then reveal its reward to the policy. Under uniform
logging the mean reward over kept steps estimates the policy's online mean reward without bias.

Train/evaluate split (no outcome is both taught and judged):
- no --train: cold start over the whole log;
- --train is the --data directory: queries split in halves by CRC-32 of query_id; the policy
  is warm-started on rewards.csv rows of half 1 and replayed on log steps of half 0;
- --train is another directory: warm start on all its rewards.csv rows except prompts that also
  occur in the evaluated data, replay on the whole log;
- --folds K with --train the --data directory: K-fold cross-validation, queries in K folds by
  CRC-32 of query_id; every fold's log steps are replayed by a policy warm-started on the
  rewards.csv rows of the other K-1 folds, and a seed's mean pools the kept steps of all folds.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fleetroute_router.features import RequestInfo
from fleetroute_router.replay.common import (
    Featurizer,
    Matrix,
    PolicySpec,
    arms,
    best_of,
    text_matrix,
    warm_start,
)
from fleetroute_router.replay.data import (
    GreenServ,
    LogStep,
    fold,
    half,
    load_greenserv,
    same_directory,
)
from fleetroute_router.replay.progress import Progress


def query_features(data: GreenServ, featurize: Featurizer) -> tuple[dict[str, int], Matrix]:
    """Each query's row index (queries sorted by id) and the feature matrix of their prompts."""
    ids = sorted(data.queries)
    requests = [
        RequestInfo("replay", data.queries[q].prompt, max_tokens=data.queries[q].max_new_tokens)
        for q in ids
    ]
    return {q: i for i, q in enumerate(ids)}, featurize(requests)


def _split(
    data: GreenServ, data_dir: Path, train_dir: Path | None
) -> tuple[set[str], GreenServ | None, set[str], str]:
    """Evaluated query ids, the training data, its usable query ids, and the split's name."""
    logged = {s.query_id for s in data.log}
    if train_dir is None:
        return logged, None, set(), "cold start, whole log"
    if same_directory(data_dir, train_dir):
        evaluated = {q for q in logged if half(q) == 0}
        trained = {q for q in data.rewards if half(q) == 1}
        return evaluated, data, trained, "query_id CRC-32 halves: train rewards 1, replay log 0"
    train = load_greenserv(train_dir)
    seen = {data.queries[q].prompt for q in logged if q in data.queries}
    trained = {
        q for q in train.rewards if q in train.queries and train.queries[q].prompt not in seen
    }
    return logged, train, trained, "train directory, prompts of the evaluated log excluded"


def baselines(data: GreenServ, evaluated: set[str]) -> dict[str, Any]:
    """Random (the logger), best single model and best model per dataset in hindsight, oracle."""
    steps = [s for s in data.log if s.query_id in evaluated]
    if not steps:
        raise ValueError("the evaluated log is empty")
    per_model: dict[str, list[float]] = defaultdict(list)
    per_task: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for s in steps:
        per_model[s.model].append(s.reward)
        dataset = data.queries[s.query_id].dataset if s.query_id in data.queries else ""
        per_task[dataset][s.model].append(s.reward)
    model, best = best_of({m: float(np.mean(v)) for m, v in per_model.items()})
    task_best = {
        t: best_of({m: float(np.mean(v)) for m, v in models.items()})[1]
        for t, models in per_task.items()
    }
    counts: dict[str, int] = defaultdict(int)
    for s in steps:
        counts[data.queries[s.query_id].dataset if s.query_id in data.queries else ""] += 1
    oracle = [data.optimal.get(s.query_id, max(data.rewards[s.query_id].values())) for s in steps]
    return {
        "random_mean_reward": float(np.mean([s.reward for s in steps])),
        "best_single_mean_reward": best,
        "best_single_model": model,
        "best_per_dataset_mean_reward": sum(task_best[t] * counts[t] for t in counts) / len(steps),
        "oracle_mean_reward": float(np.mean(oracle)),
        "evaluated_log_steps": len(steps),
    }


@dataclass
class _Replayed:
    """One replay's outcome: mean reward over kept steps, their count and the regret curve."""

    reward_sum: float
    kept: int
    curve: list[float]


def _replay(
    spec: PolicySpec,
    seed: int,
    data: GreenServ,
    steps: list[LogStep],
    context: tuple[dict[str, int], Matrix],
    warm: tuple[list[tuple[int, str, float]], Matrix, str],
    models: list[str],
    progress: Progress,
) -> _Replayed:
    """Warm-start a fresh policy, then replay the steps (rotated by seed) through it."""
    index, features = context
    rows, train_features, static_pool = warm
    policy = spec.build(seed, static_pool)
    warm_start(policy, rows, train_features, seed)
    candidates = arms(models)
    total, hits, regret, curve = 0.0, 0, 0.0, []
    for s in _rotated(steps, seed):
        x = features[index[s.query_id]]
        if policy.choose(x, candidates).arm == s.model:
            total += s.reward
            hits += 1
            regret += data.optimal.get(s.query_id, s.reward) - s.reward
            curve.append(regret)
            policy.update(s.model, x, {"quality": s.reward})
        progress.advance()
    return _Replayed(total, hits, curve)


def _cross_validation(data: GreenServ, folds: int) -> list[tuple[set[str], set[str]]]:
    """Per fold (evaluated, trained) query ids: its log judged, the others' rewards taught."""
    logged = {s.query_id for s in data.log}
    return [
        (
            {q for q in logged if fold(q, folds) == k},
            {q for q in data.rewards if fold(q, folds) != k},
        )
        for k in range(folds)
    ]


def run(
    data_dir: Path,
    spec: PolicySpec,
    *,
    train_dir: Path | None = None,
    seeds: int = 1,
    folds: int = 0,
    featurize: Featurizer = text_matrix,
    show_progress: bool | None = None,
) -> dict[str, Any]:
    """Replay the policy once per seed (and fold); the mean reward over kept steps, baselines.

    folds >= 2 cross-validates: queries fall in `folds` folds by CRC-32 of query_id, and each
    fold's log is replayed by a policy warm-started on the rewards of every other fold (train_dir
    must then be data_dir). The mean reward of a seed pools the kept steps of all folds.
    """
    data = load_greenserv(data_dir)
    if not data.log:
        raise ValueError(f"{data_dir}/greenserv/random_log.csv is missing or empty")
    if folds == 1 or folds < 0:
        raise ValueError("--folds must be at least 2")
    index, features = query_features(data, featurize)
    context = (index, features)
    if folds:
        if train_dir is None or not same_directory(data_dir, train_dir):
            raise ValueError("--folds cross-validates within --data: give --train the same path")
        splits = _cross_validation(data, folds)
        train: GreenServ | None = data
        split = f"query_id CRC-32 mod {folds}: each fold replayed, trained on the other folds"
    else:
        evaluated, train, trained, split = _split(data, data_dir, train_dir)
        splits = [(evaluated, trained)]
    models = sorted(set(data.models) | (set(train.models) if train else set()))
    train_index, train_features = (
        query_features(train, featurize) if train is not None and train is not data else context
    )
    plans = []
    for evaluated, trained in splits:
        rows = (
            [(train_index[q], m, r) for q in sorted(trained) for m, r in train.rewards[q].items()]
            if train is not None
            else []
        )
        steps = [s for s in data.log if s.query_id in evaluated]
        plans.append((steps, (rows, train_features, _static_pool(rows, models))))
    total_steps = sum(len(steps) for steps, _ in plans)
    progress = Progress(seeds * total_steps, f"replay greenserv {spec.name}", enabled=show_progress)
    outcomes = [
        [_replay(spec, seed, data, steps, context, warm, models, progress) for steps, warm in plans]
        for seed in range(seeds)
    ]
    progress.close()
    rewards = [
        sum(o.reward_sum for o in per) / max(sum(o.kept for o in per), 1) for per in outcomes
    ]
    evaluated_all = set().union(*(e for e, _ in splits))
    result: dict[str, Any] = {
        "suite": "greenserv",
        "policy": spec.name,
        "parameters": dict(spec.parameters),
        "seeds": seeds,
        "split": split,
        "train_rows": int(np.mean([len(warm[0]) for _, warm in plans])),
        "arms": len(models),
        "features": int(features.shape[1]),
        "policy_mean_reward": float(np.mean(rewards)),
        "policy_std_reward": float(np.std(rewards)),
        "per_seed_mean_reward": rewards,
        "kept_steps_mean": float(np.mean([sum(o.kept for o in per) for per in outcomes])),
        **baselines(data, evaluated_all),
        "_regret_curves": [_joined([o.curve for o in per]) for per in outcomes],
    }
    if folds:
        result.update(_fold_figures(data, splits, outcomes))
    return result


def _fold_figures(
    data: GreenServ, splits: list[tuple[set[str], set[str]]], outcomes: list[list[_Replayed]]
) -> dict[str, Any]:
    """Per fold: the policy's mean over seeds and the fold's own best single model; spreads."""
    per_run = [o.reward_sum / max(o.kept, 1) for per in outcomes for o in per]
    per_fold = [
        float(np.mean([per[k].reward_sum / max(per[k].kept, 1) for per in outcomes]))
        for k in range(len(splits))
    ]
    best = [float(baselines(data, evaluated)["best_single_mean_reward"]) for evaluated, _ in splits]
    return {
        "folds": len(splits),
        "per_fold_mean_reward": per_fold,
        "per_fold_best_single_mean_reward": best,
        "fold_std_reward": float(np.std(per_fold)),
        "run_std_reward": float(np.std(per_run)),
        "folds_beating_best_single": sum(p > b for p, b in zip(per_fold, best, strict=True)),
    }


def _joined(curves: list[list[float]]) -> list[float]:
    """Cumulative regret curves of the folds one after another, as one curve."""
    joined: list[float] = []
    for curve in curves:
        offset = joined[-1] if joined else 0.0
        joined.extend(offset + value for value in curve)
    return joined


def _rotated(steps: list[LogStep], seed: int) -> list[LogStep]:
    """The log with its runs in turn from run `seed` (mod runs): each seed replays another order."""
    runs = sorted({s.run for s in steps})
    first = runs[seed % len(runs)]
    return sorted(steps, key=lambda s: ((s.run - first) % (max(runs) + 1), s.step))


def _static_pool(rows: list[tuple[int, str, float]], models: list[str]) -> str:
    """The model with the best mean reward in the training rows (first model without any)."""
    sums: dict[str, list[float]] = defaultdict(list)
    for _, model, reward in rows:
        sums[model].append(reward)
    if not sums:
        return models[0]
    return best_of({m: float(np.mean(v)) for m, v in sums.items()})[0]
