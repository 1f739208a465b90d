"""Fixtures of the chart tests: the pinned helm and kubeconform, rendering and validation."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # e2e.localcluster builds and locates the pinned binaries
    sys.path.insert(0, str(ROOT))

from e2e.localcluster import Builder, Versions, cache_dir  # noqa: E402
from tests.chart import kubeschemas  # noqa: E402

CHART = ROOT / "charts" / "fleetroute"
RELEASE = "fleetroute"
NAMESPACE = "fleetroute-system"


class Rendered(list[dict[str, Any]]):
    """The objects `helm template` rendered, with lookups by kind and name."""

    def __init__(self, docs: list[dict[str, Any]], text: str) -> None:
        super().__init__(docs)
        self.text = text

    def kinds(self) -> list[str]:
        return sorted(d["kind"] for d in self)

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [d for d in self if d["kind"] == kind]

    def one(self, kind: str, name: str | None = None) -> dict[str, Any]:
        found = [d for d in self.of(kind) if name is None or d["metadata"]["name"] == name]
        assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
        return found[0]

    def containers(self) -> list[dict[str, Any]]:
        return [
            c for d in self.of("Deployment") for c in d["spec"]["template"]["spec"]["containers"]
        ]


class Helm:
    """`helm template` and `helm lint` of the chart, with values given as a dict."""

    def __init__(self, binary: Path, workdir: Path) -> None:
        self.binary = binary
        self.workdir = workdir
        self.env = {
            "HOME": str(workdir),
            "PATH": "/usr/bin:/bin",
            "HELM_CACHE_HOME": str(workdir / "cache"),
            "HELM_CONFIG_HOME": str(workdir / "config"),
            "HELM_DATA_HOME": str(workdir / "data"),
        }
        self._count = 0

    def _values_file(self, values: dict[str, Any] | None) -> list[str]:
        if not values:
            return []
        self._count += 1
        path = self.workdir / f"values-{self._count}.yaml"
        path.write_text(yaml.safe_dump(values))
        return ["--values", str(path)]

    def run(
        self, *args: str, values: dict[str, Any] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.binary), *args, *self._values_file(values)],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=120,
        )

    def template(
        self, values: dict[str, Any] | None = None, chart: Path = CHART, *extra: str
    ) -> Rendered:
        result = self.run("template", RELEASE, str(chart), "-n", NAMESPACE, *extra, values=values)
        assert result.returncode == 0, result.stderr
        docs = [d for d in yaml.safe_load_all(result.stdout) if d]
        return Rendered(docs, result.stdout)

    def template_error(self, values: dict[str, Any]) -> str:
        """The error `helm template` prints for values that must be rejected."""
        result = self.run("template", RELEASE, str(CHART), "-n", NAMESPACE, values=values)
        assert result.returncode != 0, "helm accepted values it should reject"
        return " ".join(result.stderr.split())


def _binary(name: str) -> Path:
    builder = Builder(Versions.load(), cache_dir() / "bin")
    builder.build([name])
    return builder.path(name)


@pytest.fixture(scope="session")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Helm:
    return Helm(_binary("helm"), tmp_path_factory.mktemp("helm"))


@pytest.fixture(scope="session")
def defaults(helm: Helm) -> Rendered:
    return helm.template()


@pytest.fixture(scope="session")
def chart_copy(tmp_path_factory: pytest.TempPathFactory) -> Callable[[], Path]:
    """A function returning a fresh copy of the chart, to add files such as dashboards."""

    def copy() -> Path:
        target = tmp_path_factory.mktemp("chart") / "fleetroute"
        shutil.copytree(CHART, target)
        return target

    return copy


@pytest.fixture(scope="session")
def kubeconform(
    tmp_path_factory: pytest.TempPathFactory,
) -> Callable[[str], tuple[int, list[dict[str, Any]]]]:
    """Validate YAML strictly with kubeconform against offline schemas; (exit code, results)."""
    binary = _binary("kubeconform")
    locations = kubeschemas.write_schemas(tmp_path_factory.mktemp("schemas"), ROOT / "crds")

    def validate(text: str, *extra: str) -> tuple[int, list[dict[str, Any]]]:
        argv: Sequence[str] = [
            str(binary), "-strict", "-output", "json", "-verbose", *locations, *extra, "-",
        ]  # fmt: skip
        result = subprocess.run(argv, input=text, capture_output=True, text=True, timeout=120)
        assert result.stdout, result.stderr
        return result.returncode, json.loads(result.stdout)["resources"]

    return validate
