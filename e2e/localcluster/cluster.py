"""The `Cluster` class: start, query and stop a local control plane with a fake GPU fleet."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import ssl
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from . import build, components, fleet, pki, processes, settings
from .versions import Versions


class Cluster:
    """A local control plane with a fake GPU fleet; see e2e/README.md."""

    def __init__(
        self,
        state_dir: Path | None = None,
        *,
        cache: Path | None = None,
        versions: Versions | None = None,
        pod_cidr: str | None = None,
        log: settings.Logger = settings.stderr_log,
    ) -> None:
        self.state_dir = (state_dir or settings.default_state_dir()).resolve()
        self.cache = (cache or settings.cache_dir()).resolve()
        self.versions = versions or Versions.load()
        self.pod_cidr = (
            pod_cidr or os.environ.get("FLEETROUTE_POD_CIDR") or settings.DEFAULT_POD_CIDR
        )
        self.log = log
        self.bin_dir = self.cache / "bin"
        self.builder = build.Builder(self.versions, self.bin_dir, log)
        self.kubeconfig = self.state_dir / "kubeconfig"
        self.pki = pki.PKI(self.state_dir / "pki")
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
            raise settings.ClusterError(f"unreadable state file {self.state_file}: {exc}") from exc
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
            raise settings.ClusterError(f"the cluster in {self.state_dir} is not up")
        return server

    def _processes(self) -> dict[str, dict[str, Any]]:
        running: dict[str, dict[str, Any]] = self._load_state().get("processes", {})
        return running

    def api_get(
        self, path: str, headers: Sequence[tuple[str, str]] = (), timeout: float = 10.0
    ) -> tuple[int, str]:
        """GET an API path as the admin (Impersonate-* headers allowed); returns (status, body)."""
        return processes.http_get(
            self.server + path, self._api_context(), timeout=timeout, headers=headers
        )

    def _api_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.pki.ca_cert))
        cert, key = self.pki.client_cert("admin")
        context.load_cert_chain(str(cert), str(key))
        return context

    def api_ready(self) -> bool:
        try:
            status, body = processes.http_get(
                self.server + "/readyz", self._api_context(), timeout=5
            )
        except (OSError, ssl.SSLError, settings.ClusterError):
            return False
        return status == 200 and body.strip() == "ok"

    def is_running(self) -> bool:
        """True if every component process is alive and the API server is ready."""
        running = self._processes()
        if set(running) != set(build.COMPONENTS):
            return False
        if not all(processes.pid_alive(int(p["pid"]), str(p["argv0"])) for p in running.values()):
            return False
        return self.api_ready()

    def status(self) -> dict[str, Any]:
        state = self._load_state()
        components = {
            name: {**info, "alive": processes.pid_alive(int(info["pid"]), str(info["argv0"]))}
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
            argv,
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=processes.child_env(),
        )
        if check and result.returncode != 0:
            raise settings.ClusterError(
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
        with processes.file_lock(self.state_dir.with_name(self.state_dir.name + ".lock")):
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
        with processes.file_lock(self.state_dir.with_name(self.state_dir.name + ".lock")):
            self._down_locked()

    def _down_locked(self) -> None:
        running = self._processes() if self.state_dir.exists() else {}
        for name in reversed(build.COMPONENTS):
            info = running.get(name)
            if info is not None:
                self._stop(name, int(info["pid"]), str(info["argv0"]))
        if self.state_dir.exists():
            shutil.rmtree(self.state_dir)
            self.log(f"removed {self.state_dir}")

    def _stop(self, name: str, pid: int, argv0: str, grace: float = 15.0) -> None:
        # Our own (unreaped) child cannot have had its pid reused: skip the argv0 check for it.
        expected: str | None = None if processes.is_own_child(pid) else argv0
        if processes.pid_alive(pid, expected):
            self.log(f"stopping {name} (pid {pid})")
            for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10.0)):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pid, sig)
                deadline = time.monotonic() + wait
                while processes.pid_alive(pid, expected) and time.monotonic() < deadline:
                    time.sleep(0.1)
                if not processes.pid_alive(pid, expected):
                    break
            else:
                raise settings.ClusterError(f"could not stop {name} (pid {pid})")
        processes.reap(pid)

    def _save_failure_logs(self) -> None:
        if not self.logs_dir.exists():
            return
        target = self.cache / "last-failure-logs"
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(self.logs_dir, target)
        self.log(f"component logs of the failed start kept in {target}")

    def _spawn(self, name: str, argv: Sequence[str]) -> None:
        log_path = self.logs_dir / f"{name}.log"
        pid = processes.spawn_detached(argv, log_path, processes.child_env())
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
            if not processes.pid_alive(pid):
                code = processes.reap(pid)
                raise settings.ClusterError(
                    f"{name} exited (code {code}); "
                    f"log tail:\n{settings.tail(self.logs_dir / f'{name}.log')}"
                )
            if check():
                return
            if time.monotonic() > deadline:
                raise settings.ClusterError(
                    f"{name} not ready in time; "
                    f"log tail:\n{settings.tail(self.logs_dir / f'{name}.log')}"
                )
            time.sleep(0.25)

    @staticmethod
    def _http_ok(
        url: str, context: ssl.SSLContext | None = None, expect: str | None = None
    ) -> Callable[[], bool]:
        def check() -> bool:
            try:
                status, body = processes.http_get(url, context, timeout=3)
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
        names = (*build.COMPONENTS, "etcd-peer")
        ports = dict(zip(names, processes.free_ports(len(names)), strict=True))
        server = f"https://{settings.LOCALHOST}:{ports['kube-apiserver']}"
        self._save_state(
            {"server": server, "ports": ports, "processes": {}, "versions": vars(self.versions)}
        )
        for client in pki.CLIENTS:
            if client.name == "front-proxy-client":
                continue
            cert, key = self.pki.client_cert(client.name)
            path = (
                self.kubeconfig
                if client.name == "admin"
                else self.state_dir / f"{client.name}.kubeconfig"
            )
            pki.write_kubeconfig(path, server, self.pki.ca_cert, cert, key, client.user)
        self._link_binaries()
        self.log(f"certificates and kubeconfigs ready ({time.monotonic() - t0:.1f}s)")

        t = time.monotonic()
        self._spawn("etcd", components.etcd_argv(self.binary("etcd"), self.state_dir, ports))
        self._wait(
            "etcd",
            self._http_ok(f"http://{settings.LOCALHOST}:{ports['etcd']}/health", expect='"true"'),
            deadline,
        )
        self.log(f"etcd ready ({time.monotonic() - t:.1f}s)")

        t = time.monotonic()
        self._spawn(
            "kube-apiserver",
            components.apiserver_argv(
                self.binary("kube-apiserver"), self.state_dir, self.pki, ports
            ),
        )
        self._wait("kube-apiserver", self.api_ready, deadline)
        self.log(f"kube-apiserver ready at {server} ({time.monotonic() - t:.1f}s)")

        t = time.monotonic()
        self._spawn(
            "kube-controller-manager",
            components.controller_manager_argv(
                self.binary("kube-controller-manager"), self.state_dir, self.pki, ports
            ),
        )
        self._spawn(
            "kube-scheduler",
            components.scheduler_argv(self.binary("kube-scheduler"), self.state_dir, ports),
        )
        self._spawn(
            "kwok",
            components.kwok_argv(
                self.binary("kwok"), self.builder.kwok_stages, self.state_dir, self.pod_cidr, ports
            ),
        )
        insecure = processes.insecure_context()
        for name in ("kube-controller-manager", "kube-scheduler"):
            self._wait(
                name,
                self._http_ok(f"https://{settings.LOCALHOST}:{ports[name]}/healthz", insecure),
                deadline,
            )
        self._wait(
            "kwok", self._http_ok(f"http://{settings.LOCALHOST}:{ports['kwok']}/healthz"), deadline
        )
        self.log(f"controller-manager, scheduler and kwok healthy ({time.monotonic() - t:.1f}s)")

        self._ensure_fleet(deadline)

    def _ensure_fleet(self, deadline: float) -> None:
        t = time.monotonic()
        existing = {item["metadata"]["name"] for item in self.kubectl_json("get", "nodes")["items"]}
        missing = [
            node for node in fleet.fleet_manifests() if node["metadata"]["name"] not in existing
        ]
        if missing:
            manifest = {"apiVersion": "v1", "kind": "List", "items": missing}
            self.kubectl("create", "-f", "-", input=json.dumps(manifest))
        self._wait_until("fleet nodes Ready", self._fleet_ready, deadline)
        self._wait_until("default ServiceAccount", self._default_sa_exists, deadline)
        self.log(f"{len(fleet.fleet_node_names())} fake nodes Ready ({time.monotonic() - t:.1f}s)")

    def _wait_until(self, what: str, check: Callable[[], bool], deadline: float) -> None:
        while not check():
            if time.monotonic() > deadline:
                raise settings.ClusterError(
                    f"timed out waiting for {what}; status: {json.dumps(self.status(), indent=1)}"
                )
            time.sleep(0.5)

    def _fleet_ready(self) -> bool:
        wanted = set(fleet.fleet_node_names())
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
            except settings.ClusterError:
                continue
            if target.exists():
                link = links / name
                link.unlink(missing_ok=True)
                link.symlink_to(target)
