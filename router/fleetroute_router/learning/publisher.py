"""Publish this replica's learning to the cluster every period, and merge every other replica's.

A background task, off the request path: the Kubernetes calls, the compression and the
decoding run in a worker thread; only taking the contribution and rebuilding the policies run on
the event loop (both copy a few small matrices). When the API server is slow or down, routing
goes on with what this replica holds, the publisher retries with exponential back-off, counts
the failure and logs it; nothing is lost, since every publish carries the replica's whole
contribution (state-based), so the next one that succeeds carries what the failed ones missed.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge

from fleetroute import replica_learning
from fleetroute.replica_learning import Base, Owner, Published
from fleetroute.v1alpha1 import learning_pb2
from fleetroute_router.learning.replicas import ReplicaLearning
from fleetroute_router.learning.store import LearningStore, StoreError

log = logging.getLogger(__name__)
PREFIX = "fleetroute_router_learning"
RESULTS = ("success", "failure")
DEFAULT_PERIOD_S = 10.0
MAX_BACKOFF_S = 300.0


@dataclass
class Read:
    """One read of the cluster: the replicas' publishes, the base, what could not be read."""

    published: list[Published]
    base: Base | None
    problems: list[str] = field(default_factory=list)


def read(store: LearningStore) -> Read:
    """List and decode the namespace's learning objects (blocking: run it in a thread)."""
    objects = store.list()
    published, problems = replica_learning.replicas(objects)
    base, more = replica_learning.read_base(objects)
    return Read(published, base, problems + more)


class PublishMetrics:
    """The publisher's series, in the router's registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.publishes = Counter(
            f"{PREFIX}_publish",
            "Publishes of this replica's learning to the cluster, by result",
            ["result"],
            registry=registry,
        )
        for result in RESULTS:
            self.publishes.labels(result)
        self.last_publish = Gauge(
            f"{PREFIX}_last_publish_timestamp_seconds",
            "Unix time of this replica's last successful publish (0: none yet)",
            registry=registry,
        )
        self.peers = Gauge(
            f"{PREFIX}_peers",
            "Other replicas whose learning this replica merges",
            registry=registry,
        )
        self.published_bytes = Gauge(
            f"{PREFIX}_published_bytes",
            "Size of the last publish's compressed learning, over all its objects",
            registry=registry,
        )
        self.backoff = Gauge(
            f"{PREFIX}_backoff_seconds",
            "Seconds until the next try after failed publishes (0: publishing normally)",
            registry=registry,
        )


class Publisher:
    """Publishes `sync`'s contribution to `store` and merges the peers', every `period_s`."""

    def __init__(
        self,
        sync: ReplicaLearning,
        store: LearningStore,
        *,
        namespace: str,
        owner: Owner | None,
        period_s: float = DEFAULT_PERIOD_S,
        registry: CollectorRegistry | None = None,
        max_backoff_s: float = MAX_BACKOFF_S,
        clock: Callable[[], float] = time.time,
        run_blocking: Callable[..., Any] = asyncio.to_thread,
    ) -> None:
        """`run_blocking(fn, *args)` runs a blocking call off the loop (default: a thread)."""
        self.sync, self.store = sync, store
        self.namespace, self.owner, self.period_s = namespace, owner, period_s
        self.max_backoff_s = max(max_backoff_s, period_s)
        self.metrics = PublishMetrics(registry if registry is not None else CollectorRegistry())
        self.failures = 0
        self.last_error = ""
        self._clock, self._blocking = clock, run_blocking
        self._jitter = random.Random()  # noqa: S311 (spreads retries; not security)

    @property
    def loaded(self) -> bool:
        """Whether this replica has read the cluster once (and may publish)."""
        return self.sync.resumed

    async def load(self) -> bool:
        """Read the cluster: resume this replica's own earlier publish, merge the peers' and the
        base. Before serving; False (logged) when the API server cannot be read."""
        try:
            found = await self._blocking(read, self.store)
        except StoreError as error:
            self._failed(error, "load")
            return False
        if not self.sync.resumed:
            own = [p for p in found.published if p.replica == self.sync.replica]
            self.sync.resume(own[0] if own else None)
        await self._merge(found)
        return True

    async def _merge(self, found: Read) -> None:
        """Select the latest publishes (on the loop), sum them in a thread, rebuild the
        policies (on the loop: a few small matrix copies and inverses per arm)."""
        for problem in found.problems:
            log.warning("learning object not merged (read again next period): %s", problem)
        base = found.base
        changed = self.sync.select(
            found.published,
            base.learning if base is not None else None,
            base.folded if base is not None else None,
            base.sequence if base is not None else None,
        )
        shared = await self._blocking(self.sync.shared_totals, self.sync.models())
        self.sync.rebuild(shared)
        self.metrics.peers.set(len(self.sync.peers))
        if changed:
            log.debug("merged the learning of %s", ", ".join(sorted(changed)))

    async def publish(self) -> bool:
        """Write this replica's contribution, then read and merge the others'; False (counted,
        logged) when the API server refused or did not answer."""
        if not self.sync.resumed and not await self.load():
            return False
        build = self.sync.capture()  # on the loop: copies of the live statistics
        sequence = self.sync.sequence
        try:
            size = await self._blocking(self._write, sequence, build)
            found = await self._blocking(read, self.store)
        except StoreError as error:
            self._failed(error, "publish")
            return False
        self.metrics.publishes.labels("success").inc()
        self.metrics.last_publish.set(self._clock())
        self.metrics.published_bytes.set(size)
        if self.failures:
            log.info("learning published again after %d failed tries", self.failures)
        self.failures, self.last_error = 0, ""
        self.metrics.backoff.set(0)
        await self._merge(found)
        return True

    def _write(self, sequence: int, build: Callable[[], learning_pb2.RouterLearning]) -> int:
        objects = replica_learning.manifests(
            self.namespace, self.sync.replica, sequence, build(), self.owner
        )
        for manifest in objects:  # parts first, the head last
            self.store.apply(manifest)
        return sum(len(v) * 3 // 4 for o in objects for v in o["binaryData"].values())

    def _failed(self, error: Exception, what: str) -> None:
        self.failures += 1
        self.last_error = str(error)
        self.metrics.publishes.labels("failure").inc()
        self.metrics.backoff.set(self.delay())
        log.warning(
            "learning %s failed (%d in a row; routing goes on with local state, next try in "
            "%.1fs): %s",
            what,
            self.failures,
            self.delay(),
            error,
        )

    def delay(self) -> float:
        """Seconds until the next publish: the period, doubled per failure up to the cap."""
        if not self.failures:
            return self.period_s
        return float(min(self.period_s * 2.0**self.failures, self.max_backoff_s))

    async def run(self) -> None:
        """Publish every period until cancelled."""
        while True:
            delay = self.delay()
            await asyncio.sleep(delay * self._jitter.uniform(0.9, 1.1))
            await self.publish()

    async def close(self, timeout_s: float = 5.0) -> None:
        """A last publish on shutdown, so what was learned since the last period is kept."""
        if not self.sync.resumed:
            return
        try:
            await asyncio.wait_for(self.publish(), timeout_s)
        except TimeoutError:
            log.warning("last learning publish did not finish within %.0fs", timeout_s)
