"""Local Kubernetes control plane (etcd, apiserver, controllers, scheduler, KWOK) for e2e tests."""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import re
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

E2E_DIR: Final = Path(__file__).resolve().parent
GO_MODULE_DIR: Final = E2E_DIR / "cluster"
VERSIONS_FILE: Final = GO_MODULE_DIR / "versions.env"

LOCALHOST: Final = "127.0.0.1"
# Pod IPs handed out by KWOK are loopback addresses, so anything that dials a pod IP stays on this
# machine (a test may even bind a real process to a pod's IP).  The price: EndpointSlices reject
# loopback addresses, so Services that select KWOK pods get no endpoints.
DEFAULT_POD_CIDR: Final = "127.244.0.1/16"
SERVICE_CIDR: Final = "10.96.0.0/16"
KWOK_NODE_ANNOTATION: Final = "kwok.x-k8s.io/node"
KWOK_NODE_ANNOTATION_VALUE: Final = "fake"
GPU_RESOURCE: Final = "nvidia.com/gpu"
GPU_PRODUCT_LABEL: Final = "nvidia.com/gpu.product"
GPU_TAINT: Final[Mapping[str, str]] = {
    "key": GPU_RESOURCE,
    "value": "present",
    "effect": "NoSchedule",
}

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

Logger = Callable[[str], None]


class ClusterError(RuntimeError):
    """Raised when the local cluster cannot be built, started, stopped or queried."""


def _stderr_log(message: str) -> None:
    print(f"[localcluster] {message}", file=sys.stderr, flush=True)


def cache_dir() -> Path:
    """Persistent cache (binaries, build logs): ``$FLEETROUTE_CACHE`` or ~/.cache/fleetroute."""
    env = os.environ.get("FLEETROUTE_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "fleetroute"


def default_state_dir() -> Path:
    """Directory of the running cluster: ``$FLEETROUTE_CLUSTER_DIR`` or <cache>/cluster."""
    env = os.environ.get("FLEETROUTE_CLUSTER_DIR")
    return Path(env).expanduser() if env else cache_dir() / "cluster"


# --------------------------------------------------------------------------------------------
# Versions and binaries


@dataclass(frozen=True)
class Versions:
    """Pinned versions read from e2e/cluster/versions.env."""

    kubernetes: str
    etcd: str
    kwok: str
    helm: str
    kubeconform: str
    llm_d_inference_sim: str

    @classmethod
    def load(cls, path: Path = VERSIONS_FILE) -> Versions:
        values: dict[str, str] = {}
        for raw in path.read_text(encoding="utf-8").splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            key, sep, value = line.partition("=")
            if not sep:
                raise ClusterError(f"{path}: malformed line {raw!r}")
            values[key.strip()] = value.strip().strip("'\"")
        try:
            return cls(
                kubernetes=values["KUBERNETES_VERSION"],
                etcd=values["ETCD_VERSION"],
                kwok=values["KWOK_VERSION"],
                helm=values["HELM_VERSION"],
                kubeconform=values["KUBECONFORM_VERSION"],
                llm_d_inference_sim=values.get("LLM_D_INFERENCE_SIM_VERSION", ""),
            )
        except KeyError as exc:
            raise ClusterError(f"{path}: missing {exc.args[0]}") from exc

    @property
    def kube_major_minor(self) -> tuple[str, str]:
        match = re.fullmatch(r"v(\d+)\.(\d+)\.\d+.*", self.kubernetes)
        if match is None:
            raise ClusterError(f"bad KUBERNETES_VERSION {self.kubernetes!r}")
        return match.group(1), match.group(2)

    def check_go_mod(self, go_mod: Path = GO_MODULE_DIR / "go.mod") -> None:
        """Fail unless go.mod requires exactly the pinned Kubernetes, staging and etcd versions."""
        text = go_mod.read_text(encoding="utf-8")
        major, minor = self.kube_major_minor
        staging = "v0." + minor + self.kubernetes[len(f"v{major}.{minor}") :]
        wanted = {
            "k8s.io/kubernetes": self.kubernetes,
            "go.etcd.io/etcd/server/v3": self.etcd,
        }
        for module, version in wanted.items():
            if not re.search(
                rf"^\s*(require\s+)?{re.escape(module)}\s+{re.escape(version)}\s*$", text, re.M
            ):
                raise ClusterError(
                    f"{go_mod} must require {module} {version} (see {VERSIONS_FILE.name})"
                )
        for module, version in re.findall(
            r"^\s*(k8s\.io/[\w.-]+)\s+=>\s+k8s\.io/[\w.-]+\s+(\S+)\s*$", text, re.M
        ):
            if version != staging:
                raise ClusterError(f"{go_mod}: replace {module} => {version}, expected {staging}")


@dataclass(frozen=True)
class BinarySpec:
    """How to build one cached binary."""

    name: str
    version: str
    kind: Literal["module", "install"]
    package: str
    ldflags: str = "-s -w"
    cgo: bool = False

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
                "llm-d-inference-sim",
                versions.llm_d_inference_sim,
                "install",
                "github.com/llm-d/llm-d-inference-sim/cmd/llm-d-inference-sim",
                cgo=True,
            )
        )
    return {spec.name: spec for spec in specs}


