"""Quality priors from real outcomes: train a policy on a routing-data set, save it for a router.

Every observed (prompt, model, outcome) of the data is learned as the quality objective of the
arm its model is mapped to (`--pool MODEL=POOL`); models mapped to no pool are left out. The
result is a learning state (learning.proto) with one policy, which `fleetroute serve
--learning-prior FILE` (or the chart's `router.learningPrior` ConfigMap) loads for that policy
when it has learned nothing yet. Only quality is primed: latency, energy and cost are measured
live, on the fleet the router actually serves. greenserv's recorded reward already mixes
accuracy with measured energy per token (see shared/data/README.md): exported from greenserv,
"quality" is that mix; routellm's is plain correctness.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from fleetroute.v1alpha1 import learning_pb2
from fleetroute_router import learning
from fleetroute_router.features import FEATURE_NAMES, RequestInfo
from fleetroute_router.policies.bandits import LinearBandit
from fleetroute_router.replay.common import Matrix, PolicySpec, text_matrix, warm_start
from fleetroute_router.replay.data import load_greenserv, load_routellm
from fleetroute_router.replay.greenserv import query_features

ROUTELLM_MODELS = ("mixtral-8x7b", "gpt-4-1106")


def parse_pools(items: list[str]) -> dict[str, str]:
    """`--pool MODEL=POOL` values as a mapping; ValueError for a malformed or repeated one."""
    pools: dict[str, str] = {}
    for item in items:
        model, sep, pool = item.partition("=")
        if not sep or not model.strip() or not pool.strip():
            raise ValueError(f"--pool takes MODEL=POOL, got {item!r}")
        if model.strip() in pools:
            raise ValueError(f"--pool maps {model.strip()!r} twice")
        pools[model.strip()] = pool.strip()
    return pools


def _rows(
    data_dir: Path, suite: str, pools: Mapping[str, str]
) -> tuple[list[tuple[int, str, float]], Matrix]:
    if suite == "greenserv":
        data = load_greenserv(data_dir)
        unknown = sorted(set(pools) - set(data.models))
        if unknown:
            raise ValueError(f"--pool names models not in the data: {', '.join(unknown)}")
        index, features = query_features(data, text_matrix)
        rows = [
            (index[q], pools[m], r)
            for q in sorted(data.rewards)
            if q in index
            for m, r in sorted(data.rewards[q].items())
            if m in pools
        ]
        return rows, features

    outcomes = load_routellm(data_dir, suite.removeprefix("routellm-"))
    unknown = sorted(set(pools) - set(ROUTELLM_MODELS))
    if unknown:
        raise ValueError(f"--pool: routellm models are {', '.join(ROUTELLM_MODELS)}, not {unknown}")
    features = text_matrix([RequestInfo("replay", o.prompt) for o in outcomes])
    rows = []
    for i, o in enumerate(outcomes):
        for model, value in zip(ROUTELLM_MODELS, (o.weak, o.strong), strict=True):
            if model in pools:
                rows.append((i, pools[model], value))
    return rows, features


def export(
    data_dir: Path, suite: str, spec: PolicySpec, pools: Mapping[str, str], policy: str
) -> learning_pb2.RouterLearning:
    """The learning state of `policy` after learning every mapped outcome of the data."""
    if not pools:
        raise ValueError("--export-state needs at least one --pool MODEL=POOL")
    rows, features = _rows(data_dir, suite, pools)
    if not rows:
        raise ValueError("no outcome of the data belongs to a mapped model")
    bandit = spec.build(0)
    if not isinstance(bandit, LinearBandit):
        raise ValueError(f"--export-state needs a learning policy, not {spec.name}")
    warm_start(bandit, rows, features, 0)
    state = learning.take({policy: bandit}, FEATURE_NAMES, replica="fleetroute replay")
    state.policies[policy].algorithm = spec.name
    return state


def write(path: Path, state: learning_pb2.RouterLearning) -> None:
    learning.save(path, state)
