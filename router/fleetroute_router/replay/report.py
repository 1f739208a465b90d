"""Print a replay result as a table or one JSON object, and draw it as a PNG."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TextIO


def public(result: dict[str, Any]) -> dict[str, Any]:
    """The result without internal fields (curves kept for plotting)."""
    return {k: v for k, v in result.items() if not k.startswith("_")}


def write_json(result: dict[str, Any], out: TextIO) -> None:
    out.write(json.dumps(public(result), sort_keys=True) + "\n")


def write_table(result: dict[str, Any], out: TextIO) -> None:
    r = result
    out.write(
        f"{r['suite']}: policy {r['policy']} {r['parameters'] or ''} over {r['seeds']} seed(s)\n"
        f"split: {r['split']}\n"
    )
    if "reference_cost_weight" in r:
        out.write(f"mean rewards at cost weight {r['reference_cost_weight']}\n")
    rows = [
        (
            f"policy ({r['policy']})",
            f"{r['policy_mean_reward']:.4f} ± {r['policy_std_reward']:.4f}",
        ),
        ("random", f"{r['random_mean_reward']:.4f}"),
        (f"best single ({r['best_single_model']})", f"{r['best_single_mean_reward']:.4f}"),
    ]
    if "best_per_dataset_mean_reward" in r:
        rows.append(("best model per dataset", f"{r['best_per_dataset_mean_reward']:.4f}"))
    rows.append(("oracle", f"{r['oracle_mean_reward']:.4f}"))
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        out.write(f"  {name:<{width}}  {value}\n")
    if "folds" in r:
        pairs = zip(r["per_fold_mean_reward"], r["per_fold_best_single_mean_reward"], strict=True)
        folds = ", ".join(f"{p:.4f} ({b:.4f})" for p, b in pairs)
        out.write(
            f"per fold, policy (best single model of that fold): {folds}\n"
            f"spread: ± {r['fold_std_reward']:.4f} over folds, ± {r['run_std_reward']:.4f} over "
            f"fold x seed runs; {r['folds_beating_best_single']} of {r['folds']} folds beat "
            "their best single model\n"
        )
    if "kept_steps_mean" in r:
        out.write(
            f"replay kept {r['kept_steps_mean']:.0f} of {r['evaluated_log_steps']} log steps "
            f"per seed; {r['arms']} arms, {r['features']} features, "
            f"{r['train_rows']} warm-start rows\n"
        )
    if "apgr" in r:
        out.write(
            f"APGR {r['apgr']:.3f} (random 0.5); quality at 50% strong share "
            f"{r['quality_at_half_strong']:.3f} vs random "
            f"{r['random_quality_at_half_strong']:.3f}; "
            f"weak {r['weak_quality']:.3f}, strong {r['strong_quality']:.3f}\n"
            f"pricing: {r['pricing']}\n  cost weight  strong share  quality  mean reward\n"
        )
        for p in r["sweep"]:
            out.write(
                f"  {p['cost_weight']:>11.2f}  {p['strong_share']:>12.3f}  "
                f"{p['quality']:>7.3f}  {p['mean_reward']:>11.4f}\n"
            )


def plot(result: dict[str, Any], path: Path) -> None:
    """Cumulative regret, and the quality/cost curve (routellm) or rewards vs baselines."""
    import matplotlib  # optional extra (plot): imported only for --plot

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for seed, curve in enumerate(result["_regret_curves"]):
        left.plot(curve, label=f"seed {seed}", linewidth=1)
    steps = max((len(c) for c in result["_regret_curves"]), default=0)
    slope = result["oracle_mean_reward"] - result["random_mean_reward"]
    left.plot([0, steps], [0, steps * slope], "--", label="random (expected)")
    left.set(title="cumulative regret", xlabel="learning step", ylabel="regret vs oracle")
    left.legend()
    if "sweep" in result:
        shares = [p["strong_share"] for p in result["sweep"]]
        right.plot(shares, [p["quality"] for p in result["sweep"]], "o-", label=result["policy"])
        right.plot(
            [0, 1],
            [result["weak_quality"], result["strong_quality"]],
            "--",
            label="random mix",
        )
        right.set(
            title=f"quality vs strong share (APGR {result['apgr']:.3f})",
            xlabel="share sent to the strong model",
            ylabel="quality",
        )
        right.legend()
    else:
        names = ["policy", "random", "best single", "per dataset", "oracle"]
        keys = ["policy", "random", "best_single", "best_per_dataset", "oracle"]
        right.bar(names, [result[f"{k}_mean_reward"] for k in keys])
        right.set(title="mean reward", ylim=(0.5, 1.0))
    figure.suptitle(f"{result['suite']} · {result['policy']}")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
