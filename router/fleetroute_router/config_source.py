"""The router's current Fleet, loaded from a config file and reloaded when the file changes."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fleetroute import routerconfig
from fleetroute.v1alpha1 import config_pb2
from fleetroute_router.fleet import Fleet

Rewrite = Callable[[config_pb2.RouterConfig], config_pb2.RouterConfig]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Parsed:
    """One read of the file: its digest (None: unreadable), the config, or why not."""

    digest: str | None
    config: config_pb2.RouterConfig | None
    error: str | None


class ConfigSource:
    """Holds the last good Fleet; a bad new file is reported and the last good one is kept."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._listeners: list[Callable[[Fleet], None]] = []
        self._rewrite: Rewrite | None = None
        self._digest: str | None = None
        self.fleet: Fleet | None = None
        self.last_error: str | None = None

    def reload(self) -> bool:
        """Load the file if its content changed; True when a new config took effect.

        Raises ConfigError only when no good config was ever loaded.
        """
        return self._apply(self._parse())

    async def reload_async(self) -> bool:
        """reload(), with the file's read, hash and parse in a worker thread: a large config
        does not stall the requests the event loop is serving."""
        return self._apply(await asyncio.to_thread(self._parse))

    def _parse(self) -> _Parsed:
        """Read, hash and parse the file (no shared state is changed: safe off the loop)."""
        try:
            data = self.path.read_bytes()
        except OSError as error:
            return _Parsed(None, None, f"cannot read {self.path}: {error.strerror}")
        digest = hashlib.sha256(data).hexdigest()
        if digest == self._digest:
            return _Parsed(digest, None, None)
        try:
            return _Parsed(digest, routerconfig.loads(data), None)
        except routerconfig.ConfigError as error:
            return _Parsed(digest, None, f"{self.path}: {error}")

    def _apply(self, parsed: _Parsed) -> bool:
        if parsed.digest is None:
            return self._reject(parsed.error or "unreadable")
        if parsed.digest == self._digest:
            return False
        self._digest = parsed.digest
        if parsed.config is None:
            return self._reject(parsed.error or "unparseable")
        config = parsed.config
        if self._rewrite is not None:
            config = self._rewrite(config)
        fleet = Fleet.from_config(config)
        try:
            for listener in self._listeners:  # a listener refuses what it cannot serve
                listener(fleet)
        except routerconfig.ConfigError as error:
            return self._reject(f"{self.path}: {error}")
        self.fleet, self.last_error = fleet, None
        log.info(
            "config loaded from %s: %d pools, %d policies (revision %s)",
            self.path,
            len(config.pools),
            len(config.policies),
            config.revision or "-",
        )
        return True

    def rewrite(self, rewrite: Rewrite) -> None:
        """Apply `rewrite` to this and every later config before it takes effect (e.g. to point
        endpoints at simulated servers on other ports); call before subscribing."""
        self._rewrite = rewrite
        if self.fleet is not None:
            self.fleet = Fleet.from_config(rewrite(self.fleet.config))

    def subscribe(self, listener: Callable[[Fleet], None]) -> None:
        """Call listener with every new Fleet that takes effect from now on."""
        self._listeners.append(listener)

    def _reject(self, message: str) -> bool:
        self.last_error = message
        if self.fleet is None:
            raise routerconfig.ConfigError(message)
        log.error("keeping the last good config: %s", message)
        return False

    async def watch(self, interval: float = 1.0) -> None:
        """Poll the file forever (a mounted ConfigMap changes by an atomic symlink swap)."""
        while True:
            await asyncio.sleep(interval)
            await self.reload_async()