def find_go() -> Path:
    """The Go toolchain: ``go`` on PATH, else /usr/local/go/bin/go."""
    found = shutil.which("go")
    if found:
        return Path(found)
    fallback = Path("/usr/local/go/bin/go")
    if fallback.exists():
        return fallback
    raise ClusterError(
        "the Go toolchain is needed to build the cluster binaries; install Go >= 1.26"
    )


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        return f"(no log: {exc})"
    return "\n".join(text.splitlines()[-lines:])


class Builder:
    """Builds the pinned binaries into the cache, one at a time (the machine has 2 cores)."""

    def __init__(self, versions: Versions, bin_dir: Path, log: Logger = _stderr_log) -> None:
        self.versions = versions
        self.bin_dir = bin_dir
        self.log_dir = bin_dir.parent / "build-logs"
        self.log = log
        self.specs = binary_specs(versions)

    def path(self, name: str) -> Path:
        spec = self.specs.get(name)
        if spec is None:
            if name == "llm-d-inference-sim":
                raise ClusterError(
                    "llm-d-inference-sim is not available: LLM_D_INFERENCE_SIM_VERSION is empty in "
                    f"{VERSIONS_FILE} (the Go module proxy here refuses github.com/llm-d/* modules)"
                )
            raise ClusterError(f"unknown binary {name!r}; known: {', '.join(self.specs)}")
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
            raise ClusterError(
                f"command failed ({result.returncode}): {' '.join(argv)}\n{_tail(log_file)}"
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
        with file_lock(self.bin_dir.parent / "build.lock"):
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
                self._run(argv, cwd=GO_MODULE_DIR, env=env, log_file=log_file)
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
                self._run(argv, cwd=Path(tmp), env=env, log_file=log_file)
            if not out.is_file():
                raise ClusterError(f"build of {spec.name} produced no binary; see {log_file}")
            if spec.name == "kwok":
                self._write_kwok_stages(go, env, Path(tmp), log_file)
            os.replace(out, target)

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
            raise ClusterError(f"go mod download {module} failed\n{_tail(log_file)}")
        module_dir = Path(json.loads(result.stdout)["Dir"])
        docs = [(module_dir / rel).read_text(encoding="utf-8").strip() for rel in KWOK_STAGE_FILES]
        header = f"# KWOK stages copied from {module} ({', '.join(KWOK_STAGE_FILES)})\n"
        staged = tmp / "kwok-stages.yaml"
        staged.write_text(header + "\n---\n".join(docs) + "\n", encoding="utf-8")
        os.replace(staged, self.kwok_stages)


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Exclusive advisory lock (serialises concurrent builds / ups of the same cluster)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# --------------------------------------------------------------------------------------------
# Certificates and kubeconfigs


def _openssl(*args: str, cwd: Path) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        raise ClusterError(
            "the openssl CLI is needed to create the cluster certificates (apt-get install openssl)"
        )
    result = subprocess.run(
        [openssl, *args],
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    if result.returncode != 0:
        raise ClusterError(f"openssl {' '.join(args)} failed: {result.stderr.strip()}")


@dataclass(frozen=True)
class ClientIdentity:
    """A client certificate identity (user name and groups)."""

    name: str
    user: str
    groups: tuple[str, ...] = ()


CLIENTS: Final = (
    ClientIdentity("admin", "fleetroute-admin", ("system:masters",)),
    ClientIdentity("kube-controller-manager", "system:kube-controller-manager"),
    ClientIdentity("kube-scheduler", "system:kube-scheduler"),
    ClientIdentity("kwok", "fleetroute-kwok", ("system:masters",)),
    # The API server's client identity towards aggregated API servers (request-header auth).
    ClientIdentity("front-proxy-client", "front-proxy-client"),
)

SERVING_SANS: Final = (
    "IP:127.0.0.1",
    "DNS:localhost",
    "DNS:kubernetes",
    "DNS:kubernetes.default",
    "DNS:kubernetes.default.svc",
    "DNS:kubernetes.default.svc.cluster.local",
    "IP:10.96.0.1",
)


class PKI:
    """Self-signed CA, API server serving cert, client certs and the service-account key pair."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.ca_cert = directory / "ca.crt"
        self.ca_key = directory / "ca.key"
        self.sa_key = directory / "sa.key"
        self.sa_pub = directory / "sa.pub"
        self.serving_cert = directory / "apiserver.crt"
        self.serving_key = directory / "apiserver.key"

    def client_cert(self, name: str) -> tuple[Path, Path]:
        return self.dir / f"{name}.crt", self.dir / f"{name}.key"

    def ensure(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o700)
        if not self.ca_cert.exists():
            self._ec_key(self.ca_key)
            _openssl(
                "req", "-x509", "-new", "-key", str(self.ca_key), "-sha256", "-days", "3650",
                "-subj", "/CN=fleetroute-e2e-ca",
                "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
                "-out", str(self.ca_cert),
                cwd=self.dir,
            )  # fmt: skip
        if not self.serving_cert.exists():
            self._leaf(
                self.serving_cert,
                self.serving_key,
                "/CN=kube-apiserver",
                "serverAuth",
                SERVING_SANS,
            )
        for client in CLIENTS:
            cert, key = self.client_cert(client.name)
            if not cert.exists():
                subject = "".join(f"/O={group}" for group in client.groups) + f"/CN={client.user}"
                self._leaf(cert, key, subject, "clientAuth", ())
        if not self.sa_key.exists():
            _openssl(
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
                "-out",
                str(self.sa_key),
                cwd=self.dir,
            )
            _openssl(
                "pkey", "-in", str(self.sa_key), "-pubout", "-out", str(self.sa_pub), cwd=self.dir
            )

    def _ec_key(self, path: Path) -> None:
        _openssl(
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            str(path),
            cwd=self.dir,
        )

    def _leaf(self, cert: Path, key: Path, subject: str, usage: str, sans: Sequence[str]) -> None:
        self._ec_key(key)
        csr = cert.with_suffix(".csr")
        ext = cert.with_suffix(".ext")
        lines = [
            "basicConstraints=critical,CA:FALSE",
            "keyUsage=critical,digitalSignature,keyEncipherment",
            f"extendedKeyUsage={usage}",
        ]
        if sans:
            lines.append("subjectAltName=" + ",".join(sans))
        ext.write_text("\n".join(lines) + "\n", encoding="utf-8")
        _openssl("req", "-new", "-key", str(key), "-subj", subject, "-out", str(csr), cwd=self.dir)
        _openssl(
            "x509", "-req", "-in", str(csr), "-CA", str(self.ca_cert), "-CAkey", str(self.ca_key),
            "-set_serial", str(secrets.randbits(63)), "-days", "3650", "-sha256",
            "-extfile", str(ext), "-out", str(cert),
            cwd=self.dir,
        )  # fmt: skip
        csr.unlink()
        ext.unlink()


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode("ascii")


def write_kubeconfig(path: Path, server: str, ca: Path, cert: Path, key: Path, user: str) -> None:
    """Write a kubeconfig (JSON is valid YAML) with the certificates embedded."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "fleetroute",
                "cluster": {"server": server, "certificate-authority-data": _b64(ca)},
            }
        ],
        "users": [
            {
                "name": user,
                "user": {"client-certificate-data": _b64(cert), "client-key-data": _b64(key)},
            }
        ],
        "contexts": [
            {
                "name": "fleetroute",
                "context": {"cluster": "fleetroute", "user": user, "namespace": "default"},
            }
        ],
        "current-context": "fleetroute",
        "preferences": {},
    }
    path.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    os.chmod(path, 0o600)


