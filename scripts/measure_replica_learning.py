"""Measure what one router replica publishes: object sizes, and the time each step takes.

    .venv/bin/python scripts/measure_replica_learning.py

Policies are LinUCB over the router's 26 text features with 4 objectives, trained on the text
features of 500 varied prompts; docs/replica-learning.md quotes the output.
"""

from __future__ import annotations

import json
import time

import numpy as np

from fleetroute import replica_learning
from fleetroute.replica_learning import Owner, Published
from fleetroute_router.arm_stats import ArmStatistics as Counts
from fleetroute_router.features import DIMENSION, FEATURE_NAMES, RequestInfo, text_features
from fleetroute_router.learning.replicas import ReplicaLearning
from fleetroute_router.policies.bandits import LinUCB

OBJECTIVES = ("quality", "latency", "energy", "cost")
POD = "fleetroute-router-7f9c6d5b8-abcde"
WORDS = [
    "explain",
    "write",
    "code",
    "python",
    "sql",
    "poem",
    "story",
    "summarise",
    "translate",
    "maths",
    "prove",
    "why",
    "how",
    "list",
    "compare",
    "debug",
]


def _vectors(n: int = 500) -> list[np.ndarray]:
    rng = np.random.default_rng(1)
    return [
        text_features(
            RequestInfo(
                "m",
                " ".join(rng.choice(WORDS, size=int(rng.integers(3, 400)))),
                max_tokens=int(rng.integers(0, 2000)),
            )
        ).vector
        for _ in range(n)
    ]


def _replica(policies: int, arms: int, requests: int = 2000) -> ReplicaLearning:
    rng = np.random.default_rng(0)
    vectors = _vectors()
    bandits = {
        f"ns/policy-{i}": LinUCB(objectives=OBJECTIVES, discount=0.999) for i in range(policies)
    }
    counts = Counts()
    sync = ReplicaLearning(POD, lambda: bandits, lambda: counts, FEATURE_NAMES)
    sync.resume(None)
    for name, bandit in bandits.items():
        for j in range(requests):
            arm = f"pool-{j % arms}"
            scores = {o: float(rng.random()) for o in OBJECTIVES}
            bandit.update(arm, vectors[j % len(vectors)], scores)
            counts.chose(name, arm)
            counts.learned(name, arm, scores)
    return sync


def sizes() -> None:
    print(f"sizes ({DIMENSION} features, {len(OBJECTIVES)} objectives):")
    for policies, arms in ((1, 4), (4, 4), (10, 8), (25, 8), (60, 8)):
        sync = _replica(policies, arms)
        message = sync.publish()
        objects = replica_learning.manifests(
            "fleetroute-system", POD, 1, message, Owner(POD, "0" * 36)
        )
        packed = sum(len(v) * 3 // 4 for o in objects for v in o["binaryData"].values())
        wire = sum(len(json.dumps(o)) for o in objects)
        raw = len(message.SerializeToString())
        print(
            f"  {policies:3d} policies x {arms} arms: protobuf {raw:>9,} B"
            f"  zlib {packed:>8,} B  objects {len(objects)}  JSON sent {wire:>8,} B"
        )


def timings() -> None:
    print("per publish period, 4 policies x 4 arms:")
    for peers in (1, 9, 49):
        sync = _replica(4, 4, requests=400)
        started = time.perf_counter()
        build = sync.capture()
        capture = time.perf_counter() - started
        started = time.perf_counter()
        message = build()
        replica_learning.manifests("ns", POD, 1, message)
        encode = time.perf_counter() - started
        others = [Published(f"peer-{i}", 1, None, message) for i in range(peers)]
        started = time.perf_counter()
        sync.select(others)
        models = sync.models()
        select = time.perf_counter() - started
        started = time.perf_counter()
        shared = sync.shared_totals(models)
        summed = time.perf_counter() - started
        started = time.perf_counter()
        sync.rebuild(shared)
        rebuild = time.perf_counter() - started
        print(
            f"  {peers:2d} peers: on the loop {1e3 * (capture + select + rebuild):5.1f} ms "
            f"(capture {1e3 * capture:.1f}, select {1e3 * select:.1f}, rebuild "
            f"{1e3 * rebuild:.1f}); in a thread {1e3 * (encode + summed):5.1f} ms (build and "
            f"compress {1e3 * encode:.1f}, sum the peers {1e3 * summed:.1f})"
        )


if __name__ == "__main__":
    sizes()
    timings()
