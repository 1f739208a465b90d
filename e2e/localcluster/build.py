"""Building the pinned control-plane and tool binaries into the cache with the Go toolchain."""

from __future__ import annotations

import json
import os
import re
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from . import processes, settings
from .versions import Versions

COMPONENTS: Final = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")
BUILD_ORDER: Final = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubectl",
    "kwok",
    "helm",
    "kubeconform",
    "llm-d-inference-sim",
)
# Upstream KWOK stages (the ones kwokctl installs by default), copied from the pinned KWOK module.
KWOK_STAGE_FILES: Final = (
    "kustomize/stage/node/fast/node-initialize.yaml",
    "kustomize/stage/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
    "kustomize/stage/pod/fast/pod-ready.yaml",
    "kustomize/stage/pod/fast/pod-complete.yaml",
    "kustomize/stage/pod/fast/pod-delete.yaml",
)


@dataclass(frozen=True)
class BinarySpec:
    """How to build one cached binary."""

    name: str
    version: str
    kind: Literal["module", "install"]
    package: str
    ldflags: str = "-s -w"
    cgo: bool = False
    # A source tarball with every dependency vendored, built offline instead of `go install`.
    tarball: Path | None = None

    @property
    def filename(self) -> str:
        return f"{self.name}-{self.version}"


def binary_specs(versions: Versions) -> dict[str, BinarySpec]:
    """Build recipe of every binary, keyed by component name."""
    major, minor = versions.kube_major_minor
    kube_ldflags = " ".join(
        ["-s", "-w"]
        + [
            f"-X {pkg}.{var}={value}"
            for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version")
            for var, value in (
                ("gitVersion", versions.kubernetes),
                ("gitMajor", major),
                ("gitMinor", minor),
                ("gitTreeState", "clean"),
                ("buildDate", "1970-01-01T00:00:00Z"),
            )
        ]
    )
    helm_ldflags = " ".join(
        ["-s", "-w", f"-X helm.sh/helm/v3/internal/version.version={versions.helm}"]
        + ["-X helm.sh/helm/v3/internal/version.gitTreeState=clean"]
        + [
            f"-X helm.sh/helm/v3/pkg/{pkg}.k8sVersion{part}={value}"
            for pkg in ("lint/rules", "chartutil")
            for part, value in (("Major", major), ("Minor", minor))
        ]
    )
    specs = [
        BinarySpec("etcd", versions.etcd, "module", "./cmd/etcd"),
        BinarySpec(
            "kube-apiserver", versions.kubernetes, "module", "./cmd/kube-apiserver", kube_ldflags
        ),
        BinarySpec(
            "kube-controller-manager",
            versions.kubernetes,
            "module",
            "./cmd/kube-controller-manager",
            kube_ldflags,
        ),
        BinarySpec(
            "kube-scheduler", versions.kubernetes, "module", "./cmd/kube-scheduler", kube_ldflags
        ),
        BinarySpec("kubectl", versions.kubernetes, "module", "./cmd/kubectl", kube_ldflags),
        BinarySpec("kwok", versions.kwok, "install", "sigs.k8s.io/kwok/cmd/kwok"),
        BinarySpec("helm", versions.helm, "install", "helm.sh/helm/v3/cmd/helm", helm_ldflags),
        BinarySpec(
            "kubeconform",
            versions.kubeconform,
            "install",
            "github.com/yannh/kubeconform/cmd/kubeconform",
        ),
    ]
    if versions.llm_d_inference_sim:
        specs.append(
            BinarySpec(
                LLM_D_SIM,
                versions.llm_d_inference_sim,
                "install",
                f"{LLM_D_SIM_MODULE}/cmd/{LLM_D_SIM}",
                cgo=True,
                tarball=vendored_tarball(LLM_D_SIM, versions.llm_d_inference_sim),
            )
        )
    return {spec.name: spec for spec in specs}


LLM_D_SIM: Final = "llm-d-inference-sim"
LLM_D_SIM_MODULE: Final = "github.com/llm-d/llm-d-inference-sim"
VENDOR_ENV: Final = "FLEETROUTE_VENDOR_DIR"
# Beside the repository (a CI checkout has ../shared/ next to it), unless $FLEETROUTE_VENDOR_DIR.
DEFAULT_VENDOR_DIR: Final = settings.E2E_DIR.parent.parent / "shared" / "vendor"


def vendor_dir() -> Path:
    """Where vendored source tarballs are looked for: ``$FLEETROUTE_VENDOR_DIR`` or
    ``<repository>/../shared/vendor``."""
    env = os.environ.get(VENDOR_ENV)
    return Path(env).expanduser() if env else DEFAULT_VENDOR_DIR


