"""The CRDs: generated from the models, structural, rejecting bad objects with clear messages."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from fleetroute.crds import GPUPool, ModelPool, RoutingPolicy
from fleetroute.crds.common import parse_duration
from fleetroute.crds.render import KINDS, all_crds
from tests.crd_cases import INVALID, Mutation, example
from tests.crd_validator import errors


def test_generated_files_are_fresh(repo_root: Path) -> None:
    result = subprocess.run(
        [sys.executable, "scripts/generate.py", "--check"],
        cwd=repo_root,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_committed_yaml_is_what_the_models_render(repo_root: Path) -> None:
    on_disk = {
        yaml.safe_load(p.read_text())["metadata"]["name"]
        for p in (repo_root / "crds").glob("*.yaml")
    }
    assert on_disk == {c["metadata"]["name"] for c in all_crds()}


def _walk(schema: dict[str, Any], path: str) -> list[str]:
    """Paths of schema nodes that break the structural rules the API server enforces."""
    bad = []
    if "type" not in schema and "x-kubernetes-preserve-unknown-fields" not in schema:
        bad.append(f"{path}: no type")
    if "properties" in schema and "additionalProperties" in schema:
        bad.append(f"{path}: properties with additionalProperties")
    for key in ("anyOf", "oneOf", "allOf", "$ref", "title", "const"):
        if key in schema:
            bad.append(f"{path}: {key}")
    for name, child in (schema.get("properties") or {}).items():
        bad += _walk(child, f"{path}.{name}")
    if isinstance(schema.get("items"), dict):
        bad += _walk(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        bad += _walk(schema["additionalProperties"], f"{path}.*")
    return bad


@pytest.mark.parametrize("crd", all_crds(), ids=lambda c: c["spec"]["names"]["kind"])
def test_schemas_are_structural(crd: dict[str, Any]) -> None:
    version = crd["spec"]["versions"][0]
    assert _walk(version["schema"]["openAPIV3Schema"], "") == []
    assert version["subresources"] == {"status": {}}
    assert crd["spec"]["names"]["shortNames"]


def test_printer_columns_show_what_operators_look_for() -> None:
    columns = {k.kind: [c["name"] for c in k.columns] for k in KINDS}
    assert columns["GPUPool"][:5] == ["Product", "Nodes", "Capacity", "Allocated", "Free"]
    assert {"Model", "Role", "GPU", "Ready", "Desired", "Age"} <= set(columns["ModelPool"])
    assert {"Alias", "Algorithm", "Candidates", "Top Arm", "Age"} <= set(columns["RoutingPolicy"])


def test_every_example_object_is_valid(example_objects: list[dict[str, Any]]) -> None:
    ours = [o for o in example_objects if o["apiVersion"].startswith("fleetroute.dev/")]
    assert {o["kind"] for o in ours} == {"GPUPool", "ModelPool", "RoutingPolicy"}
    for obj in ours:
        assert errors(obj) == [], obj["metadata"]["name"]


def test_examples_parse_into_the_models(example_objects: list[dict[str, Any]]) -> None:
    models = {"GPUPool": GPUPool, "ModelPool": ModelPool, "RoutingPolicy": RoutingPolicy}
    for obj in example_objects:
        if obj["kind"] in models:
            models[obj["kind"]].model_validate(obj)


@pytest.mark.parametrize(
    ("kind", "name", "mutate", "expected"),
    [pytest.param(k, n, m, e, id=f"{k}-{case}") for k, n, case, m, e in INVALID],
)
def test_invalid_objects_are_rejected_with_a_clear_message(
    example_objects: list[dict[str, Any]], kind: str, name: str, mutate: Mutation, expected: str
) -> None:
    obj = example(example_objects, kind, name)
    assert errors(obj) == []
    mutate(obj)
    found = errors(obj)
    assert any(expected in message for message in found), found


def test_defaults_are_applied_like_the_api_server_would() -> None:
    from tests.crd_validator import _schemas, apply_defaults

    obj = {"spec": {"model": "m", "deploy": {"gpuPool": "l4", "image": "img"}}}
    value = apply_defaults(_schemas()["ModelPool"], obj)
    assert value["spec"]["role"] == "unified"
    assert value["spec"]["engine"] == "vllm"
    assert value["spec"]["deploy"]["replicas"] == 1
    assert value["spec"]["deploy"]["port"] == 8000


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("500ms", 0.5), ("1.5s", 1.5), ("2m", 120.0), ("1h30m", 5400.0), ("250us", 0.00025)],
)
def test_durations_parse_like_go(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "5", "-1s", "1 s", "1d"])
def test_bad_durations_are_rejected(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)
