"""Snapshots of what a router learned: taken periodically and on shutdown, restored on start."""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from fleetroute.v1alpha1 import learning_pb2
from fleetroute_router.learning.state import restore_into, to_proto
from fleetroute_router.policies.bandits import LinearBandit
from fleetroute_router.policies.base import SelectionPolicy

log = logging.getLogger(__name__)


def take(
    selectors: Mapping[str, SelectionPolicy], feature_names: Sequence[str] = (), replica: str = ""
) -> learning_pb2.RouterLearning:
    """The statistics of every learning policy, by policy name."""
    learning = learning_pb2.RouterLearning(replica=replica)
    learning.taken_at.GetCurrentTime()
    for name, selector in selectors.items():
        if isinstance(selector, LinearBandit) and selector.model.dimension:
            learning.policies[name].CopyFrom(to_proto(selector, feature_names))
    return learning


def save(path: Path, learning: learning_pb2.RouterLearning) -> None:
    """Write a snapshot atomically (a crash never leaves half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(learning.SerializeToString())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load(path: Path) -> learning_pb2.RouterLearning:
    """Read a snapshot; ValueError when the file is not one."""
    learning = learning_pb2.RouterLearning()
    try:
        learning.ParseFromString(path.read_bytes())
    except Exception as error:  # protobuf raises its own DecodeError
        raise ValueError(f"{path} is not a fleetroute learning snapshot: {error}") from error
    return learning


def restore_core(
    selectors: Mapping[str, SelectionPolicy],
    learning: learning_pb2.RouterLearning,
    feature_names: Sequence[str] = (),
) -> list[str]:
    """Load saved statistics into the matching learning policies; returns the names restored.

    A policy whose saved statistics do not fit (other features) starts fresh, with a warning."""
    restored = []
    for name, state in learning.policies.items():
        selector = selectors.get(name)
        if not isinstance(selector, LinearBandit):
            continue
        try:
            restore_into(selector, state, feature_names)
        except ValueError as error:
            log.warning("policy %s starts fresh: %s", name, error)
            continue
        restored.append(name)
    return restored


class Snapshotter:
    """Saves a router's learning to a file every `interval_s` and once more on `close`."""

    def __init__(
        self,
        path: Path,
        selectors: Callable[[], Mapping[str, SelectionPolicy]],
        feature_names: Sequence[str] = (),
        replica: str = "",
    ) -> None:
        """`selectors` returns the live policies by name, e.g. RoutingCore.selectors."""
        self.path, self.feature_names, self.replica = path, feature_names, replica
        self.selectors = selectors

    def restore(self) -> list[str]:
        """Restore from the file when it exists (first start: nothing to restore)."""
        if not self.path.exists():
            return []
        return restore_core(self.selectors(), load(self.path), self.feature_names)

    def save_now(self) -> None:
        save(self.path, take(self.selectors(), self.feature_names, self.replica))

    async def run(self, interval_s: float) -> None:
        """Snapshot periodically until cancelled; a failed write is logged and retried later."""
        while True:
            await asyncio.sleep(interval_s)
            try:
                self.save_now()
            except OSError as error:
                log.warning("learning snapshot to %s failed: %s", self.path, error)

    def close(self) -> None:
        """The final snapshot on shutdown."""
        self.save_now()