def vendored_tarball(name: str, version: str) -> Path | None:
    """``<name>-<v>.tar.gz`` in the vendor directory whose ``<v>`` is the pinned version or a
    prefix of it (a short commit), if there is one."""
    directory = vendor_dir()
    if not directory.is_dir():
        return None
    for candidate in sorted(directory.glob(f"{name}-*.tar.gz")):
        tag = candidate.name[len(name) + 1 : -len(".tar.gz")]
        if len(tag) >= 7 and version.startswith(tag):
            return candidate
    return None


GO_ENV: Final = "FLEETROUTE_GO"
# Where Go's own installers put the toolchain (go.dev tarball, Debian's golang-go), in order.
GO_LOCATIONS: Final = (Path("/usr/local/go/bin/go"), Path("/usr/lib/go/bin/go"))


def find_go() -> Path:
    """The Go toolchain by absolute path: ``$FLEETROUTE_GO``, ``$GOROOT/bin/go``, then the
    standard install locations; PATH is never consulted, so a fresh machine finds the same Go."""
    candidates = [Path(os.environ[GO_ENV])] if os.environ.get(GO_ENV) else []
    if os.environ.get("GOROOT"):
        candidates.append(Path(os.environ["GOROOT"]) / "bin" / "go")
    candidates += GO_LOCATIONS
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise settings.ClusterError(
        "the Go toolchain (>= 1.26) is needed to build the cluster binaries; none at "
        f"{', '.join(map(str, candidates))}: install it there or set {GO_ENV}"
    )


def _safe_members(archive: tarfile.TarFile, tarball: Path) -> list[tarfile.TarInfo]:
    """The tarball's members, refusing any that would land outside the target directory
    (absolute or `..` paths, links leaving the tree) or that are not files, dirs or links."""
    members = archive.getmembers()
    for member in members:
        parts = Path(member.name).parts
        bad = member.name.startswith("/") or ".." in parts
        if member.issym() or member.islnk():
            target = Path(member.name).parent / member.linkname
            bad = bad or member.linkname.startswith("/") or ".." in target.parts
        elif not (member.isfile() or member.isdir()):
            bad = True
        if bad:
            raise settings.ClusterError(f"{tarball}: refusing member {member.name!r}")
    return members


