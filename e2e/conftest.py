"""Pytest fixtures for the e2e tests: one local Kubernetes cluster per session (e2e/README.md)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

_REPO_ROOT = str(Path(__file__).resolve().parent.parent)
if _REPO_ROOT not in sys.path:  # e.g. under --import-mode=importlib
    sys.path.insert(0, _REPO_ROOT)

from e2e.localcluster import Cluster  # noqa: E402

REUSE_ENV = "FLEETROUTE_E2E_REUSE"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "e2e: needs the local Kubernetes cluster")


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    """The local cluster, started once per session and stopped at its end.

    A cluster that was already running when the session started (``python e2e/cluster.py up``) is
    used as is and left running.  With ``FLEETROUTE_E2E_REUSE=1`` a cluster the session had to start
    is left running too, so the next session starts in seconds; stop it with ``cluster.py down``.
    """
    instance = Cluster()
    was_running = instance.is_running()
    instance.up()
    try:
        yield instance
    finally:
        if not was_running and not _truthy(os.environ.get(REUSE_ENV)):
            instance.down()
