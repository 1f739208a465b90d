"""`fleetroute bench decision`: latency of one routing decision, features plus policy choice.

Per case (arms x feature dimension x policy) it times DECISIONS decisions one by one: extract the
text features of a typical prompt, widen the vector to the case's dimension, and let a policy
warmed by WARMUP updates choose. The baseline is the same extraction plus a uniformly random
choice, run in the same process; ratios are against it. `--semantic` times the MiniLM cluster
feature separately (it needs the 'semantic' extra).
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
from fleetroute_router import objectives
from fleetroute_router.features import RequestInfo, text_features
from fleetroute_router.objectives import OBJECTIVES
from fleetroute_router.policies import registry
from fleetroute_router.policies.base import Arm, SelectionPolicy

ARMS = (2, 4, 16, 64)
FEATURES = (8, 16, 32, 64)
POLICIES = ("linucb", "thompson", "epsilon-greedy")
DECISIONS = 5000
WARMUP = 500
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


def _time(decide: Callable[[], object], count: int) -> np.ndarray[Any, np.dtype[np.float64]]:
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


def run(args: argparse.Namespace) -> int:
    results = cases(args.decisions, args.policy or list(POLICIES))
    if args.semantic:
        results.append(semantic_case(args.decisions))
    for result in results:
        if args.json:
            print(json.dumps(result, sort_keys=True))
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
