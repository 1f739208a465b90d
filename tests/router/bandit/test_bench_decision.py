"""`fleetroute bench decision` reports every case as one JSON line (speed is not asserted)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from fleetroute.cli import main
from fleetroute_router.bench import decision, reference


def _rows(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_every_case_is_reported(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(decision, "WARMUP", 20)
    assert main(["bench", "decision", "--json", "--decisions", "20", "--policy", "linucb"]) == 0
    lines = [row for row in _rows(capsys) if "policy" in row]
    assert {(r["arms"], r["features"]) for r in lines} == {
        (a, f) for a in decision.ARMS for f in decision.FEATURES
    }
    for row in lines:
        assert row["benchmark"] == "decision"
        assert row["policy"] == "linucb"
        assert 0 < row["p50_us"] <= row["p99_us"]
        assert row["baseline_p50_us"] > 0


def test_the_served_decision_is_set_against_the_reference_in_the_same_run(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(decision, "WARMUP", 20)
    monkeypatch.setattr(decision, "BLOCK", 7)  # several rounds, the last one short
    assert main(["bench", "decision", "--json", "--decisions", "30", "--no-grid"]) == 0
    rows = {row["case"]: row for row in _rows(capsys)}
    assert set(rows) == {"route", "learn", "reference"}
    for row in rows.values():
        assert (row["arms"], row["features"], row["decisions"]) == (16, 32, 30)
        assert 0 < row["p50_us"] <= row["p99_us"]
        assert row["ratio_p50"] == round(row["p50_us"] / row["reference_p50_us"], 2)
    assert rows["reference"]["ratio_p50"] == 1.0
    assert (rows["route"]["goal_p50_us"], rows["route"]["goal_p99_us"]) == (30.0, 150.0)


def test_the_plain_text_output_names_the_three_cases(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(decision, "WARMUP", 5)
    assert main(["bench", "decision", "--decisions", "5", "--no-grid"]) == 0
    out = capsys.readouterr().out
    for label in ("endpoint pick", "learning step", "bare-numpy LinUCB"):
        assert label in out


def test_the_reference_learns_the_better_arm() -> None:
    bare = reference.BareLinUCB(arms=3, dimension=4, alpha=0.1)
    for x in reference.contexts(300, 4):
        bare.update(bare.choose(x), x, 0.0)  # every arm looks bad ...
        bare.update(1, x, 1.0)  # ... but arm 1 is taught it is good
    assert bare.choose(reference.contexts(1, 4, seed=1)[0]) == 1


def test_the_padded_features_keep_the_text_features_first() -> None:
    request = decision.RequestInfo("m", decision.PROMPT, max_tokens=16)
    found = decision.padded_features(32)(request)
    text = decision.text_features(request)
    assert found.vector.shape == (32,)
    assert (found.vector[: text.vector.size] == text.vector).all()
    assert not found.vector[text.vector.size :].any()
    assert decision.padded_features(4)(request).vector.shape == (4,)
