"""Fixtures shared by the unit tests: the repository's paths and its example fleet."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests import fuzzing  # noqa: F401 (loads the hypothesis profile)

ROOT = Path(__file__).resolve().parent.parent


def load_documents(path: Path) -> list[dict[str, Any]]:
    """Every YAML document in a file."""
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def example_objects() -> list[dict[str, Any]]:
    """The objects of examples/fleet/, in file order."""
    objects: list[dict[str, Any]] = []
    for path in sorted((ROOT / "examples" / "fleet").glob("*.yaml")):
        objects.extend(load_documents(path))
    return objects
