"""Run `fleetroute operator` as a real process against the local cluster, and stop or kill it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from e2e.localcluster.processes import stop_child


class OperatorProcess:
    """One operator process; its output goes to a log file kept for failure reports."""

    def __init__(self, kubeconfig: Path, log_path: Path, *extra_args: str) -> None:
        self.kubeconfig = kubeconfig
        self.log_path = log_path
        self.extra_args = extra_args
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig)}
        argv = [
            sys.executable,
            "-m",
            "fleetroute",
            "--log-level",
            "DEBUG",
            "operator",
            "--status-interval",
            "1",
            "--router-config-namespace",
            "fleetroute-system",
            *self.extra_args,
        ]
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)

    def kill(self) -> None:
        """SIGKILL: no chance to finish what it was doing."""
        if self._process is not None:
            self._process.send_signal(signal.SIGKILL)
            self._process.wait(timeout=30)
            self._process = None

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it has not exited in 20 s."""
        if self._process is None:
            return
        stop_child(self._process)
        self._process = None

    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no operator log)"
