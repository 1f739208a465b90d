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


Extra = Callable[[learning_pb2.RouterLearning], Callable[[], None]]
OnRestore = Callable[[learning_pb2.RouterLearning, list[str]], None]


class Snapshotter:
    """Saves a router's learning to a file every `interval_s` and once more on `close`.

    `extra(learning)` adds what else the router keeps (guard figures, counts, decisions awaiting
    feedback) on the event loop, copying what may change, and returns a function that finishes
    the message; that, the serialisation and the write run in a worker thread, off the loop.
    `on_restore(learning, restored)` loads those parts back at start.
    """

    def __init__(
        self,
        path: Path,
        selectors: Callable[[], Mapping[str, SelectionPolicy]],
        feature_names: Sequence[str] = (),
        replica: str = "",
        *,
        extra: Extra | None = None,
        on_restore: OnRestore | None = None,
        prior: Path | None = None,
    ) -> None:
        """`selectors` returns the live policies by name, e.g. RoutingCore.selectors; `prior`
        is a learning state (e.g. `fleetroute replay --export-state`) for the policies the
        snapshot does not have."""
        self.path, self.feature_names, self.replica = path, feature_names, replica
        self.selectors = selectors
        self._extra, self._on_restore, self._prior = extra, on_restore, prior

    def restore(self) -> list[str]:
        """Restore from the file when it exists (first start: nothing), then the prior for the
        policies still without statistics; returns the policies restored."""
        restored: list[str] = []
        learning = load(self.path) if self.path.exists() else None
        if learning is not None:
            restored = restore_core(self.selectors(), learning, self.feature_names)
        if self._prior is not None:
            prior = load(self._prior)
            missing = {n: s for n, s in self.selectors().items() if n not in restored}
            primed = restore_core(missing, prior, self.feature_names)
            log.info("learning prior from %s for %d policies", self._prior, len(primed))
            restored += primed
            if learning is None:
                learning = prior
            else:  # what on_restore reads of the primed policies comes from the prior
                for name in primed:
                    learning.policies[name].CopyFrom(prior.policies[name])
        if learning is not None and self._on_restore is not None:
            self._on_restore(learning, restored)
        return restored

    def _capture(self) -> Callable[[], learning_pb2.RouterLearning]:
        learning = take(self.selectors(), self.feature_names, self.replica)
        finish = self._extra(learning) if self._extra is not None else None

        def done() -> learning_pb2.RouterLearning:
            if finish is not None:
                finish()
            return learning

        return done

    def save_now(self) -> None:
        """Snapshot synchronously (shutdown)."""
        save(self.path, self._capture()())

    async def save_async(self) -> None:
        """Snapshot with the serialisation and the write in a worker thread."""
        finish = self._capture()
        await asyncio.to_thread(lambda: save(self.path, finish()))

    async def run(self, interval_s: float) -> None:
        """Snapshot periodically until cancelled; a failed write is logged and retried later."""
        while True:
            await asyncio.sleep(interval_s)
            try:
                await self.save_async()
            except OSError as error:
                log.warning("learning snapshot to %s failed: %s", self.path, error)

    def close(self) -> None:
        """The final snapshot on shutdown."""
        self.save_now()
