"""`fleetroute serve --workers N`: N router processes on the same ports, sharing what they learn.

A Python process routes on one core (one event loop, one GIL). With --workers N the serving
process becomes a supervisor: it starts N worker processes that each run the whole router
(proxy, gRPC API, ext_proc) on the same addresses with SO_REUSEPORT, so the kernel spreads new
connections over them; each worker routes and learns on its own.

Learning is shared through the supervisor, which is only a hub: every SHARE_INTERVAL_S each
worker sends the statistics its linear bandits learned since its last exchange (deltas of
A, b and counts, learning.merge.ReplicaSync) and adds the deltas its siblings sent since. The
hub forwards each worker's message to every other worker and keeps no state. A and b are sums,
so after an exchange every worker holds what one learner that saw all the workers' traffic
would hold, one interval late (learning/merge.py has the argument). Policies that are not
linear bandits (round-robin, least-loaded) have nothing to share. A policy rebuilt by a config
change (a new algorithm) starts sharing at its first exchange: what a worker learned for it
before that stays that worker's own.

Per worker: its own admin listener and /metrics (the --admin and --metrics ports plus the
worker's index; with --proxy-metrics the proxy's /metrics answers for whichever worker the
connection reached), its own
in-flight counts and SLO guard. Worker 0 alone writes the --learning-state snapshot; the others
start from it as a prior. With --learning-publish only worker 0 publishes and merges through
the Kubernetes API (docs/replica-learning.md): it holds its siblings' learning, which it
publishes as the pod's, and what it merges from other pods reaches its siblings through the
hub like anything it learns. (That combination has unit-level reasoning behind it, not a test.)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import logging
import multiprocessing
import signal
import threading
from collections.abc import Mapping, Sequence
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from fleetroute_router.learning.merge import ReplicaSync
from fleetroute_router.policies.bandits import LinearBandit
from fleetroute_router.policies.base import SelectionPolicy
from fleetroute_router.policies.linear import ArmStatistics

log = logging.getLogger(__name__)
SHARE_INTERVAL_S = 1.0
# One worker's message: per policy name, the deltas of the arms that learned since the last one.
Message = dict[str, list[ArmStatistics]]


def problems(args: argparse.Namespace) -> list[str]:
    """Why these serve arguments cannot run as several workers (empty when they can)."""
    found = []
    if args.workers < 1:
        found.append("--workers must be at least 1")
    if args.workers > 1:
        if args.simulate or args.config is None:
            found.append("--workers needs --config and --no-simulate (one fleet, not N)")
        for flag, address in (("--http", args.http), ("--grpc", args.grpc), ("--ext-proc",
                              args.ext_proc), ("--metrics", args.metrics),
                              ("--admin", args.admin)):  # fmt: skip
            if address and address.rsplit(":", 1)[-1] == "0":
                found.append(f"{flag} needs a fixed port with --workers (workers share it)")
    return found


def worker_args(args: argparse.Namespace, index: int) -> argparse.Namespace:
    """The arguments worker `index` serves with (see the module docstring)."""
    mine = copy.copy(args)
    mine.workers, mine.worker_index = 1, index
    if args.metrics:
        host, port = args.metrics.rsplit(":", 1)
        mine.metrics = f"{host}:{int(port) + index}"
    if args.admin:
        host, port = args.admin.rsplit(":", 1)
        mine.admin = f"{host}:{int(port) + index}"
    if index > 0:
        mine.learning_publish = False  # one replica per pod: worker 0 (module docstring)
    if index > 0 and args.learning_state:
        mine.learning_prior = args.learning_state if Path(args.learning_state).exists() else None
        mine.learning_state = None
    return mine


class Exchange:
    """One worker's side: its deltas out, its siblings' in (call `swap` on the event loop)."""

    def __init__(self) -> None:
        self._syncs: dict[str, ReplicaSync] = {}

    def swap(
        self, selectors: Mapping[str, SelectionPolicy], received: Sequence[Message]
    ) -> Message:
        """Absorb the siblings' messages and return this worker's deltas since the last swap
        (taken and absorbed in one step, so nothing learned in between is lost or doubled)."""
        outgoing: Message = {}
        for name, selector in selectors.items():
            if not isinstance(selector, LinearBandit):
                continue
            sync = self._syncs.get(name)
            if sync is None or sync.bandit is not selector:
                # First seen: what it holds now is the base (at start-up the state every
                # worker restored; a policy rebuilt by a config change shares from here on).
                sync = self._syncs[name] = ReplicaSync(selector)
            deltas = sync.delta()
            try:
                sync.absorb([message[name] for message in received if name in message])
            except ValueError as error:  # e.g. a sibling on another feature dimension
                log.warning("policy %s: sibling learning not merged: %s", name, error)
            learned = [d for d in deltas if d.observations]
            if learned:
                outgoing[name] = learned
        for name in set(self._syncs) - set(selectors):
            del self._syncs[name]
        return outgoing


async def share(selectors: Any, hub: Connection, interval_s: float = SHARE_INTERVAL_S) -> None:
    """Exchange learning with the siblings through the hub until cancelled; `selectors()`
    returns the live policies by name (RoutingCore.selectors)."""
    loop = asyncio.get_running_loop()
    received: list[Message] = []
    exchange = Exchange()

    def listen() -> None:
        # A thread with blocking reads: the event loop's readers make the descriptor
        # non-blocking, and a large message then breaks off half read.
        try:
            while True:
                message = hub.recv()
                loop.call_soon_threadsafe(received.append, message)
        except (EOFError, OSError, RuntimeError):  # the hub or the loop is gone
            return

    threading.Thread(target=listen, name="learning-hub", daemon=True).start()
    exchange.swap(selectors(), [])  # the bases: the state every worker started from
    while True:
        await asyncio.sleep(interval_s)
        batch = received[:]
        received.clear()
        outgoing = exchange.swap(selectors(), batch)
        if outgoing:
            hub.send(outgoing)


def _worker(args: argparse.Namespace, hub: Connection) -> None:
    from fleetroute_router import command  # here: command imports this module

    args.hub = hub
    raise SystemExit(command.run(args))


def supervise(args: argparse.Namespace) -> int:
    """Start the workers, forward learning between them, stop them on SIGTERM or SIGINT."""
    context = multiprocessing.get_context("spawn")
    hubs: dict[Connection, Any] = {}  # -> the worker process
    for index in range(args.workers):
        mine, theirs = context.Pipe()
        process = context.Process(
            target=_worker, args=(worker_args(args, index), theirs), name=f"worker-{index}"
        )
        process.start()
        theirs.close()
        hubs[mine] = process
    stopping: list[int] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda number, _: stopping.append(number))
    log.info("%d workers serving", args.workers)
    open_ = list(hubs)
    while open_ and not stopping:
        for conn in wait(open_, timeout=0.5):
            assert isinstance(conn, Connection)  # noqa: S101 (wait returns what it was given)
            try:
                message = conn.recv()
            except (EOFError, OSError):  # the worker exited
                open_.remove(conn)
                continue
            for other in open_:
                if other is not conn:
                    with contextlib.suppress(OSError):
                        other.send(message)
    for process in hubs.values():
        if process.is_alive():
            process.terminate()  # SIGTERM: the worker drains
    codes = []
    for process in hubs.values():
        process.join(args.drain_seconds + 5.0)
        if process.is_alive():
            process.kill()
            process.join()
        codes.append(process.exitcode or 0)
    return max((abs(code) for code in codes), default=0) if not stopping else 0
