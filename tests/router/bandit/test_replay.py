"""`fleetroute replay` on a few verbatim rows of the real data (and on all of it when present)."""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path

import pytest

from fleetroute.cli import main
from fleetroute_router.replay import greenserv
from fleetroute_router.replay.data import fold, half, load_greenserv

FIXTURE = Path(__file__).parent / "fixtures" / "data"
MEANS = (
    "policy_mean_reward",
    "random_mean_reward",
    "best_single_mean_reward",
    "oracle_mean_reward",
)


def _replay(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, object]:
    assert main(["replay", "--progress", "never", "--json", *args]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1  # one JSON object
    result: dict[str, object] = json.loads(out)
    return result


@pytest.mark.parametrize("policy", ["linucb", "thompson", "epsilon-greedy", "random", "static"])
def test_greenserv_replay_on_the_fixture(capsys: pytest.CaptureFixture[str], policy: str) -> None:
    result = _replay(
        capsys,
        "--data",
        str(FIXTURE),
        "--suite",
        "greenserv",
        "--policy",
        policy,
        "--train",
        str(FIXTURE),
        "--seeds",
        "2",
    )
    for key in MEANS:
        assert 0.0 <= float(result[key]) <= 1.0  # type: ignore[arg-type]
    assert float(result["random_mean_reward"]) <= float(result["oracle_mean_reward"])  # type: ignore[arg-type]
    assert result["arms"] == 16
    assert result["split"] == "query_id CRC-32 halves: train rewards 1, replay log 0"
    assert int(result["train_rows"]) > 0  # type: ignore[call-overload]
    assert float(result["kept_steps_mean"]) > 0  # type: ignore[arg-type]


def test_greenserv_without_training_is_a_cold_start(capsys: pytest.CaptureFixture[str]) -> None:
    result = _replay(capsys, "--data", str(FIXTURE), "--suite", "greenserv", "--policy", "linucb")
    assert result["train_rows"] == 0
    assert result["evaluated_log_steps"] == 150


def test_training_on_another_directory_leaves_out_evaluated_prompts(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    evaluated = tmp_path / "evaluated"
    shutil.copytree(FIXTURE, evaluated)
    log = (evaluated / "greenserv" / "random_log.csv").read_text().splitlines(keepends=True)
    kept_queries = sorted({line.split(",")[2] for line in log[1:]})[:10]
    (evaluated / "greenserv" / "random_log.csv").write_text(
        log[0] + "".join(line for line in log[1:] if line.split(",")[2] in kept_queries)
    )
    rewards = (FIXTURE / "greenserv" / "rewards.csv").read_text().splitlines()[1:]
    unseen_rows = [r for r in rewards if r.split(",")[0] not in kept_queries]
    result = _replay(
        capsys,
        "--data",
        str(evaluated),
        "--suite",
        "greenserv",
        "--policy",
        "linucb",
        "--train",
        str(FIXTURE),
    )
    assert result["split"] == "train directory, prompts of the evaluated log excluded"
    assert result["train_rows"] == len(unseen_rows) > 0


def test_greenserv_cross_validation_judges_every_fold_once(
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = ["--data", str(FIXTURE), "--suite", "greenserv", "--policy", "linucb"]
    result = _replay(capsys, *args, "--train", str(FIXTURE), "--folds", "3", "--seeds", "2")
    assert result["folds"] == 3
    assert result["split"] == (
        "query_id CRC-32 mod 3: each fold replayed, trained on the other folds"
    )
    assert result["evaluated_log_steps"] == 150  # every logged step falls in exactly one fold
    per_fold = result["per_fold_mean_reward"]
    assert isinstance(per_fold, list)
    assert len(per_fold) == len(result["per_fold_best_single_mean_reward"]) == 3  # type: ignore[arg-type]
    assert all(0.0 <= float(p) <= 1.0 for p in per_fold)
    assert 0 <= int(result["folds_beating_best_single"]) <= 3  # type: ignore[call-overload]
    # Each fold trains on about two thirds of the queries' rewards, not on all of them.
    rewards = len((FIXTURE / "greenserv" / "rewards.csv").read_text().splitlines()) - 1
    assert 0.4 * rewards < int(result["train_rows"]) < 0.9 * rewards  # type: ignore[call-overload]


def test_the_cross_validation_table_names_every_fold(
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = ["--data", str(FIXTURE), "--suite", "greenserv", "--policy", "linucb"]
    assert main(["replay", *args, "--train", str(FIXTURE), "--folds", "3"]) == 0
    table = capsys.readouterr().out
    assert "per fold, policy (best single model of that fold): " in table
    assert table.split("that fold): ")[1].split("\n")[0].count("(") == 3
    assert "over folds" in table
    assert "of 3 folds beat their best single model" in table


def test_cross_validation_never_trains_on_the_fold_it_judges() -> None:
    data = load_greenserv(FIXTURE)
    splits = greenserv._cross_validation(data, 4)
    assert set().union(*(evaluated for evaluated, _ in splits)) == {s.query_id for s in data.log}
    for evaluated, trained in splits:
        assert not evaluated & trained
        assert {fold(q, 4) for q in evaluated} | {fold(q, 4) for q in trained} == {0, 1, 2, 3}
    assert fold("17", 2) == half("17")


@pytest.mark.parametrize("suite", ["routellm-mmlu", "routellm-gsm8k"])
def test_routellm_replay_on_the_fixture(capsys: pytest.CaptureFixture[str], suite: str) -> None:
    result = _replay(
        capsys,
        "--data",
        str(FIXTURE),
        "--suite",
        suite,
        "--policy",
        "linucb",
        "--train",
        str(FIXTURE),
        "--seeds",
        "2",
        "--param",
        "alpha=0.5",
    )
    for key in MEANS:
        assert 0.0 <= float(result[key]) <= 1.0  # type: ignore[arg-type]
    assert 0.0 <= float(result["apgr"]) <= 1.0  # type: ignore[arg-type]
    assert result["parameters"] == {"alpha": 0.5}
    sweep = result["sweep"]
    assert isinstance(sweep, list)
    assert len(sweep) >= 10


def test_random_routing_has_an_apgr_near_one_half(capsys: pytest.CaptureFixture[str]) -> None:
    result = _replay(
        capsys,
        "--data",
        str(FIXTURE),
        "--suite",
        "routellm-gsm8k",
        "--policy",
        "random",
        "--seeds",
        "8",
    )
    assert abs(float(result["apgr"]) - 0.5) < 0.1  # type: ignore[arg-type]


def test_the_table_names_every_baseline(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["replay", "--data", str(FIXTURE), "--suite", "routellm-gsm8k", "--policy", "linucb"]
    assert main(args) == 0
    table = capsys.readouterr().out
    for row in ("policy (linucb)", "random", "best single (", "oracle", "APGR", "$10/1M"):
        assert row in table


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--data", "/nonexistent", "--suite", "greenserv"], "queries.csv is missing"),
        (["--data", str(FIXTURE), "--suite", "greenserv", "--param", "alpha=-2"], "alpha=-2.0"),
        (["--data", str(FIXTURE), "--suite", "greenserv", "--param", "alpha"], "NAME=NUMBER"),
        (["--data", str(FIXTURE), "--suite", "greenserv", "--seeds", "0"], "at least 1"),
        (
            [
                "--data",
                str(FIXTURE),
                "--suite",
                "greenserv",
                "--train",
                str(FIXTURE),
                "--folds",
                "1",
            ],
            "--folds must be at least 2",
        ),
        (["--data", str(FIXTURE), "--suite", "greenserv", "--folds", "5"], "give --train the same"),
        (["--data", str(FIXTURE), "--suite", "routellm-gsm8k", "--folds", "5"], "greenserv suite"),
    ],
)
def test_bad_input_exits_2_with_a_message(
    caplog: pytest.LogCaptureFixture, args: list[str], message: str
) -> None:
    assert main(["replay", "--policy", "linucb", *args]) == 2
    assert message in caplog.text


def test_plot_writes_a_png(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("matplotlib")
    for suite in ("greenserv", "routellm-gsm8k"):
        png = tmp_path / f"{suite}.png"
        args = ["--data", str(FIXTURE), "--suite", suite, "--policy", "linucb", "--plot", str(png)]
        _replay(capsys, *args)
        assert png.read_bytes().startswith(b"\x89PNG")


def _real_data() -> Path:
    configured = os.environ.get("FLEETROUTE_DATA")
    path = Path(configured) if configured else Path(__file__).parents[3] / ".." / "shared" / "data"
    if not (path / "greenserv" / "random_log.csv").is_file():
        pytest.skip("real routing data not found (set FLEETROUTE_DATA)")
    return path


def test_real_greenserv_warm_started_beats_random(capsys: pytest.CaptureFixture[str]) -> None:
    data = str(_real_data())
    result = _replay(
        capsys, "--data", data, "--suite", "greenserv", "--policy", "linucb", "--train", data
    )
    assert float(result["policy_mean_reward"]) > float(result["random_mean_reward"]) + 0.05  # type: ignore[arg-type]


def test_real_gsm8k_beats_random_routing(capsys: pytest.CaptureFixture[str]) -> None:
    data = str(_real_data())
    result = _replay(
        capsys, "--data", data, "--suite", "routellm-gsm8k", "--policy", "linucb", "--train", data
    )
    assert float(result["apgr"]) > 0.55  # type: ignore[arg-type]
    assert not math.isnan(float(result["quality_at_half_strong"]))  # type: ignore[arg-type]


def test_real_greenserv_cross_validated_beats_the_best_single_model(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The quality bar of bench/README.md: 5-fold cross-validated replay of warm-started LinUCB."""
    data = str(_real_data())
    result = _replay(
        capsys,
        "--data",
        data,
        "--suite",
        "greenserv",
        "--policy",
        "linucb",
        "--train",
        data,
        "--folds",
        "5",
        "--seeds",
        "2",
    )
    mean = float(result["policy_mean_reward"])  # type: ignore[arg-type]
    assert result["evaluated_log_steps"] == 9865  # every logged step judged once
    assert mean >= 0.78
    assert mean > float(result["best_single_mean_reward"])  # type: ignore[arg-type]
    assert mean > float(result["random_mean_reward"]) + 0.05  # type: ignore[arg-type]
    assert result["folds_beating_best_single"] == 5
