"""The endpoint-picker config loader rejects every mistake at start-up, all at once."""

from __future__ import annotations

from typing import Any

import pytest

from fleetroute_router.endpoints import config
from fleetroute_router.endpoints.plugins.max_score_picker import MaxScorePicker


def test_the_shipped_default_loads() -> None:
    profiles = config.load(config.default_document())
    assert set(profiles) == {"default", "prefill"}
    default = profiles["default"]
    assert [type(f).__name__ for f in default.filters] == ["HealthyFilter"]
    assert {s.name: w for s, w in default.scorers} == {
        "queue": 2.0,
        "kv-cache": 1.0,
        "prefix": 2.0,
        "ttft": 2.0,
    }
    assert isinstance(default.picker, MaxScorePicker)


def test_a_plugin_without_a_name_is_named_by_its_type() -> None:
    profiles = config.load(
        {
            "plugins": [{"type": "queue-scorer"}, {"type": "max-score-picker"}],
            "profiles": [{"name": "default", "plugins": ["queue-scorer", "max-score-picker"]}],
        }
    )
    assert profiles["default"].scorers[0][0].name == "queue-scorer"


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"plugins": [{"name": "x", "type": "nope"}]}, "unknown type 'nope'"),
        ({"plugins": [{"name": "x"}]}, "has no type"),
        (
            {"plugins": [{"name": "q", "type": "queue-scorer"}] * 2},
            "plugin name 'q' is used twice",
        ),
        (
            {"plugins": [{"name": "k", "type": "kv-cache-utilization-scorer",
                          "parameters": {"missingScore": "x"}}]},
            "must be float",
        ),
        ({"profiles": [{"name": "p", "plugins": [{"pluginRef": "ghost"}]}]}, "unknown plugin"),
        (
            {"plugins": [{"type": "queue-scorer"}],
             "profiles": [{"name": "p", "plugins": ["queue-scorer"]}]},
            "exactly one picker",
        ),
        ({}, "no profiles"),
    ],
)  # fmt: skip
def test_mistakes_are_reported(document: dict[str, Any], message: str) -> None:
    with pytest.raises(config.EndpointConfigError, match=message):
        config.load(document)


def test_every_problem_is_listed_together() -> None:
    with pytest.raises(config.EndpointConfigError) as raised:
        config.load({"plugins": [{"name": "a", "type": "nope"}, {"name": "b"}]})
    assert "unknown type" in str(raised.value)
    assert "has no type" in str(raised.value)
    assert "no profiles" in str(raised.value)
