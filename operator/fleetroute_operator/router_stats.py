"""Ask the router what it has learned per policy, for RoutingPolicy status."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from fleetroute.v1alpha1 import router_pb2, router_pb2_grpc

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ArmSummary:
    """One arm as RoutingPolicy status shows it."""

    pool: str
    share: float
    mean_reward: float | None
    # Over every router replica (the merged learning view); None from one router's GetStats.
    decisions: int | None = None


@dataclass(frozen=True)
class PolicyLearned:
    """What the router learned of one policy: its arms, most chosen first, and how many
    quality scores (feedback or prior) it has."""

    arms: tuple[ArmSummary, ...]
    quality_observations: float = 0.0


Stats = Mapping[str, PolicyLearned]
Fetch = Callable[[], Stats]


def summarise(reply: router_pb2.RouterStats) -> dict[str, PolicyLearned]:
    """What was learned per policy name."""
    return {
        policy.policy: PolicyLearned(
            tuple(
                sorted(
                    (
                        ArmSummary(a.pool, a.share, a.mean_reward if a.rewards else None)
                        for a in policy.arms
                    ),
                    key=lambda a: (-a.share, a.pool),
                )
            ),
            policy.quality_observations,
        )
        for policy in reply.policies
    }


@dataclass(frozen=True)
class RouterAccess:
    """How the operator reaches the router's control rpcs: a bearer token file (the router's
    --control-token-file), and TLS: the CA the router's certificate is signed by, and a client
    certificate and key for mutual TLS. Files are re-read when they change."""

    token_file: Path | None = None
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None

    def files(self) -> tuple[Path, ...]:
        return tuple(p for p in (self.ca_file, self.cert_file, self.key_file) if p is not None)

    def credentials(self) -> grpc.ChannelCredentials | None:
        """TLS channel credentials (None: plaintext)."""
        if self.ca_file is None and self.cert_file is None:
            return None
        return grpc.ssl_channel_credentials(
            _read(self.ca_file), _read(self.key_file), _read(self.cert_file)
        )

    def metadata(self) -> tuple[tuple[str, str], ...]:
        if self.token_file is None:
            return ()
        return (("authorization", f"Bearer {self.token_file.read_text().strip()}"),)


def _read(path: Path | None) -> bytes | None:
    return path.read_bytes() if path is not None else None


def _stamp(paths: tuple[Path, ...]) -> tuple[tuple[int, int], ...]:
    stats = [os.stat(p) for p in paths]
    return tuple((s.st_mtime_ns, s.st_size) for s in stats)


def grpc_fetcher(address: str, timeout_s: float = 2.0, access: RouterAccess | None = None) -> Fetch:
    """A fetch function calling GetStats on the router at address (over TLS and with the
    token when `access` says so; a rotated certificate makes a new channel)."""
    access = access or RouterAccess()
    held: dict[str, Any] = {}

    def stub() -> router_pb2_grpc.RouterStub:
        stamp = _stamp(access.files())
        if held.get("stamp") != stamp:
            if "channel" in held:
                held["channel"].close()
            credentials = access.credentials()
            channel = (
                grpc.secure_channel(address, credentials)
                if credentials is not None
                else grpc.insecure_channel(address)
            )
            held.update(stamp=stamp, channel=channel, stub=router_pb2_grpc.RouterStub(channel))
        found: router_pb2_grpc.RouterStub = held["stub"]
        return found

    def fetch() -> Stats:
        try:
            current, metadata = stub(), access.metadata()
        except OSError as error:
            log.warning("router access files unreadable: %s", error)
            return {}
        reply = current.GetStats(router_pb2.StatsRequest(), timeout=timeout_s, metadata=metadata)
        return summarise(reply)

    return fetch


class CachedStats:
    """Router stats fetched at most once per period; empty (and logged) when the router is away."""

    def __init__(
        self, fetch: Fetch, period_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._fetch, self._period, self._clock = fetch, period_s, clock
        self._lock = threading.Lock()
        self._value: Stats = {}
        self._at: float | None = None

    def get(self) -> Stats:
        with self._lock:
            if self._at is None or self._clock() - self._at >= self._period:
                self._at = self._clock()
                try:
                    self._value = self._fetch()
                except grpc.RpcError as error:
                    log.warning("router stats unavailable: %s", error.code())
                    self._value = {}
            return self._value
