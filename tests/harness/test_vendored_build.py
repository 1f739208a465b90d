"""The e2e harness builds llm-d-inference-sim from a vendored source tarball when there is one,
else with `go install` from the module proxy, and says clearly why when neither works."""

from __future__ import annotations

import io
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # e2e.localcluster is the harness under test
    sys.path.insert(0, str(ROOT))

from e2e.localcluster import Builder, ClusterError, Versions, build  # noqa: E402

PINNED = Versions.load().llm_d_inference_sim
MAIN = 'package main\n\nimport "fmt"\n\nfunc main() { fmt.Println("vendored sim") }\n'


def _tarball(path: Path, files: dict[str, str]) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def _module(top: str = "llm-d-inference-sim") -> dict[str, str]:
    return {
        f"{top}/go.mod": "module github.com/llm-d/llm-d-inference-sim\n\ngo 1.22\n",
        f"{top}/cmd/llm-d-inference-sim/main.go": MAIN,
    }


def test_the_pin_names_a_commit_and_the_default_vendor_dir_is_beside_the_repository() -> None:
    assert len(PINNED) >= 12
    assert int(PINNED, 16) >= 0  # a commit hash, as `go install ...@<commit>` takes it
    assert ROOT.parent / "shared" / "vendor" == build.DEFAULT_VENDOR_DIR


def test_the_tarball_is_found_by_a_prefix_of_the_pinned_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(build.VENDOR_ENV, str(tmp_path))
    assert build.vendored_tarball(build.LLM_D_SIM, PINNED) is None
    found = _tarball(tmp_path / f"{build.LLM_D_SIM}-{PINNED[:7]}.tar.gz", _module())
    _tarball(tmp_path / f"{build.LLM_D_SIM}-0123456.tar.gz", _module())  # another commit
    assert build.vendored_tarball(build.LLM_D_SIM, PINNED) == found
    assert build.vendored_tarball(build.LLM_D_SIM, "fedcba987654") is None
    monkeypatch.setenv(build.VENDOR_ENV, str(tmp_path / "missing"))
    assert build.vendored_tarball(build.LLM_D_SIM, PINNED) is None


def _builder(tmp_path: Path, vendor: Path, monkeypatch: pytest.MonkeyPatch) -> Builder:
    monkeypatch.setenv(build.VENDOR_ENV, str(vendor))
    monkeypatch.setenv("GOPROXY", "off")  # nothing may be downloaded
    monkeypatch.setenv("GOFLAGS", "-mod=mod")  # the builder must set its own
    return Builder(Versions.load(), tmp_path / "bin", log=lambda _: None)


def test_a_vendored_tarball_is_built_offline_into_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    vendor = tmp_path / "vendor"
    vendor.mkdir()
    _tarball(vendor / f"{build.LLM_D_SIM}-{PINNED[:7]}.tar.gz", _module())
    builder = _builder(tmp_path, vendor, monkeypatch)
    assert builder.missing([build.LLM_D_SIM]) == [build.LLM_D_SIM]
    builder.build([build.LLM_D_SIM])
    binary = builder.path(build.LLM_D_SIM)
    assert binary == tmp_path / "bin" / f"{build.LLM_D_SIM}-{PINNED}"
    ran = subprocess.run([str(binary)], capture_output=True, text=True, check=True)
    assert ran.stdout == "vendored sim\n"
    assert builder.missing([build.LLM_D_SIM]) == []  # cached by version


def test_a_tarball_escaping_its_directory_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    vendor = tmp_path / "vendor"
    vendor.mkdir()
    files = {**_module(), "../outside.txt": "x"}
    _tarball(vendor / f"{build.LLM_D_SIM}-{PINNED[:7]}.tar.gz", files)
    builder = _builder(tmp_path, vendor, monkeypatch)
    with pytest.raises(ClusterError, match="refusing member"):
        builder.build([build.LLM_D_SIM])
    assert not (tmp_path / "bin" / "outside.txt").exists()


def test_without_a_tarball_go_install_is_tried_and_its_failure_says_where_to_look(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    builder = _builder(tmp_path, tmp_path / "no-vendor", monkeypatch)
    spec = builder.specs[build.LLM_D_SIM]
    assert spec.tarball is None
    assert spec.package == "github.com/llm-d/llm-d-inference-sim/cmd/llm-d-inference-sim"
    with pytest.raises(ClusterError) as raised:
        builder.build([build.LLM_D_SIM])
    message = str(raised.value)
    assert build.VENDOR_ENV in message
    assert str(tmp_path / "no-vendor") in message
    assert f"{spec.package}@{PINNED}" in message  # the go install command line that failed
