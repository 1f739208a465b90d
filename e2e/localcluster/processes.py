"""Processes and ports: free ports, pid checks, locks, plain HTTP GETs and detached children."""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import ssl
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from . import settings


def free_ports(count: int) -> list[int]:
    """``count`` distinct free TCP ports on 127.0.0.1 (all held open while choosing)."""
    with contextlib.ExitStack() as stack:
        ports: list[int] = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind((settings.LOCALHOST, 0))
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


def is_own_child(pid: int) -> bool:
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


def insecure_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


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


def child_env() -> dict[str, str]:
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


def stop_child(process: subprocess.Popen[bytes], grace_s: float = 20.0) -> None:
    """SIGTERM a child process, then SIGKILL it if it has not exited within `grace_s`."""
    process.terminate()
    try:
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)
