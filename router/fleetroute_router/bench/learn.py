"""`fleetroute bench learn`: the router learns answer quality live, against its offline replay.

The embedded simulated fleet's pools play models of the real routing data (greenserv,
shared/data): by default llama-70b-decode plays yi-34b, llama-8b-l4 llama-3.1-8b, qwen-14b-a10g
qwen2.5-14b and mistral-7b-external mistral-7b (`--play POOL=MODEL`). The data's logging policy
chose uniformly at random, so its log restricted to the played models is a uniform log over them,
and the replay method (Li et al., 2011) judges any policy on it without bias: a step counts only
when the policy picks the logged model, and only then is its recorded outcome learned.

Live, an HTTP client sends each logged prompt through the real OpenAI-compatible proxy to
`fleet/chat`, paced at `--rate`; when the pool that answered plays the logged model, a grader
posts the recorded outcome to POST /v1/feedback after a random delay of 0..`--max-delay` s. The
policy weighs quality alone (greenserv's recorded reward already mixes accuracy with measured
energy per token), so live and offline optimise the same thing. Offline, the same policy and
seed replay the same steps in process, learning at once. The report compares both mean rewards
with random, the best single played model and the oracle over them, gives the pools' split per
task type (the data's dataset) live and offline, the simulated energy per request, and, unless
`--no-baseline`, what the router does without any feedback (the same stream, no grader).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np

from fleetroute import routerconfig
from fleetroute.v1alpha1 import config_pb2
from fleetroute_router.dataplane import DataPlane
from fleetroute_router.defaults import embedded_config_path
from fleetroute_router.features import RequestInfo, text_features
from fleetroute_router.fleet import Fleet
from fleetroute_router.objectives import OBJECTIVES
from fleetroute_router.policies import registry
from fleetroute_router.policies.base import Arm
from fleetroute_router.proxy.app import ProxyServer
from fleetroute_router.replay.data import GreenServ, LogStep, load_greenserv
from fleetroute_router.replay.progress import Progress
from fleetroute_router.sim.fleet import SimFleet

POLICY = "llm/chat"
ALIAS = "fleet/chat"
DEFAULT_PLAY = (
    "llm/llama-70b-decode=yi-34b",
    "llm/llama-8b-l4=llama-3.1-8b",
    "llm/qwen-14b-a10g=qwen2.5-14b",
    "llm/mistral-7b-external=mistral-7b",
)
GOAL = 0.97


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data",
        type=Path,
        default=Path("../shared/data"),
        help="routing-data directory laid out like shared/data (greenserv/ is used)",
    )
    parser.add_argument(
        "--play",
        action="append",
        default=None,
        metavar="POOL=MODEL",
        help="an embedded pool and the data's model it plays (repeatable; default: "
        + ", ".join(DEFAULT_PLAY)
        + ")",
    )
    parser.add_argument(
        "--policy", default="linucb", choices=["linucb", "thompson", "epsilon-greedy"]
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=0, help="log steps to send (0: all)")
    parser.add_argument("--rate", type=float, default=10.0, help="requests per second")
    parser.add_argument(
        "--max-delay", type=float, default=30.0, help="the grader's delay: uniform in 0..this, s"
    )
    parser.add_argument("--sim-speed", type=float, default=0.02, help="simulated latency scale")
    parser.add_argument("--no-baseline", action="store_true", help="skip the run without feedback")
    parser.add_argument("--plot", type=Path, default=None, help="write the learning curve PNG")
    parser.add_argument(
        "--progress",
        choices=["auto", "always", "never"],
        default="auto",
        help="progress bar on stderr (auto: when stderr is a terminal)",
    )


@dataclass
class Run:
    """One pass over the steps: what was chosen, kept and earned."""

    label: str
    chosen: list[str] = field(default_factory=list)
    kept: list[bool] = field(default_factory=list)
    rewards: list[float] = field(default_factory=list)
    joules: list[float] = field(default_factory=list)

    def mean_reward(self) -> float:
        return float(np.mean(self.rewards)) if self.rewards else float("nan")

    def curve(self) -> list[float]:
        """Mean reward of the kept steps so far, after each kept step."""
        sums = np.cumsum(self.rewards)
        curve: list[float] = (sums / np.arange(1, len(sums) + 1)).tolist()
        return curve

    def split(self, datasets: Sequence[str], models: Sequence[str]) -> dict[str, dict[str, float]]:
        """Share of each played model per dataset."""
        counts: dict[str, Counter[str]] = defaultdict(Counter)
        for dataset, model in zip(datasets, self.chosen, strict=False):
            counts[dataset][model] += 1
        return {
            d: {m: c[m] / max(sum(c.values()), 1) for m in models}
            for d, c in sorted(counts.items())
        }


def parse_play(items: Iterable[str], data: GreenServ) -> dict[str, str]:
    """POOL=MODEL items as {pool: model}; ValueError naming a bad one."""
    played: dict[str, str] = {}
    for item in items:
        pool, sep, model = item.partition("=")
        if not sep or not pool or not model:
            raise ValueError(f"--play takes POOL=MODEL, got {item!r}")
        if model not in data.models:
            raise ValueError(f"--play: {model!r} is not a model of the data")
        played[pool] = model
    if len(set(played.values())) != len(played):
        raise ValueError("--play: two pools play the same model")
    return played


def fleet_config(played: dict[str, str], algorithm: str, seed: int) -> config_pb2.RouterConfig:
    """The embedded fleet, its policy weighing quality alone over the playing pools."""
    config = routerconfig.load(embedded_config_path())
    pools = {p.name for p in config.pools}
    unknown = sorted(set(played) - pools)
    if unknown:
        raise ValueError(f"--play: no pool {', '.join(unknown)} in the embedded fleet")
    policy = next(p for p in config.policies if p.name == POLICY)
    policy.candidates[:] = list(played)
    policy.objective.CopyFrom(config_pb2.Objective(quality=1.0))
    policy.algorithm.CopyFrom(config_pb2.Algorithm(name=algorithm, parameters={"seed": seed}))
    policy.feedback_window.FromSeconds(3600)
    return config


def offline(
    steps: Sequence[LogStep], data: GreenServ, played: dict[str, str], algorithm: str, seed: int
) -> Run:
    """The replay method in process: same policy, seed, features and steps, learning at once."""
    policy = registry.create(algorithm, {"seed": seed}, OBJECTIVES)
    weights = np.array([1.0, 0.0, 0.0, 0.0])
    arms = [Arm(pool, 1, 0) for pool in played]
    run = Run("offline replay")
    for step in steps:
        query = data.queries[step.query_id]
        info = RequestInfo(ALIAS, query.prompt, max_tokens=query.max_new_tokens)
        x = text_features(info).vector
        pool = policy.choose(x, arms, weights).arm
        run.chosen.append(played[pool])
        run.kept.append(played[pool] == step.model)
        if played[pool] == step.model:
            policy.update(pool, x, {"quality": step.reward})
            run.rewards.append(step.reward)
    return run


async def live(
    steps: Sequence[LogStep],
    data: GreenServ,
    played: dict[str, str],
    args: argparse.Namespace,
    *,
    feedback: bool,
    progress: Progress,
) -> Run:
    """The steps through a real proxy in front of the simulated fleet, graded with delay."""
    config = fleet_config(played, args.policy, args.seed)
    sims = SimFleet(config, speed=args.sim_speed, free_ports=True)
    await sims.start()
    dataplane = DataPlane(Fleet.from_config(sims.remap(config)))
    dataplane.start()
    proxy = ProxyServer(dataplane, "127.0.0.1:0")
    await proxy.start()
    run = Run("live" if feedback else "live, no feedback")
    rng = random.Random(args.seed)  # noqa: S311 (a benchmark's delays)
    graders: list[asyncio.Task[None]] = []
    base = f"http://{proxy.address}"
    try:
        async with aiohttp.ClientSession() as session:

            async def grade(decision: str, score: float, delay: float) -> None:
                await asyncio.sleep(delay)
                body = {"decision_id": decision, "score": score, "source": "eval"}
                async with session.post(f"{base}/v1/feedback", json=body) as reply:
                    if reply.status != 200:
                        raise RuntimeError(f"feedback refused: {reply.status} {await reply.text()}")

            answers: list[tuple[str, float, bool] | None] = [None] * len(steps)

            async def send(i: int, step: LogStep) -> None:
                query = data.queries[step.query_id]
                body = {"model": ALIAS, "prompt": query.prompt, "max_tokens": query.max_new_tokens}
                async with session.post(f"{base}/v1/completions", json=body) as response:
                    await response.read()
                    if response.status != 200:
                        raise RuntimeError(f"request {i} failed: {response.status}")
                    headers = response.headers
                model = played[headers["x-fleetroute-pool"]]
                kept = model == step.model
                joules = float(headers.get("x-fleetroute-energy-joules", "0"))
                answers[i] = (model, joules, kept)
                if kept and feedback:
                    delay = rng.uniform(0.0, args.max_delay)
                    decision = headers["x-fleetroute-decision-id"]
                    graders.append(asyncio.create_task(grade(decision, step.reward, delay)))
                progress.advance()

            # Open loop: requests leave on schedule, whatever the answers take.
            loop = asyncio.get_running_loop()
            start, sending = loop.time(), []
            for i, step in enumerate(steps):
                await asyncio.sleep(max(0.0, start + i / args.rate - loop.time()))
                sending.append(asyncio.create_task(send(i, step)))
            await asyncio.gather(*sending)
            for step, answer in zip(steps, answers, strict=True):
                assert answer is not None  # noqa: S101 (every send finished or raised)
                model, joules, kept = answer
                run.chosen.append(model)
                run.joules.append(joules)
                run.kept.append(kept)
                if kept:
                    run.rewards.append(step.reward)
            await asyncio.gather(*graders)
    finally:
        for task in graders:
            task.cancel()
        await proxy.stop()
        await dataplane.close()
        await sims.stop()
    return run


def baselines(steps: Sequence[LogStep], data: GreenServ, models: Sequence[str]) -> dict[str, Any]:
    """Random (the log itself), the best single played model, and the oracle over them."""
    per_model: dict[str, list[float]] = defaultdict(list)
    for step in steps:
        per_model[step.model].append(step.reward)
    means = {m: float(np.mean(v)) for m, v in per_model.items()}
    best = max(sorted(means), key=lambda m: means[m])
    oracle = [max(r for m, r in data.rewards[s.query_id].items() if m in models) for s in steps]
    return {
        "random_mean_reward": float(np.mean([s.reward for s in steps])),
        "best_single_model": best,
        "best_single_mean_reward": means[best],
        "oracle_mean_reward": float(np.mean(oracle)),
        "oracle_note": "best played model per query among its recorded outcomes",
    }


def _distance(a: dict[str, dict[str, float]], b: dict[str, dict[str, float]]) -> float:
    """Largest total-variation distance between two splits over the datasets of both."""
    gaps = [
        0.5 * sum(abs(a[d].get(m, 0.0) - b[d].get(m, 0.0)) for m in a[d] | b[d])
        for d in a
        if d in b
    ]
    return max(gaps, default=0.0)


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    data = load_greenserv(args.data)
    played = parse_play(args.play or DEFAULT_PLAY, data)
    models = list(played.values())
    steps = [s for s in data.log if s.model in models and s.query_id in data.queries]
    if args.steps:
        steps = steps[: args.steps]
    if not steps:
        raise ValueError(f"{args.data}: no logged step of the played models")
    datasets = [data.queries[s.query_id].dataset for s in steps]
    runs = 1 if args.no_baseline else 2
    show = {"auto": None, "always": True, "never": False}[args.progress]
    progress = Progress(runs * len(steps), "bench learn", enabled=show)
    replayed = offline(steps, data, played, args.policy, args.seed)
    graded = await live(steps, data, played, args, feedback=True, progress=progress)
    silent = (
        None
        if args.no_baseline
        else await live(steps, data, played, args, feedback=False, progress=progress)
    )
    progress.close()
    split_live, split_offline = graded.split(datasets, models), replayed.split(datasets, models)
    result: dict[str, Any] = {
        "benchmark": "learn",
        "policy": args.policy,
        "seed": args.seed,
        "played": played,
        "steps": len(steps),
        "rate": args.rate,
        "max_delay_s": args.max_delay,
        "live_mean_reward": graded.mean_reward(),
        "live_kept": len(graded.rewards),
        "offline_mean_reward": replayed.mean_reward(),
        "offline_kept": len(replayed.rewards),
        "live_over_offline": graded.mean_reward() / replayed.mean_reward(),
        "goal": GOAL,
        **baselines(steps, data, models),
        "live_joules_per_request": float(np.mean(graded.joules)),
        "split_live": split_live,
        "split_offline": split_offline,
        "split_distance": _distance(split_live, split_offline),
    }
    if silent is not None:
        result |= {
            "no_feedback_mean_reward": silent.mean_reward(),
            "no_feedback_kept": len(silent.rewards),
            "no_feedback_split": silent.split(datasets, models),
            "no_feedback_joules_per_request": float(np.mean(silent.joules)),
        }
    if args.plot is not None:
        plot(args.plot, result, graded, replayed, silent)
    return result


def plot(path: Path, result: dict[str, Any], *runs: Run | None) -> None:
    """Running mean reward of the kept steps, per run, against the baselines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(8, 4.5))
    for run in runs:
        if run is not None and run.rewards:
            axes.plot(run.curve(), label=f"{run.label} ({run.mean_reward():.3f})")
    for key, label, style in (
        ("random_mean_reward", "random", ":"),
        ("best_single_mean_reward", f"best single ({result['best_single_model']})", "--"),
        ("oracle_mean_reward", "oracle", "-."),
    ):
        value = result[key]
        axes.axhline(
            value, color="grey", linestyle=style, linewidth=0.9, label=f"{label} {value:.3f}"
        )
    axes.set_xlabel("kept (graded) steps")
    axes.set_ylabel("mean reward so far")
    axes.set_title(
        f"fleetroute bench learn: {result['policy']}, greenserv, {result['steps']} steps"
    )
    axes.legend(fontsize=8, loc="lower right")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def _table(result: dict[str, Any]) -> str:
    lines = [
        f"bench learn: {result['policy']} seed {result['seed']}, {result['steps']} steps at "
        f"{result['rate']:g} req/s, feedback delayed 0..{result['max_delay_s']:g} s",
        f"  live (proxy + delayed feedback)  {result['live_mean_reward']:.4f}  "
        f"({result['live_kept']} graded)",
        f"  offline replay, same seed        {result['offline_mean_reward']:.4f}  "
        f"({result['offline_kept']} kept)",
        f"  live / offline                   {result['live_over_offline']:.3f}  "
        f"(goal >= {result['goal']})",
        f"  random                           {result['random_mean_reward']:.4f}",
        f"  best single ({result['best_single_model']})".ljust(35)
        + f"{result['best_single_mean_reward']:.4f}",
        f"  oracle (played models)           {result['oracle_mean_reward']:.4f}",
    ]
    if "no_feedback_mean_reward" in result:
        lines.append(f"  live without feedback            {result['no_feedback_mean_reward']:.4f}")
    lines.append(
        f"  energy per request (simulated)   {result['live_joules_per_request']:.1f} J"
        + (
            f"; without feedback {result['no_feedback_joules_per_request']:.1f} J"
            if "no_feedback_joules_per_request" in result
            else ""
        )
    )
    models = list(result["played"].values())
    lines.append(
        "  split per task type (live | offline"
        + (" | no feedback)" if "no_feedback_split" in result else ")")
    )
    width = 8 * (3 if "no_feedback_split" in result else 2) + 2
    lines.append(
        "    " + "dataset".ljust(14) + "".join(m[: width - 2].rjust(width) for m in models)
    )
    for dataset, shares in result["split_live"].items():
        rows = [shares, result["split_offline"].get(dataset, {})]
        if "no_feedback_split" in result:
            rows.append(result["no_feedback_split"].get(dataset, {}))
        cells = "".join(" | ".join(f"{r.get(m, 0.0):.2f}" for r in rows).rjust(16) for m in models)
        lines.append("    " + dataset[:14].ljust(14) + cells)
    lines.append(f"  largest split difference live vs offline: {result['split_distance']:.3f} (TV)")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    try:
        result = asyncio.run(measure(args))
    except (ValueError, OSError) as error:
        print(f"bench learn: {error}", file=sys.stderr)
        return 2
    print(json.dumps(result) if args.json else _table(result))
    return 0