# --------------------------------------------------------------------------------------------
# The GPU fleet


@dataclass(frozen=True)
class NodePool:
    """A group of identical fake (KWOK) nodes."""

    prefix: str
    count: int
    gpu_product: str | None
    gpus: int
    cpu: str
    memory: str
    instance_type: str
    gpu_memory_mib: int = 0

    def names(self) -> list[str]:
        return [f"{self.prefix}-{i}" for i in range(self.count)]


FLEET: Final = (
    NodePool("h100", 4, "NVIDIA-H100-80GB-HBM3", 8, "192", "2048Gi", "p5.48xlarge", 81559),
    NodePool("l4", 4, "NVIDIA-L4", 4, "48", "192Gi", "g6.12xlarge", 23034),
    NodePool("a10g", 2, "NVIDIA-A10G", 4, "48", "192Gi", "g5.12xlarge", 23028),
    NodePool("cpu", 2, None, 0, "16", "64Gi", "m6i.4xlarge"),
)


def fleet_node_names() -> list[str]:
    return [name for pool in FLEET for name in pool.names()]


def node_manifest(pool: NodePool, index: int, node_ip: str) -> dict[str, Any]:
    """The Node object (with status, which the API accepts on create) for one fake node."""
    name = f"{pool.prefix}-{index}"
    labels = {
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "node.kubernetes.io/instance-type": pool.instance_type,
        "type": "kwok",
        "fleetroute.dev/pool": pool.prefix,
    }
    resources = {"cpu": pool.cpu, "memory": pool.memory, "pods": "110", "ephemeral-storage": "1Ti"}
    spec: dict[str, Any] = {}
    if pool.gpu_product is not None:
        labels.update(
            {
                GPU_PRODUCT_LABEL: pool.gpu_product,
                "nvidia.com/gpu.count": str(pool.gpus),
                "nvidia.com/gpu.memory": str(pool.gpu_memory_mib),
                "nvidia.com/gpu.present": "true",
            }
        )
        resources[GPU_RESOURCE] = str(pool.gpus)
        spec["taints"] = [dict(GPU_TAINT)]
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": labels,
            "annotations": {
                KWOK_NODE_ANNOTATION: KWOK_NODE_ANNOTATION_VALUE,
                "node.alpha.kubernetes.io/ttl": "0",
            },
        },
        "spec": spec,
        "status": {
            "allocatable": resources,
            "capacity": dict(resources),
            "addresses": [
                {"type": "InternalIP", "address": node_ip},
                {"type": "Hostname", "address": name},
            ],
        },
    }


