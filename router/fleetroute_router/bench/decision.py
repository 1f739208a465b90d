"""`fleetroute bench decision`: latency of one routing decision, features plus policy choice.

First the served decision: RoutingCore.route for a LinUCB alias over ROUTE_ARMS pools of two
endpoints each, with ROUTE_FEATURES features (the text features of PROMPT, zero-padded) and the
default endpoint-picker profile, i.e. features, policy choice, endpoint pick and the Decision;
and, timed in the same rounds, the bare-numpy LinUCB choose + update (bench/reference.py) at the
same size, which is the floor: the ratio is against it. The learning step (RoutingCore.learn of
four objectives) is timed too. `--no-grid` stops there.

Then per case (arms x feature dimension x policy) it times DECISIONS decisions one by one:
extract the text features of a typical prompt, widen the vector to the case's dimension, and let
a policy warmed by WARMUP updates choose. The baseline is the same extraction plus a uniformly
random choice, run in the same process; ratios are against it. `--semantic` times the MiniLM
cluster feature separately (it needs the 'semantic' extra).
"""

from __future__ import annotations

import argparse
import gc
import json
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from fleetroute.v1alpha1 import config_pb2
from fleetroute_router import objectives, runtime
from fleetroute_router.bench import reference
from fleetroute_router.core import RoutingCore
from fleetroute_router.endpoints import config as endpoint_config
from fleetroute_router.endpoints.breaker import CircuitBreakers
from fleetroute_router.endpoints.context import PluginContext
from fleetroute_router.endpoints.scheduler import EndpointPicker
from fleetroute_router.features import Features, RequestInfo, text_features
from fleetroute_router.fleet import Fleet
from fleetroute_router.objectives import OBJECTIVES
from fleetroute_router.policies import registry
from fleetroute_router.policies.base import Arm, SelectionPolicy

ARMS = (2, 4, 16, 64)
FEATURES = (8, 16, 32, 64)
POLICIES = ("linucb", "thompson", "epsilon-greedy")
DECISIONS = 5000
WARMUP = 500
ROUTE_ARMS, ROUTE_FEATURES = 16, 32
# The served decision and the reference alternate in blocks of this many, so that whatever else
# runs on the machine slows both alike.
BLOCK = 250
ALIAS = "bench/alias"
GOAL_P50_US, GOAL_P99_US = 30.0, 150.0
# The embedded fleet's objective: every objective learned and weighed, as in serving.
WEIGHTS = objectives.weights(config_pb2.Objective(quality=0.5, latency=0.2, energy=0.2, cost=0.1))
PROMPT = (
    "Choose the correct answer. Respond with a single letter.\nQuestion:\nA train leaves the "
    "station at 3 pm travelling at 60 km/h; a second one leaves at 4 pm at 80 km/h on the same "
    "track. At what time does the second train catch up with the first?\nOptions:\nA. 6 pm\n"
    "B. 7 pm\nC. 8 pm\nD. 9 pm\nAnswer:\n"
)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--decisions", type=int, default=DECISIONS, help="timed decisions a case")
    parser.add_argument("--policy", action="append", choices=POLICIES, help="default: all three")
    parser.add_argument(
        "--semantic", action="store_true", help="also time the MiniLM cluster feature"
    )
    parser.add_argument(
        "--no-grid",
        dest="grid",
        action="store_false",
        help="only the served decision against the bare-numpy reference",
    )


Samples = np.ndarray[Any, np.dtype[np.float64]]


def _time(decide: Callable[[], object], count: int) -> Samples:
    samples = np.empty(count)
    clock = time.perf_counter_ns
    gc.disable()
    try:
        for i in range(count):
            start = clock()
            decide()
            samples[i] = clock() - start
    finally:
        gc.enable()
    return samples / 1000.0


