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
  occur in the evaluated data, replay on the whole log.
"""

from __future__ import annotations

from collections import defaultdict
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
from fleetroute_router.replay.data import GreenServ, LogStep, half, load_greenserv, same_directory
from fleetroute_router.replay.progress import Progress


def _features(data: GreenServ, featurize: Featurizer) -> tuple[dict[str, int], Matrix]:
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


def run(
    data_dir: Path,
    spec: PolicySpec,
    *,
    train_dir: Path | None = None,
    seeds: int = 1,
    featurize: Featurizer = text_matrix,
    show_progress: bool | None = None,
) -> dict[str, Any]:
    """Replay the policy once per seed; the mean reward over kept steps and the baselines."""
    data = load_greenserv(data_dir)
    if not data.log:
        raise ValueError(f"{data_dir}/greenserv/random_log.csv is missing or empty")
    evaluated, train, trained, split = _split(data, data_dir, train_dir)
    index, features = _features(data, featurize)
    models = sorted(set(data.models) | (set(train.models) if train else set()))
    rows: list[tuple[int, str, float]] = []
    train_features = features
    if train is not None:
        train_index, train_features = (
            (index, features) if train is data else _features(train, featurize)
        )
        rows = [
            (train_index[q], m, r) for q in sorted(trained) for m, r in train.rewards[q].items()
        ]
    static_pool = _static_pool(rows, models)
    steps = [s for s in data.log if s.query_id in evaluated]
    progress = Progress(seeds * len(steps), f"replay greenserv {spec.name}", enabled=show_progress)
    rewards, kept, regret_curves = [], [], []
    for seed in range(seeds):
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
        rewards.append(total / max(hits, 1))
        kept.append(hits)
        regret_curves.append(curve)
    progress.close()
    return {
        "suite": "greenserv",
        "policy": spec.name,
        "parameters": dict(spec.parameters),
        "seeds": seeds,
        "split": split,
        "train_rows": len(rows),
        "arms": len(models),
        "features": int(features.shape[1]),
        "policy_mean_reward": float(np.mean(rewards)),
        "policy_std_reward": float(np.std(rewards)),
        "per_seed_mean_reward": rewards,
        "kept_steps_mean": float(np.mean(kept)),
        **baselines(data, evaluated),
        "_regret_curves": regret_curves,
    }


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
