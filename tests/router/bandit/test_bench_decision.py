"""`fleetroute bench decision` reports every case as one JSON line (speed is not asserted)."""

from __future__ import annotations

import json

import pytest

from fleetroute.cli import main
from fleetroute_router.bench import decision


def test_every_case_is_reported(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(decision, "WARMUP", 20)
    assert main(["bench", "decision", "--json", "--decisions", "20", "--policy", "linucb"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {(r["arms"], r["features"]) for r in lines} == {
        (a, f) for a in decision.ARMS for f in decision.FEATURES
    }
    for row in lines:
        assert row["benchmark"] == "decision"
        assert row["policy"] == "linucb"
        assert 0 < row["p50_us"] <= row["p99_us"]
        assert row["baseline_p50_us"] > 0