def route_fleet(arms: int = ROUTE_ARMS) -> Fleet:
    """A LinUCB alias over `arms` pools of two ready endpoints each."""
    config = config_pb2.RouterConfig()
    for i in range(arms):
        pool = config.pools.add(
            name=f"pool-{i}", model=f"bench/model-{i}", role=config_pb2.ROLE_UNIFIED,
            gpus_per_replica=1,
        )  # fmt: skip
        for j in range(2):
            pool.endpoints.add(address=f"127.0.{i}.{j + 1}:8000", ready=True)
    config.policies.add(
        name="bench", model_alias=ALIAS, candidates=[p.name for p in config.pools],
        objective=config_pb2.Objective(quality=0.5, latency=0.2, energy=0.2, cost=0.1),
        algorithm=config_pb2.Algorithm(name="linucb"),
    )  # fmt: skip
    return Fleet.from_config(config)


def padded_features(dimension: int) -> Callable[[RequestInfo], Features]:
    """The text features, zero-padded (or cut) to `dimension`."""

    def extract(request: RequestInfo) -> Features:
        found = text_features(request)
        vector = np.zeros(dimension)
        size = min(dimension, found.vector.size)
        vector[:size] = found.vector[:size]
        return Features(found.prompt_tokens, vector, found.task)

    return extract


def route_cases(decisions: int) -> list[dict[str, Any]]:
    """The served decision, its learning step and the bare-numpy reference, in the same rounds."""
    profiles = endpoint_config.load(
        endpoint_config.default_document(), PluginContext(breakers=CircuitBreakers())
    )
    core = RoutingCore(
        route_fleet(),
        extract=padded_features(ROUTE_FEATURES),
        endpoints=lambda load: EndpointPicker(profiles, load),
    )
    bare = reference.BareLinUCB(ROUTE_ARMS, ROUTE_FEATURES)
    request = RequestInfo(ALIAS, PROMPT, max_tokens=16)
    rng = np.random.default_rng(0)
    rewards = rng.random((WARMUP + decisions, len(OBJECTIVES)))
    contexts = reference.contexts(WARMUP + decisions, ROUTE_FEATURES)
    for i in range(WARMUP):
        decision = core.route(request)
        core.release(decision)
        core.learn(decision, dict(zip(OBJECTIVES, rewards[i].tolist(), strict=True)))
        bare.step(contexts[i], float(rewards[i, 0]))
    made: list[Any] = []

    def route() -> None:
        decision = core.route(request)
        core.release(decision)
        made.append(decision)

    def learn() -> None:
        decision = made.pop()
        core.learn(decision, dict(zip(OBJECTIVES, rewards[len(made)].tolist(), strict=True)))

    step = iter(range(WARMUP, WARMUP + decisions))

    def bare_step() -> None:
        i = next(step)
        bare.step(contexts[i], float(rewards[i, 0]))

    timed: dict[str, list[Samples]] = {"route": [], "learn": [], "reference": []}
    done = 0
    while done < decisions:
        block = min(BLOCK, decisions - done)
        timed["route"].append(_time(route, block))
        timed["learn"].append(_time(learn, block))
        timed["reference"].append(_time(bare_step, block))
        done += block
    figures = {name: np.percentile(np.concatenate(s), [50, 99]) for name, s in timed.items()}
    ref50, ref99 = figures["reference"]
    rows = []
    for name, (p50, p99) in figures.items():
        row: dict[str, Any] = {
            "benchmark": "decision",
            "case": name,
            "arms": ROUTE_ARMS,
            "features": ROUTE_FEATURES,
            "decisions": decisions,
            "p50_us": round(float(p50), 2),
            "p99_us": round(float(p99), 2),
            "reference_p50_us": round(float(ref50), 2),
            "reference_p99_us": round(float(ref99), 2),
            "ratio_p50": round(float(p50 / ref50), 2),
            "ratio_p99": round(float(p99 / ref99), 2),
        }
        if name == "route":
            row["goal_p50_us"], row["goal_p99_us"] = GOAL_P50_US, GOAL_P99_US
        rows.append(row)
    return rows


def _warm(policy: SelectionPolicy, arms: list[Arm], dimension: int) -> None:
    rng = np.random.default_rng(0)
    for _ in range(WARMUP):
        x = rng.random(dimension)
        scores = dict(zip(OBJECTIVES, rng.random(len(OBJECTIVES)).tolist(), strict=True))
        policy.update(policy.choose(x, arms, WEIGHTS).arm, x, scores)