class Builder:
    """Builds the pinned binaries into the cache, one at a time (the machine has 2 cores)."""

    def __init__(
        self, versions: Versions, bin_dir: Path, log: settings.Logger = settings.stderr_log
    ) -> None:
        self.versions = versions
        self.bin_dir = bin_dir
        self.log_dir = bin_dir.parent / "build-logs"
        self.log = log
        self.specs = binary_specs(versions)

    def path(self, name: str) -> Path:
        spec = self.specs.get(name)
        if spec is None:
            if name == "llm-d-inference-sim":
                raise settings.ClusterError(
                    "llm-d-inference-sim is not available: LLM_D_INFERENCE_SIM_VERSION is empty in "
                    f"{settings.VERSIONS_FILE} "
                    "(the Go module proxy here refuses github.com/llm-d/* modules)"
                )
            raise settings.ClusterError(f"unknown binary {name!r}; known: {', '.join(self.specs)}")
        return self.bin_dir / spec.filename

    @property
    def kwok_stages(self) -> Path:
        return self.bin_dir / f"kwok-stages-{self.versions.kwok}.yaml"

    def is_built(self, name: str) -> bool:
        if not self.path(name).is_file():
            return False
        return name != "kwok" or self.kwok_stages.is_file()

    def missing(self, names: Sequence[str] | None = None) -> list[str]:
        wanted = list(names) if names is not None else [n for n in BUILD_ORDER if n in self.specs]
        return [name for name in wanted if not self.is_built(name)]

    def _go_env(self, cgo: bool) -> dict[str, str]:
        env = dict(os.environ)
        go = find_go()
        env["PATH"] = f"{go.parent}{os.pathsep}{env.get('PATH', '')}"
        env["CGO_ENABLED"] = "1" if cgo else "0"
        env.pop("GOFLAGS", None)
        return env

    def _run(
        self, argv: Sequence[str], *, cwd: Path, env: Mapping[str, str], log_file: Path
    ) -> None:
        with log_file.open("ab") as out:
            out.write(("$ " + " ".join(argv) + "\n").encode())
            out.flush()
            result = subprocess.run(
                list(argv),
                cwd=cwd,
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        if result.returncode != 0:
            raise settings.ClusterError(
                f"command failed ({result.returncode}): {' '.join(argv)}\n{settings.tail(log_file)}"
            )

    def build(self, names: Sequence[str] | None = None, *, force: bool = False) -> dict[str, float]:
        """Build the named (default: all missing) binaries; returns the seconds each build took."""
        if names is None:
            names = [n for n in BUILD_ORDER if n in self.specs]
        for name in names:
            self.path(name)  # validates the name
        todo = list(names) if force else self.missing(names)
        durations: dict[str, float] = {}
        if not todo:
            return durations
        if any(self.specs[n].kind == "module" for n in todo):
            self.versions.check_go_mod()
        self.bin_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with processes.file_lock(self.bin_dir.parent / "build.lock"):
            for index, name in enumerate(todo, 1):
                if not force and self.is_built(name):
                    continue  # built meanwhile by another process
                spec = self.specs[name]
                self.log(f"building {name} {spec.version} ({index}/{len(todo)}) ...")
                started = time.monotonic()
                self._build_one(spec)
                durations[name] = time.monotonic() - started
                self.log(
                    f"built {name} {spec.version} in {durations[name]:.0f}s -> {self.path(name)}"
                )
        return durations

    def _build_one(self, spec: BinarySpec) -> None:
        go = str(find_go())
        env = self._go_env(spec.cgo)
        log_file = self.log_dir / f"{spec.filename}.log"
        log_file.write_bytes(b"")
        target = self.path(spec.name)
        with tempfile.TemporaryDirectory(prefix=f"build-{spec.name}-", dir=self.bin_dir) as tmp:
            out = Path(tmp) / spec.name
            if spec.kind == "module":
                argv = [
                    go,
                    "build",
                    "-p",
                    "2",
                    "-trimpath",
                    "-ldflags",
                    spec.ldflags,
                    "-o",
                    str(out),
                    spec.package,
                ]
                self._run(argv, cwd=settings.GO_MODULE_DIR, env=env, log_file=log_file)
            elif spec.tarball is not None:
                self._build_vendored(spec, spec.tarball, go, env, Path(tmp), out, log_file)
            else:
                env["GOBIN"] = tmp
                argv = [
                    go,
                    "install",
                    "-p",
                    "2",
                    "-trimpath",
                    "-ldflags",
                    spec.ldflags,
                    f"{spec.package}@{spec.version}",
                ]
                try:
                    self._run(argv, cwd=Path(tmp), env=env, log_file=log_file)
                except settings.ClusterError as error:
                    if spec.name != LLM_D_SIM:
                        raise
                    raise settings.ClusterError(
                        f"{LLM_D_SIM} {spec.version}: no source tarball "
                        f"{LLM_D_SIM}-<commit>.tar.gz in {vendor_dir()} (set {VENDOR_ENV}) and "
                        f"`go install` from the module proxy failed:\n{error}"
                    ) from error
            if not out.is_file():
                raise settings.ClusterError(
                    f"build of {spec.name} produced no binary; see {log_file}"
                )
            if spec.name == "kwok":
                self._write_kwok_stages(go, env, Path(tmp), log_file)
            os.replace(out, target)

    def _build_vendored(
        self,
        spec: BinarySpec,
        tarball: Path,
        go: str,
        env: dict[str, str],
        tmp: Path,
        out: Path,
        log_file: Path,
    ) -> None:
        """Unpack a vendored source tarball and build its command offline (GOPROXY=off)."""
        source = tmp / "src"
        with tarfile.open(tarball) as archive:
            archive.extractall(source, members=_safe_members(archive, tarball))  # noqa: S202
        mods = sorted(source.glob("*/go.mod")) or sorted(source.glob("go.mod"))
        if not mods:
            raise settings.ClusterError(f"{tarball} holds no Go module (no go.mod at its top)")
        env.update(GOPROXY="off", GOFLAGS="-mod=vendor", GOTOOLCHAIN="local")
        module = re.search(r"^module\s+(\S+)", mods[0].read_text(encoding="utf-8"), re.M)
        if module is None or not spec.package.startswith(module.group(1)):
            raise settings.ClusterError(f"{mods[0]} is not the module of {spec.package}")
        package = "./" + spec.package.removeprefix(module.group(1)).strip("/")
        argv = [go, "build", "-p", "2", "-trimpath", "-ldflags", spec.ldflags, "-o", str(out)]
        with log_file.open("ab") as log:
            log.write(f"# from {tarball}\n".encode())
        self._run([*argv, package], cwd=mods[0].parent, env=env, log_file=log_file)

    def _write_kwok_stages(
        self, go: str, env: Mapping[str, str], tmp: Path, log_file: Path
    ) -> None:
        module = f"sigs.k8s.io/kwok@{self.versions.kwok}"
        with log_file.open("ab") as out:
            result = subprocess.run(
                [go, "mod", "download", "-json", module],
                cwd=tmp,
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=out,
            )
        if result.returncode != 0:
            raise settings.ClusterError(
                f"go mod download {module} failed\n{settings.tail(log_file)}"
            )
        module_dir = Path(json.loads(result.stdout)["Dir"])
        docs = [(module_dir / rel).read_text(encoding="utf-8").strip() for rel in KWOK_STAGE_FILES]
        header = f"# KWOK stages copied from {module} ({', '.join(KWOK_STAGE_FILES)})\n"
        staged = tmp / "kwok-stages.yaml"
        staged.write_text(header + "\n---\n".join(docs) + "\n", encoding="utf-8")
        os.replace(staged, self.kwok_stages)
