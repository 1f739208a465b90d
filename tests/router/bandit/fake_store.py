"""An in-process LearningStore: the API server's learning ConfigMaps as a dict."""

from __future__ import annotations

import json
import threading
from typing import Any

from fleetroute_router.learning.store import StoreError

Manifest = dict[str, Any]


class MemoryStore:
    """A LearningStore in memory, shared by several publishers (tests); `failing` makes every
    call raise, as an API server that is down."""

    def __init__(self, namespace: str = "default") -> None:
        self.namespace = namespace
        self.objects: dict[str, Manifest] = {}
        self.failing = False
        self.calls = 0
        self._lock = threading.Lock()
        self._version = 0

    def list(self) -> list[Manifest]:
        with self._lock:
            self.calls += 1
            if self.failing:
                raise StoreError("list learning ConfigMaps: connection refused")
            return [json.loads(json.dumps(o)) for o in self.objects.values()]

    def apply(self, manifest: Manifest) -> None:
        with self._lock:
            self.calls += 1
            if self.failing:
                raise StoreError("apply: connection refused")
            self._version += 1
            held = json.loads(json.dumps(manifest))
            held["metadata"]["resourceVersion"] = str(self._version)
            old = self.objects.get(held["metadata"]["name"])
            if old is not None and old["metadata"].get("deletionTimestamp"):
                held["metadata"]["deletionTimestamp"] = old["metadata"]["deletionTimestamp"]
            self.objects[held["metadata"]["name"]] = held