def fleet_manifests() -> list[dict[str, Any]]:
    """All fleet nodes; node i gets the loopback address 127.0.1.<i+1>."""
    nodes: list[dict[str, Any]] = []
    for pool in FLEET:
        for index in range(pool.count):
            nodes.append(node_manifest(pool, index, f"127.0.1.{len(nodes) + 1}"))
    return nodes


# --------------------------------------------------------------------------------------------
# Processes


def free_ports(count: int) -> list[int]:
    """``count`` distinct free TCP ports on 127.0.0.1 (all held open while choosing)."""
    with contextlib.ExitStack() as stack:
        ports: list[int] = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind((LOCALHOST, 0))
            ports.append(sock.getsockname()[1])
        return ports


def _proc_state(pid: int) -> str | None:
    """Single-letter process state from /proc, or None when the process is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    return stat.rsplit(")", 1)[-1].split()[0]


def _proc_argv0(pid: int) -> str | None:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return raw.split(b"\0", 1)[0].decode(errors="replace") or None


def _is_own_child(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[1] == str(os.getpid())


def pid_alive(pid: int, argv0: str | None = None) -> bool:
    """True if ``pid`` runs (not a zombie) and, when given, was started as ``argv0``."""
    state = _proc_state(pid)
    if state is None or state in ("Z", "X"):
        return False
    return argv0 is None or _proc_argv0(pid) == argv0


def http_get(
    url: str,
    context: ssl.SSLContext | None = None,
    timeout: float = 5.0,
    headers: Sequence[tuple[str, str]] = (),
) -> tuple[int, str]:
    """GET ``url`` directly (never through a proxy); returns (status, body) or raises OSError."""
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"not an http(s) URL: {url}")
    handlers: list[urllib.request.BaseHandler] = [urllib.request.ProxyHandler({})]
    if context is not None:
        handlers.append(urllib.request.HTTPSHandler(context=context))
    opener = urllib.request.build_opener(*handlers)
    request = urllib.request.Request(url)  # noqa: S310 - scheme checked above
    for key, value in headers:
        request.add_unredirected_header(key, value)
    try:
        with opener.open(request, timeout=timeout) as response:
            status: int = response.status
            return status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


def _insecure_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


# --------------------------------------------------------------------------------------------
# The cluster


def spawn_detached(argv: Sequence[str], log_path: Path, env: Mapping[str, str]) -> int:
    """Start ``argv`` in its own session (process group == pid), output appended to ``log_path``.

    posix_spawn rather than subprocess.Popen: the processes must outlive this Python process (the
    CLI exits after ``up``), and Popen objects of still-running children warn when collected.
    """
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        return os.posix_spawn(
            argv[0],
            list(argv),
            dict(env),
            file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                (os.POSIX_SPAWN_DUP2, fd, 1),
                (os.POSIX_SPAWN_DUP2, fd, 2),
            ],
            setsid=True,
        )
    finally:
        os.close(fd)


def reap(pid: int) -> int | None:
    """Collect the exit status of ``pid`` if it is an exited child of this process."""
    try:
        waited, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return None
    return os.waitstatus_to_exitcode(status) if waited == pid else None


class Cluster:
    """A local control plane with a fake GPU fleet; see e2e/README.md."""

    def __init__(
        self,
        state_dir: Path | None = None,
        *,
        cache: Path | None = None,
        versions: Versions | None = None,
        pod_cidr: str | None = None,
        log: Logger = _stderr_log,
    ) -> None:
        self.state_dir = (state_dir or default_state_dir()).resolve()
        self.cache = (cache or cache_dir()).resolve()
        self.versions = versions or Versions.load()
        self.pod_cidr = pod_cidr or os.environ.get("FLEETROUTE_POD_CIDR") or DEFAULT_POD_CIDR
        self.log = log
        self.bin_dir = self.cache / "bin"
        self.builder = Builder(self.versions, self.bin_dir, log)
        self.kubeconfig = self.state_dir / "kubeconfig"
        self.pki = PKI(self.state_dir / "pki")
        self.logs_dir = self.state_dir / "logs"
        self.state_file = self.state_dir / "state.json"

    # -- binaries -----------------------------------------------------------------------------

    def binary(self, name: str) -> Path:
        """Path of a cached binary (kubectl, helm, kwok, etcd, kube-*, llm-d-inference-sim)."""
        return self.builder.path(name)

    def build(self, names: Sequence[str] | None = None, *, force: bool = False) -> dict[str, float]:
        return self.builder.build(names, force=force)

    # -- state --------------------------------------------------------------------------------

    def _load_state(self) -> dict[str, Any]:
        try:
            loaded: dict[str, Any] = json.loads(self.state_file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise ClusterError(f"unreadable state file {self.state_file}: {exc}") from exc
        return loaded

    def _save_state(self, state: Mapping[str, Any]) -> None:
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(tmp, self.state_file)

    @property
    def server(self) -> str:
        """https URL of the API server (the cluster must be up)."""
        server = self._load_state().get("server")
        if not isinstance(server, str):
            raise ClusterError(f"the cluster in {self.state_dir} is not up")
        return server

    def _processes(self) -> dict[str, dict[str, Any]]:
        processes: dict[str, dict[str, Any]] = self._load_state().get("processes", {})
        return processes

    def api_get(
        self, path: str, headers: Sequence[tuple[str, str]] = (), timeout: float = 10.0
    ) -> tuple[int, str]:
        """GET an API path as the admin (Impersonate-* headers allowed); returns (status, body)."""
        return http_get(self.server + path, self._api_context(), timeout=timeout, headers=headers)

    def _api_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.pki.ca_cert))
        cert, key = self.pki.client_cert("admin")
        context.load_cert_chain(str(cert), str(key))
        return context

    def api_ready(self) -> bool:
        try:
            status, body = http_get(self.server + "/readyz", self._api_context(), timeout=5)
        except (OSError, ssl.SSLError, ClusterError):
            return False
        return status == 200 and body.strip() == "ok"

    def is_running(self) -> bool:
        """True if every component process is alive and the API server is ready."""
        processes = self._processes()
        if set(processes) != set(COMPONENTS):
            return False
        if not all(pid_alive(int(p["pid"]), str(p["argv0"])) for p in processes.values()):
            return False
        return self.api_ready()

    def status(self) -> dict[str, Any]:
        state = self._load_state()
        components = {
            name: {**info, "alive": pid_alive(int(info["pid"]), str(info["argv0"]))}
            for name, info in state.get("processes", {}).items()
        }
        return {
            "state_dir": str(self.state_dir),
            "server": state.get("server"),
            "kubeconfig": str(self.kubeconfig) if self.kubeconfig.exists() else None,
            "api_ready": self.api_ready() if state.get("server") else False,
            "components": components,
        }

    def env(self) -> dict[str, str]:
        """Environment for using the cluster from a shell or subprocess."""
        return {
            "KUBECONFIG": str(self.kubeconfig),
            "FLEETROUTE_CLUSTER_DIR": str(self.state_dir),
            "PATH": f"{self.state_dir / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        }

    # -- kubectl ------------------------------------------------------------------------------

    def kubectl(
        self,
        *args: str,
        check: bool = True,
        input: str | None = None,
        timeout: float = 120.0,
    ) -> subprocess.CompletedProcess[str]:
        """Run the pinned kubectl against this cluster (text mode, output captured)."""
        argv = [str(self.binary("kubectl")), f"--kubeconfig={self.kubeconfig}", *args]
        result = subprocess.run(
            argv, input=input, capture_output=True, text=True, timeout=timeout, env=_child_env()
        )
        if check and result.returncode != 0:
            raise ClusterError(
                f"kubectl {' '.join(args)} failed ({result.returncode}): {result.stderr.strip()}"
            )
        return result

    def kubectl_json(self, *args: str, timeout: float = 120.0) -> Any:
        """Run kubectl with ``-o json`` and decode the output."""
        return json.loads(self.kubectl(*args, "-o", "json", timeout=timeout).stdout)

    # -- up / down ----------------------------------------------------------------------------

    def up(self, timeout: float = 240.0) -> None:
        """Start the cluster unless it already runs (building binaries first if needed)."""
        self.state_dir.parent.mkdir(parents=True, exist_ok=True)
        with file_lock(self.state_dir.with_name(self.state_dir.name + ".lock")):
            if self.is_running():
                self.log(f"cluster already up at {self.server} ({self.state_dir})")
                self._ensure_fleet(deadline=time.monotonic() + timeout)
                return
            if self.state_dir.exists():
                self.log(f"cleaning stale cluster state in {self.state_dir}")
                self._down_locked()
            self.build()
            started = time.monotonic()
            try:
                self._start(deadline=started + timeout)
            except BaseException:
                self._save_failure_logs()
                self._down_locked()
                raise
            self.log(
                f"cluster up in {time.monotonic() - started:.1f}s; "
                f"export KUBECONFIG={self.kubeconfig}"
            )

    def down(self) -> None:
        """Stop every process of the cluster and remove its state directory."""
        self.state_dir.parent.mkdir(parents=True, exist_ok=True)
        with file_lock(self.state_dir.with_name(self.state_dir.name + ".lock")):
            self._down_locked()

    def _down_locked(self) -> None:
        processes = self._processes() if self.state_dir.exists() else {}
        for name in reversed(COMPONENTS):
            info = processes.get(name)
            if info is not None:
                self._stop(name, int(info["pid"]), str(info["argv0"]))
        if self.state_dir.exists():
            shutil.rmtree(self.state_dir)
            self.log(f"removed {self.state_dir}")

    def _stop(self, name: str, pid: int, argv0: str, grace: float = 15.0) -> None:
        # Our own (unreaped) child cannot have had its pid reused: skip the argv0 check for it.
        expected: str | None = None if _is_own_child(pid) else argv0
        if pid_alive(pid, expected):
            self.log(f"stopping {name} (pid {pid})")
            for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10.0)):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pid, sig)
                deadline = time.monotonic() + wait
                while pid_alive(pid, expected) and time.monotonic() < deadline:
                    time.sleep(0.1)
                if not pid_alive(pid, expected):
                    break
            else:
                raise ClusterError(f"could not stop {name} (pid {pid})")
        reap(pid)

    def _save_failure_logs(self) -> None:
        if not self.logs_dir.exists():
            return
        target = self.cache / "last-failure-logs"
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(self.logs_dir, target)
        self.log(f"component logs of the failed start kept in {target}")

    def _spawn(self, name: str, argv: Sequence[str]) -> None:
        log_path = self.logs_dir / f"{name}.log"
        pid = spawn_detached(argv, log_path, _child_env())
        state = self._load_state()
        state.setdefault("processes", {})[name] = {
            "pid": pid,
            "argv0": argv[0],
            "log": str(log_path),
            "port": state["ports"].get(name),
        }
        self._save_state(state)

    def _wait(self, name: str, check: Callable[[], bool], deadline: float) -> None:
        pid = int(self._processes()[name]["pid"])
        while True:
            # No argv0 check: the pid is our unreaped child (it cannot be reused), and right after
            # posix_spawn /proc/<pid>/cmdline may still show this Python process.
            if not pid_alive(pid):
                code = reap(pid)
                raise ClusterError(
                    f"{name} exited (code {code}); "
                    f"log tail:\n{_tail(self.logs_dir / f'{name}.log')}"
                )
            if check():
                return
            if time.monotonic() > deadline:
                raise ClusterError(
                    f"{name} not ready in time; log tail:\n{_tail(self.logs_dir / f'{name}.log')}"
                )
            time.sleep(0.25)

    @staticmethod
    def _http_ok(
        url: str, context: ssl.SSLContext | None = None, expect: str | None = None
    ) -> Callable[[], bool]:
        def check() -> bool:
            try:
                status, body = http_get(url, context, timeout=3)
            except (OSError, ssl.SSLError):
                return False
            return status == 200 and (expect is None or expect in body)

        return check

    def _start(self, deadline: float) -> None:
        for sub in ("logs", "etcd", "bin"):
            (self.state_dir / sub).mkdir(parents=True, exist_ok=True)
        os.chmod(self.state_dir, 0o700)
        os.chmod(self.state_dir / "etcd", 0o700)
        t0 = time.monotonic()
        self.pki.ensure()
        names = (*COMPONENTS, "etcd-peer")
        ports = dict(zip(names, free_ports(len(names)), strict=True))
        server = f"https://{LOCALHOST}:{ports['kube-apiserver']}"
        self._save_state(
            {"server": server, "ports": ports, "processes": {}, "versions": vars(self.versions)}
        )
        for client in CLIENTS:
            if client.name == "front-proxy-client":
                continue
            cert, key = self.pki.client_cert(client.name)
            path = (
                self.kubeconfig
                if client.name == "admin"
                else self.state_dir / f"{client.name}.kubeconfig"
            )
            write_kubeconfig(path, server, self.pki.ca_cert, cert, key, client.user)
        self._link_binaries()
        self.log(f"certificates and kubeconfigs ready ({time.monotonic() - t0:.1f}s)")

        t = time.monotonic()
        self._spawn("etcd", self._etcd_argv(ports))
        self._wait(
            "etcd",
            self._http_ok(f"http://{LOCALHOST}:{ports['etcd']}/health", expect='"true"'),
            deadline,
        )
        self.log(f"etcd ready ({time.monotonic() - t:.1f}s)")

        t = time.monotonic()
        self._spawn("kube-apiserver", self._apiserver_argv(ports))
        self._wait("kube-apiserver", self.api_ready, deadline)
        self.log(f"kube-apiserver ready at {server} ({time.monotonic() - t:.1f}s)")

        t = time.monotonic()
        self._spawn("kube-controller-manager", self._controller_manager_argv(ports))
        self._spawn("kube-scheduler", self._scheduler_argv(ports))
        self._spawn("kwok", self._kwok_argv(ports))
        insecure = _insecure_context()
        for name in ("kube-controller-manager", "kube-scheduler"):
            self._wait(
                name,
                self._http_ok(f"https://{LOCALHOST}:{ports[name]}/healthz", insecure),
                deadline,
            )
        self._wait("kwok", self._http_ok(f"http://{LOCALHOST}:{ports['kwok']}/healthz"), deadline)
        self.log(f"controller-manager, scheduler and kwok healthy ({time.monotonic() - t:.1f}s)")

        self._ensure_fleet(deadline)

    def _ensure_fleet(self, deadline: float) -> None:
        t = time.monotonic()
        existing = {item["metadata"]["name"] for item in self.kubectl_json("get", "nodes")["items"]}
        missing = [node for node in fleet_manifests() if node["metadata"]["name"] not in existing]
        if missing:
            manifest = {"apiVersion": "v1", "kind": "List", "items": missing}
            self.kubectl("create", "-f", "-", input=json.dumps(manifest))
        self._wait_until("fleet nodes Ready", self._fleet_ready, deadline)
        self._wait_until("default ServiceAccount", self._default_sa_exists, deadline)
        self.log(f"{len(fleet_node_names())} fake nodes Ready ({time.monotonic() - t:.1f}s)")

    def _wait_until(self, what: str, check: Callable[[], bool], deadline: float) -> None:
        while not check():
            if time.monotonic() > deadline:
                raise ClusterError(
                    f"timed out waiting for {what}; status: {json.dumps(self.status(), indent=1)}"
                )
            time.sleep(0.5)

    def _fleet_ready(self) -> bool:
        wanted = set(fleet_node_names())
        ready = set()
        for node in self.kubectl_json("get", "nodes")["items"]:
            for condition in node.get("status", {}).get("conditions", []):
                if condition.get("type") == "Ready" and condition.get("status") == "True":
                    ready.add(node["metadata"]["name"])
        return wanted <= ready

    def _default_sa_exists(self) -> bool:
        return (
            self.kubectl(
                "get", "serviceaccount", "default", "-n", "default", check=False
            ).returncode
            == 0
        )

    def _link_binaries(self) -> None:
        links = self.state_dir / "bin"
        for name in ("kubectl", "helm", "kwok", "llm-d-inference-sim"):
            try:
                target = self.binary(name)
            except ClusterError:
                continue
            if target.exists():
                link = links / name
                link.unlink(missing_ok=True)
                link.symlink_to(target)

    # -- command lines ------------------------------------------------------------------------

    def _etcd_argv(self, ports: Mapping[str, int]) -> list[str]:
        client = f"http://{LOCALHOST}:{ports['etcd']}"
        peer = f"http://{LOCALHOST}:{ports['etcd-peer']}"
        return [
            str(self.binary("etcd")),
            "--name=default",
            f"--data-dir={self.state_dir / 'etcd'}",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=default={peer}",
            "--initial-cluster-state=new",
            "--unsafe-no-fsync=true",
            "--log-level=warn",
        ]

    def _apiserver_argv(self, ports: Mapping[str, int]) -> list[str]:
        pki = self.pki
        proxy_cert, proxy_key = pki.client_cert("front-proxy-client")
        return [
            str(self.binary("kube-apiserver")),
            f"--etcd-servers=http://{LOCALHOST}:{ports['etcd']}",
            f"--bind-address={LOCALHOST}",
            f"--advertise-address={LOCALHOST}",
            f"--secure-port={ports['kube-apiserver']}",
            f"--cert-dir={self.state_dir / 'pki'}",
            f"--tls-cert-file={pki.serving_cert}",
            f"--tls-private-key-file={pki.serving_key}",
            f"--client-ca-file={pki.ca_cert}",
            f"--requestheader-client-ca-file={pki.ca_cert}",
            "--requestheader-allowed-names=front-proxy-client",
            "--requestheader-username-headers=X-Remote-User",
            "--requestheader-group-headers=X-Remote-Group",
            "--requestheader-extra-headers-prefix=X-Remote-Extra-",
            f"--proxy-client-cert-file={proxy_cert}",
            f"--proxy-client-key-file={proxy_key}",
            "--authorization-mode=Node,RBAC",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={pki.sa_pub}",
            f"--service-account-signing-key-file={pki.sa_key}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--allow-privileged=true",
            # The apiserver cannot publish 127.0.0.1 as endpoint of the `kubernetes` Service.
            "--endpoint-reconciler-type=none",
            "--profiling=false",
        ]

    def _component_kubeconfig_flags(self, name: str) -> list[str]:
        kubeconfig = self.state_dir / f"{name}.kubeconfig"
        return [
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
        ]

    def _controller_manager_argv(self, ports: Mapping[str, int]) -> list[str]:
        pki = self.pki
        return [
            str(self.binary("kube-controller-manager")),
            *self._component_kubeconfig_flags("kube-controller-manager"),
            f"--bind-address={LOCALHOST}",
            f"--secure-port={ports['kube-controller-manager']}",
            "--controllers=*",
            "--leader-elect=false",
            "--use-service-account-credentials=true",
            f"--service-account-private-key-file={pki.sa_key}",
            f"--root-ca-file={pki.ca_cert}",
            f"--cluster-signing-cert-file={pki.ca_cert}",
            f"--cluster-signing-key-file={pki.ca_key}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--profiling=false",
        ]

    def _scheduler_argv(self, ports: Mapping[str, int]) -> list[str]:
        return [
            str(self.binary("kube-scheduler")),
            *self._component_kubeconfig_flags("kube-scheduler"),
            f"--bind-address={LOCALHOST}",
            f"--secure-port={ports['kube-scheduler']}",
            "--leader-elect=false",
            "--profiling=false",
        ]

    def _kwok_argv(self, ports: Mapping[str, int]) -> list[str]:
        return [
            str(self.binary("kwok")),
            f"--config={self.builder.kwok_stages}",
            f"--kubeconfig={self.state_dir / 'kwok.kubeconfig'}",
            "--manage-all-nodes=false",
            f"--manage-nodes-with-annotation-selector={KWOK_NODE_ANNOTATION}={KWOK_NODE_ANNOTATION_VALUE}",
            f"--cidr={self.pod_cidr}",
            f"--node-ip={LOCALHOST}",
            "--node-lease-duration-seconds=40",
            f"--server-address={LOCALHOST}:{ports['kwok']}",
        ]


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    no_proxy = ",".join(filter(None, [env.get("NO_PROXY", ""), "127.0.0.1,localhost"]))
    env["NO_PROXY"] = env["no_proxy"] = no_proxy
    env.pop("KUBECONFIG", None)
    return env


def format_env(env: Mapping[str, str]) -> str:
    """Shell ``export`` lines for ``env``."""
    lines = []
    for key, value in env.items():
        if key == "PATH":
            value = value.split(os.pathsep, 1)[0] + os.pathsep + "$PATH"
            lines.append(f'export PATH="{value}"')
        else:
            lines.append(f"export {key}={value}")
    return "\n".join(lines)


__all__ = [
    "BUILD_ORDER",
    "COMPONENTS",
    "FLEET",
    "GPU_PRODUCT_LABEL",
    "GPU_RESOURCE",
    "GPU_TAINT",
    "Cluster",
    "ClusterError",
    "NodePool",
    "Versions",
    "cache_dir",
    "default_state_dir",
    "fleet_manifests",
    "fleet_node_names",
    "format_env",
]
