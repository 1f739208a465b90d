"""RouterConfig files: parsing, the checks that keep a bad config from being served, revisions."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from fleetroute import routerconfig
from fleetroute.v1alpha1 import config_pb2

EMBEDDED = (
    Path(__file__).resolve().parents[2] / "router/fleetroute_router/defaults/example-fleet.yaml"
)


def _config() -> dict:
    return yaml.safe_load(EMBEDDED.read_text())


def test_the_embedded_fleet_loads() -> None:
    config = routerconfig.load(EMBEDDED)
    assert len(config.pools) == 5
    assert config.policies[0].model_alias == "fleet/chat"
    assert config.policies[0].slo.ttft.ToMilliseconds() == 500


def test_json_round_trip_is_stable() -> None:
    config = routerconfig.load(EMBEDDED)
    again = routerconfig.loads(routerconfig.dumps(config))
    assert again == config
    assert routerconfig.dumps(again) == routerconfig.dumps(config)


def test_revision_ignores_the_revision_field_and_tracks_content() -> None:
    config = routerconfig.load(EMBEDDED)
    before = routerconfig.revision(config)
    config.revision = "anything"
    assert routerconfig.revision(config) == before
    config.pools[0].endpoints.add(address="127.0.0.1:9999", ready=True)
    assert routerconfig.revision(config) != before


def _problems_after(change: dict) -> str:
    document = _config()
    for key, value in change.items():
        document[key] = value
    with pytest.raises(routerconfig.ConfigError) as raised:
        routerconfig.loads(yaml.safe_dump(document))
    return str(raised.value)


def test_unknown_candidate_is_named() -> None:
    document = _config()
    document["policies"][0]["candidates"].append("llm/nope")
    with pytest.raises(routerconfig.ConfigError, match="unknown pool 'llm/nope'"):
        routerconfig.loads(yaml.safe_dump(document))


def test_prefill_pool_cannot_be_a_candidate() -> None:
    document = _config()
    document["policies"][0]["candidates"] = ["llm/llama-70b-prefill"]
    with pytest.raises(routerconfig.ConfigError, match="name the decode pool"):
        routerconfig.loads(yaml.safe_dump(document))


def test_every_problem_is_reported_at_once() -> None:
    document = _config()
    document["pools"][2]["endpoints"] = [{"address": "no-port", "ready": True}]
    document["policies"].append(dict(document["policies"][0], name="llm/other"))
    document["policies"][0]["objective"] = {}
    document["policies"][0]["algorithm"] = {"name": "magic"}
    with pytest.raises(routerconfig.ConfigError) as raised:
        routerconfig.loads(yaml.safe_dump(document))
    message = str(raised.value)
    assert "'no-port' is not host:port" in message
    assert "model alias 'fleet/chat' is used by two policies" in message
    assert "objective weights must not all be zero" in message
    assert "unknown algorithm 'magic'" in message


def test_broken_pair_is_rejected() -> None:
    document = _config()
    document["pools"][0]["peerPool"] = "llm/llama-8b-l4"
    with pytest.raises(routerconfig.ConfigError, match="one prefill, one decode"):
        routerconfig.loads(yaml.safe_dump(document))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("pools: [", "not JSON or YAML"),
        ("- a list", "must be a mapping"),
        ("pools: [{name: a, model: m, gpusPerReplica: -1}]", "gpusPerReplica"),
        ("pools: [{name: a, colour: red}]", "colour"),
    ],
)
def test_malformed_files_say_what_is_wrong(text: str, expected: str) -> None:
    with pytest.raises(routerconfig.ConfigError, match=expected):
        routerconfig.loads(text)


def test_unreadable_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(routerconfig.ConfigError, match="cannot read"):
        routerconfig.load(tmp_path / "missing.yaml")


def test_enums_are_named_in_files() -> None:
    text = routerconfig.dumps(
        config_pb2.RouterConfig(
            pools=[config_pb2.Pool(name="a", model="m", role=config_pb2.ROLE_DECODE)]
        )
    )
    assert '"ROLE_DECODE"' in text
