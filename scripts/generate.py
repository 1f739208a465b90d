"""Regenerate every committed generated file (protobufs, CRD YAML, chart files), or check them."""

from __future__ import annotations

import argparse
import filecmp
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import generate_chart

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "dashboards"))
import generate_dashboards  # noqa: E402 (dashboards/, beside the chart it feeds)

PROTO_ROOT = ROOT / "protos"
PROTO_PACKAGE = Path("fleetroute/v1alpha1")
PROTO_OUT = ROOT / "api" / PROTO_PACKAGE
CRD_OUT = ROOT / "crds"
# protoc plugins of mypy-protobuf (the dev extra installs them beside the interpreter).
MYPY_PLUGINS = ("protoc-gen-mypy", "protoc-gen-mypy_grpc")
PACKAGE_DOC = '"""Generated protobuf and gRPC code for fleetroute.v1alpha1: do not edit."""\n'


def generate_protos(out_root: Path) -> Path:
    """Run protoc (from grpcio-tools) on protos/ and write the Python package under out_root."""
    protos = sorted(
        str(p.relative_to(PROTO_ROOT)) for p in (PROTO_ROOT / PROTO_PACKAGE).glob("*.proto")
    )
    out_root.mkdir(parents=True, exist_ok=True)
    # protoc finds plugins on PATH unless told where they are: name them in this interpreter's
    # environment (the project's venv), so a fresh machine's PATH never matters.
    bin_dir = Path(sys.executable).parent
    plugins = [f"--plugin={name}={bin_dir / name}" for name in MYPY_PLUGINS]
    missing = [name for name in MYPY_PLUGINS if not (bin_dir / name).is_file()]
    if missing:
        raise SystemExit(f"{', '.join(missing)} not found in {bin_dir}: install the dev extra")
    command = [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        *plugins,
        f"-I{PROTO_ROOT}",
        f"--python_out={out_root}",
        f"--grpc_python_out={out_root}",
        f"--mypy_out={out_root}",
        f"--mypy_grpc_out={out_root}",
        *protos,
    ]
    done = subprocess.run(command, check=False, cwd=PROTO_ROOT, capture_output=True, text=True)  # noqa: S603
    if done.returncode != 0:
        raise SystemExit(f"protoc failed:\n{done.stderr}")
    package = out_root / PROTO_PACKAGE
    (package / "__init__.py").write_text(PACKAGE_DOC)
    (package / "py.typed").write_text("")
    return package


def generate_crds(out_dir: Path) -> None:
    """Write one YAML file per CustomResourceDefinition from the models in fleetroute.crds."""
    sys.path.insert(0, str(ROOT / "api"))
    from fleetroute.crds import render

    render.write_all(out_dir)


def _same_tree(expected: Path, actual: Path) -> list[str]:
    """Names of files that differ between two flat directories (missing on either side too)."""
    names = {p.name for p in expected.iterdir() if p.is_file()} | {
        p.name for p in actual.iterdir() if p.is_file()
    }
    names.discard("__pycache__")
    return sorted(
        n
        for n in names
        if not (expected / n).is_file()
        or not (actual / n).is_file()
        or not filecmp.cmp(expected / n, actual / n, shallow=False)
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if committed files are stale")
    args = parser.parse_args(argv)
    if not args.check:
        shutil.rmtree(PROTO_OUT, ignore_errors=True)
        generate_protos(ROOT / "api")
        generate_crds(CRD_OUT)
        generate_chart.write()
        generate_dashboards.write()
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        fresh_protos = generate_protos(Path(tmp) / "protos")
        fresh_crds = Path(tmp) / "crds"
        fresh_crds.mkdir()
        generate_crds(fresh_crds)
        stale = [f"api/{PROTO_PACKAGE}/{n}" for n in _same_tree(fresh_protos, PROTO_OUT)]
        stale += [f"crds/{n}" for n in _same_tree(fresh_crds, CRD_OUT)]
    stale += generate_chart.stale_files()
    stale += generate_dashboards.stale_files()
    if stale:
        print("stale generated files (run: python scripts/generate.py):", *stale, sep="\n  ")
        return 1
    print("generated files are up to date")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
