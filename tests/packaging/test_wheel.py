"""The wheel builds (`uv build`) and works when installed into a clean virtualenv."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


UV = Path(sys.executable).parent / "uv"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel, built by uv in an isolated build environment (its cache keeps hatchling)."""
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [
            str(UV),
            "build",
            "--system-certs",
            "--wheel",
            "--quiet",
            "--out-dir",
            str(out),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
        timeout=600,
    )
    (built,) = out.glob("fleetroute-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv (no system site-packages) with only the wheel and its dependencies,
    resolved from the wheel's own metadata; uv reuses its download and build caches."""
    path = tmp_path_factory.mktemp("venv") / "venv"
    subprocess.run(
        [
            str(UV),
            "venv",
            "--system-certs",
            "--quiet",
            "--seed",
            "--python",
            sys.executable,
            str(path),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    subprocess.run(
        [
            str(UV),
            "pip",
            "install",
            "--system-certs",
            "-q",
            "--python",
            str(path / "bin" / "python"),
            str(wheel),
        ],
        check=True,
        capture_output=True,
        timeout=900,
    )
    subprocess.run(
        ["sh", str(ROOT / "scripts" / "restore-otel-protos.sh"), str(path / "bin" / "python")],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return path


def run_installed(venv: Path, *argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run a command of the venv from outside the repository, so only the wheel is importable."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return subprocess.run(
        list(argv), capture_output=True, text=True, cwd=cwd, env=env, timeout=120, check=False
    )


def test_wheel_holds_the_packages_their_data_and_the_command(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for required in (
        "fleetroute/cli.py",
        "fleetroute/py.typed",
        "fleetroute/v1alpha1/router_pb2.py",
        "fleetroute/crds/render.py",
        "fleetroute_operator/main.py",
        "fleetroute_operator/py.typed",
        "fleetroute_router/command.py",
        "fleetroute_router/py.typed",
        "fleetroute_router/defaults/example-fleet.yaml",
    ):
        assert required in names, required
    tops = {name.split("/")[0] for name in names if not name.startswith("fleetroute-0")}
    assert tops == {"fleetroute", "fleetroute_operator", "fleetroute_router"}
    (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "fleetroute = fleetroute.cli:main" in text


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        pytest.param(["fleetroute", "--help"], "operator", id="top"),
        pytest.param(["fleetroute", "operator", "--help"], "--router-config-name", id="operator"),
        pytest.param(["fleetroute", "serve", "--help"], "--grpc", id="serve"),
    ],
)
def test_installed_command_helps(
    venv: Path, tmp_path: Path, argv: list[str], expected: str
) -> None:
    result = run_installed(venv, *argv, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert expected in result.stdout


def test_installed_package_comes_from_the_venv_with_its_embedded_fleet(
    venv: Path, tmp_path: Path
) -> None:
    code = (
        "import fleetroute, fleetroute_router.defaults as c; "
        "print(fleetroute.__file__); print(c.embedded_config_path().is_file())"
    )
    result = run_installed(venv, "python", "-c", code, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    location, found = result.stdout.split()
    assert Path(location).is_relative_to(venv)
    assert found == "True"


def test_installed_tracing_exporter_and_ext_proc_protos_both_import(
    venv: Path, tmp_path: Path
) -> None:
    code = (
        "from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter; "
        "from envoy.service.ext_proc.v3 import external_processor_pb2; print('ok')"
    )
    result = run_installed(venv, "python", "-c", code, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
