"""The router's current Fleet, loaded from a config file and reloaded when the file changes."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable
from pathlib import Path

from fleetroute import routerconfig
from fleetroute.v1alpha1 import config_pb2
from fleetroute_router.fleet import Fleet

Rewrite = Callable[[config_pb2.RouterConfig], config_pb2.RouterConfig]

log = logging.getLogger(__name__)


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
        try:
            data = self.path.read_bytes()
        except OSError as error:
            return self._reject(f"cannot read {self.path}: {error.strerror}")
        digest = hashlib.sha256(data).hexdigest()
        if digest == self._digest:
            return False
        self._digest = digest
        try:
            config = routerconfig.loads(data)
        except routerconfig.ConfigError as error:
            return self._reject(f"{self.path}: {error}")
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
            self.reload()
