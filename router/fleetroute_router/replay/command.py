"""`fleetroute replay`: judge a selection policy offline on a routing-data directory."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any

from fleetroute_router.policies import registry
from fleetroute_router.replay import export, greenserv, report, routellm
from fleetroute_router.replay.common import Featurizer, PolicySpec, parse_parameters, text_matrix
from fleetroute_router.replay.data import half, load_greenserv, load_routellm, same_directory

log = logging.getLogger(__name__)
SUITES = ("greenserv", "routellm-mmlu", "routellm-gsm8k")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data", type=Path, required=True, help="directory laid out like shared/data"
    )
    parser.add_argument("--suite", choices=SUITES, required=True)
    parser.add_argument(
        "--policy", required=True, choices=sorted(registry.PARAMETERS), help="selection algorithm"
    )
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="algorithm parameter, repeatable (e.g. alpha=0.5)",
    )
    parser.add_argument(
        "--train",
        type=Path,
        default=None,
        help="warm-start from this directory first (the --data directory itself: split in halves)",
    )
    parser.add_argument("--seeds", type=int, default=1, help="runs with seeds 0..N-1")
    parser.add_argument(
        "--folds",
        type=int,
        default=0,
        metavar="K",
        help="greenserv: K-fold cross-validation by CRC-32 of query_id (--train the --data "
        "directory); default: judge one half, train on the other",
    )
    parser.add_argument(
        "--semantic",
        action="store_true",
        help="add MiniLM prompt clusters to the features (needs the 'semantic' extra)",
    )
    parser.add_argument(
        "--cost-weight",
        type=float,
        default=routellm.REFERENCE_COST_WEIGHT,
        help="routellm: cost weight of the reported mean rewards",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    parser.add_argument("--plot", type=Path, default=None, help="write a PNG (needs matplotlib)")
    parser.add_argument(
        "--export-state",
        type=Path,
        default=None,
        metavar="FILE",
        help="also write a learning state with quality priors from every outcome of the "
        "--train directory (else --data), for `fleetroute serve --learning-prior FILE`",
    )
    parser.add_argument(
        "--pool",
        action="append",
        default=[],
        metavar="MODEL=POOL",
        help="with --export-state: the router pool that plays a model of the data (repeatable)",
    )
    parser.add_argument(
        "--policy-name",
        default="llm/chat",
        help="with --export-state: the RoutingPolicy (namespace/name) the priors are for",
    )
    parser.add_argument(
        "--progress",
        choices=["auto", "always", "never"],
        default="auto",
        help="progress bar on stderr (auto: when stderr is a terminal)",
    )


def training_prompts(args: argparse.Namespace) -> list[str]:
    """The prompts semantic clusters are fitted on: those the warm start trains on (only their
    text, never outcomes), or the evaluated prompts in a cold start."""
    root = args.train or args.data
    halves = args.train is not None and same_directory(args.data, args.train)
    if args.suite == "greenserv":
        queries = load_greenserv(root).queries
        return [q.prompt for k, q in sorted(queries.items()) if not halves or half(k) == 1]
    outcomes = load_routellm(root, args.suite.removeprefix("routellm-"))
    return [o.prompt for o in outcomes if not halves or half(o.prompt) == 1]


def _featurizer(args: argparse.Namespace) -> Featurizer:
    if not args.semantic:
        return text_matrix
    from fleetroute_router.features import semantic  # optional extra: imported on use

    return semantic.replay_featurizer(training_prompts(args))


def execute(args: argparse.Namespace) -> dict[str, Any]:
    """Run the chosen suite; ValueError for bad input."""
    if args.seeds < 1:
        raise ValueError("--seeds must be at least 1")
    if args.folds and args.suite != "greenserv":
        raise ValueError("--folds is for the greenserv suite")
    if args.folds and args.semantic:
        raise ValueError("--folds with --semantic would fit clusters on evaluated prompts")
    spec = PolicySpec(args.policy, parse_parameters(args.param))
    registry.parameters(spec.name, spec.parameters)
    if args.export_state is not None:
        if args.semantic:
            raise ValueError("--export-state writes priors over the router's own text features")
        state = export.export(
            args.train or args.data,
            args.suite,
            spec,
            export.parse_pools(args.pool),
            args.policy_name,
        )
        export.write(args.export_state, state)
        arms = {a.arm for a in state.policies[args.policy_name].arms}
        log.info(
            "learning state for %s (%s) written to %s",
            args.policy_name,
            ", ".join(sorted(arms)),
            args.export_state,
        )
    show = {"auto": None, "always": True, "never": False}[args.progress]
    featurize = _featurizer(args)
    if args.suite == "greenserv":
        return greenserv.run(
            args.data,
            spec,
            train_dir=args.train,
            seeds=args.seeds,
            folds=args.folds,
            featurize=featurize,
            show_progress=show,
        )
    return routellm.run(
        args.data,
        args.suite.removeprefix("routellm-"),
        spec,
        train_dir=args.train,
        seeds=args.seeds,
        featurize=featurize,
        reference_weight=args.cost_weight,
        show_progress=show,
    )


def run(args: argparse.Namespace) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        result = execute(args)
    except (ValueError, OSError) as error:
        log.error("replay: %s", error)
        return 2
    except ImportError as error:
        log.error("replay --semantic needs the 'semantic' extra (%s)", error)
        return 2
    if args.json:
        report.write_json(result, sys.stdout)
    else:
        report.write_table(result, sys.stdout)
    if args.plot is not None:
        try:
            report.plot(result, args.plot)
        except ImportError:
            log.error("--plot needs matplotlib: pip install 'fleetroute[plot]'")
            return 2
    return 0
