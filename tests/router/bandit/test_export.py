"""`fleetroute replay --export-state`: quality priors from recorded outcomes, loaded by a router."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleetroute import routerconfig
from fleetroute.cli import main
from fleetroute_router import learning
from fleetroute_router.dataplane import DataPlane
from fleetroute_router.features import FEATURE_NAMES
from fleetroute_router.fleet import Fleet
from fleetroute_router.policies.bandits import LinearBandit
from tests.router.conftest import EMBEDDED

FIXTURE = Path(__file__).parent / "fixtures" / "data"


def _export(tmp_path: Path, *pools: str) -> tuple[int, Path]:
    path = tmp_path / "prior.pb"
    argv = ["replay", "--data", str(FIXTURE), "--train", str(FIXTURE), "--suite", "greenserv"]
    argv += ["--policy", "linucb", "--export-state", str(path), "--progress", "never"]
    for pool in pools:
        argv += ["--pool", pool]
    return main(argv), path


def test_an_exported_prior_primes_the_pools_that_play_the_models(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, path = _export(
        tmp_path, "llama-3.1-8b=llm/llama-8b-l4", "mistral-7b=llm/mistral-7b-external"
    )
    assert code == 0
    state = learning.load(path)
    policy = state.policies["llm/chat"]
    assert list(policy.feature_names) == list(FEATURE_NAMES)
    observed = {a.arm: a.observations for a in policy.arms if a.objective == "quality"}
    assert observed == {"llm/llama-8b-l4": 27.0, "llm/mistral-7b-external": 16.0}  # every row
    dataplane = DataPlane(Fleet.from_config(routerconfig.load(EMBEDDED)), scrape=False)
    assert dataplane.core.quality_unobserved("llm/chat")
    snapshots = learning.Snapshotter(
        tmp_path / "state.pb",
        dataplane.core.selectors,
        FEATURE_NAMES,
        on_restore=dataplane.restore_state,
        prior=path,
    )
    assert snapshots.restore() == ["llm/chat"]
    assert not dataplane.core.quality_unobserved("llm/chat")
    selector = dataplane.core.selectors()["llm/chat"]
    assert isinstance(selector, LinearBandit)
    k = selector.model.arms.index("llm/llama-8b-l4")
    assert selector.model.observations[:, k].tolist() == [27.0, 0.0, 0.0, 0.0]


@pytest.mark.parametrize(
    ("pools", "message"),
    [
        ((), "needs at least one --pool"),
        (("llama-3.1-8b",), "takes MODEL=POOL"),
        (("gpt-9=llm/x",), "models not in the data: gpt-9"),
    ],
)
def test_bad_export_arguments_fail_clearly(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, pools: tuple[str, ...], message: str
) -> None:
    code, path = _export(tmp_path, *pools)
    assert code == 2
    assert message in caplog.text
    assert not path.exists()