def _decider(
    policy: SelectionPolicy, arms: list[Arm], dimension: int, request: RequestInfo
) -> Callable[[], object]:
    def decide() -> object:
        vector = np.resize(text_features(request).vector, dimension)
        return policy.choose(vector, arms, WEIGHTS)

    return decide


def cases(decisions: int, policies: list[str]) -> list[dict[str, Any]]:
    """Every case's p50/p99 in µs, with the random-choice baseline's."""
    request = RequestInfo("bench", PROMPT, max_tokens=16)
    results = []
    for arm_count in ARMS:
        arms = [Arm(f"pool-{i}", 1, 0) for i in range(arm_count)]
        for dimension in FEATURES:
            baseline = _time(
                _decider(registry.create("random", {"seed": 0}), arms, dimension, request),
                decisions,
            )
            base50, base99 = np.percentile(baseline, [50, 99])
            for name in policies:
                policy = registry.create(name, {"seed": 0}, OBJECTIVES)
                _warm(policy, arms, dimension)
                samples = _time(_decider(policy, arms, dimension, request), decisions)
                p50, p99 = np.percentile(samples, [50, 99])
                results.append(
                    {
                        "benchmark": "decision",
                        "policy": name,
                        "arms": arm_count,
                        "features": dimension,
                        "p50_us": round(float(p50), 2),
                        "p99_us": round(float(p99), 2),
                        "baseline_p50_us": round(float(base50), 2),
                        "baseline_p99_us": round(float(base99), 2),
                        "ratio_p50": round(float(p50 / base50), 2),
                    }
                )
    return results


def semantic_case(decisions: int) -> dict[str, Any]:
    """The MiniLM cluster feature's cost per prompt (embedding + nearest cluster)."""
    from fleetroute_router.features.semantic import Clusters, SemanticExtractor  # optional

    rng = np.random.default_rng(0)
    centroids = rng.standard_normal((16, 384))
    extractor = SemanticExtractor(Clusters(centroids / np.linalg.norm(centroids, axis=1)[:, None]))
    request = RequestInfo("bench", PROMPT, max_tokens=16)
    text = _time(lambda: text_features(request), decisions)
    semantic = _time(lambda: extractor(request), max(decisions // 100, 20))
    return {
        "benchmark": "decision",
        "case": "semantic-feature",
        "text_features_p50_us": round(float(np.percentile(text, 50)), 2),
        "semantic_features_p50_us": round(float(np.percentile(semantic, 50)), 2),
        "semantic_features_p99_us": round(float(np.percentile(semantic, 99)), 2),
        "ratio_p50": round(float(np.percentile(semantic, 50) / np.percentile(text, 50)), 1),
    }


_CASES = {
    "route": "decision (features + LinUCB + endpoint pick)",
    "learn": "learning step (4 objectives)",
    "reference": "bare-numpy LinUCB choose + update",
}


def run(args: argparse.Namespace) -> int:
    runtime.single_blas_thread()  # as `fleetroute serve` runs, the reference too
    results = route_cases(args.decisions)
    if args.grid:
        results += cases(args.decisions, args.policy or list(POLICIES))
    if args.semantic:
        results.append(semantic_case(args.decisions))
    for result in results:
        if args.json:
            print(json.dumps(result, sort_keys=True))
        elif result.get("case") in _CASES:
            print(
                f"{_CASES[result['case']]:>46}, {result['arms']} arms x {result['features']} "
                f"features: p50 {result['p50_us']:7.1f} µs  p99 {result['p99_us']:7.1f} µs  "
                f"(x{result['ratio_p50']} / x{result['ratio_p99']} the reference)"
            )
        elif "policy" in result:
            print(
                f"{result['policy']:>15} {result['arms']:>3} arms "
                f"{result['features']:>3} features: "
                f"p50 {result['p50_us']:7.1f} µs  p99 {result['p99_us']:7.1f} µs  "
                f"(random choice p50 {result['baseline_p50_us']:.1f} µs, x{result['ratio_p50']})"
            )
        else:
            print(
                f"semantic feature: p50 {result['semantic_features_p50_us']:.0f} µs, p99 "
                f"{result['semantic_features_p99_us']:.0f} µs; text features p50 "
                f"{result['text_features_p50_us']:.1f} µs (x{result['ratio_p50']})"
            )
    return 0
