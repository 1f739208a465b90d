"""`fleetroute bench learn` on a few real logged steps: live through the proxy vs offline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fleetroute.cli import main

FIXTURE = Path(__file__).parent / "fixtures" / "data"
PLAY = ["llm/llama-8b-l4=llama-3.1-8b", "llm/mistral-7b-external=mistral-7b"]


def _bench(capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str, str]:
    argv = ["bench", "learn", "--data", str(FIXTURE), "--rate", "500", "--max-delay", "0.05"]
    argv += ["--progress", "never", "--sim-speed", "0"]
    for item in PLAY:
        argv += ["--play", item]
    code = main([*argv, *extra])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_live_learning_is_reported_beside_its_offline_replay(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    png = tmp_path / "curve.png"
    code, out, _ = _bench(capsys, "--json", "--plot", str(png))
    assert code == 0
    result = json.loads(out)
    steps = result["steps"]
    assert steps > 10  # every logged step of the two played models
    assert 0 < result["live_kept"] <= steps
    assert 0 < result["offline_kept"] <= steps
    for key in ("live_mean_reward", "offline_mean_reward", "no_feedback_mean_reward"):
        assert 0.0 <= result[key] <= 1.0
    assert result["random_mean_reward"] <= result["oracle_mean_reward"]
    assert set(result["split_live"]) == set(result["split_offline"])  # datasets of the data
    for shares in result["split_live"].values():
        assert sum(shares.values()) == pytest.approx(1.0)
    assert png.read_bytes().startswith(b"\x89PNG")


def test_a_pool_playing_an_unknown_model_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _bench(capsys, "--play", "llm/qwen-14b-a10g=gpt-9", "--no-baseline")
    assert code == 2
    assert "'gpt-9' is not a model of the data" in err


def test_the_split_table_has_one_cell_per_played_model(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _bench(capsys)
    assert code == 0
    rows = out.split("split per task type")[1].splitlines()[2:-1]  # after the header line
    assert rows
    for row in rows:
        # dataset, then per played model "live | offline | no feedback", cells apart
        cells = row.split()[1:]
        assert len([c for c in cells if c != "|"]) == 3 * len(PLAY), row
