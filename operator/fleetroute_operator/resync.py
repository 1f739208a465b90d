"""Periodic status refresh of every object from kopf's indexes, without kopf timers.

kopf puts a finalizer on every object that has a timer, so that an uninstalled operator leaves
GPUPools, ModelPools and RoutingPolicies that cannot be deleted. This loop does the timers' work
instead: every interval it runs the same handlers over the indexed objects and writes the status
they compute with a merge patch of the status subresource.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, cast

import kopf

from fleetroute.crds.common import API_VERSION
from fleetroute_operator.kube import ApiError, Kube

log = logging.getLogger(__name__)
Handler = Callable[..., Any]


@dataclass(frozen=True)
class Refresh:
    """A status handler and the kind and index of the objects it refreshes."""

    kind: str
    index: str
    handler: Handler


class Resync:
    """Runs status handlers over every indexed object, and a final fleet-wide step, each period."""

    def __init__(
        self,
        kube: Kube,
        memo: kopf.Memo,
        indices: Mapping[str, kopf.Index[Any, Any]],
        refreshes: tuple[Refresh, ...],
        after: Handler,
        before: Callable[[], None] | None = None,
    ) -> None:
        """`before` runs first in every pass (the fold of the routers' learning, whose merged
        view RoutingPolicy status then shows)."""
        self._kube, self._memo, self._indices = kube, memo, indices
        self._refreshes, self._after, self._before = refreshes, after, before

    def snapshot(self) -> dict[str, dict[Any, list[Any]]]:
        """A copy of every index, taken where kopf updates them (the event loop), so that a pass
        in a worker thread never iterates an index while kopf changes it."""
        return {
            name: {key: list(index[key]) for key in list(index)}
            for name, index in self._indices.items()
        }

    def once(self, indices: Mapping[str, Mapping[Any, list[Any]]] | None = None) -> int:
        """One pass over every object (of `indices`, or a snapshot taken now), then the
        fleet-wide step; returns how many statuses were written."""
        indices = self.snapshot() if indices is None else indices
        self.prepare()
        written = self.refresh_all(indices)
        self.finish(indices)
        return written

    def prepare(self) -> None:
        """The step before the status refresh, if any; its failure is logged."""
        if self._before is None:
            return
        try:
            self._before()
        except Exception:  # the next pass tries again
            log.exception("learning fold failed")

    def refresh_all(self, indices: Mapping[str, Mapping[Any, list[Any]]]) -> int:
        """Refresh the status of every object in `indices`; returns how many were written."""
        written = 0
        for refresh in self._refreshes:
            for bodies in indices[refresh.index].values():
                for body in bodies:
                    written += self._refresh(refresh, body, indices)
        return written

    def finish(self, indices: Mapping[str, Mapping[Any, list[Any]]]) -> None:
        """The fleet-wide step (the router config), from `indices`."""
        try:
            self._after(memo=self._memo, logger=log, **indices)
        except Exception:  # the next pass tries again
            log.exception("router config sync failed")

    def _refresh(
        self, refresh: Refresh, body: Mapping[str, Any], indices: Mapping[str, Any]
    ) -> int:
        meta = body.get("metadata") or {}
        patch = kopf.Patch()
        try:
            refresh.handler(
                body=kopf.Body(cast(Any, dict(body))),
                patch=patch,
                memo=self._memo,
                name=meta.get("name"),
                namespace=meta.get("namespace"),
                **indices,
            )
        except kopf.TemporaryError as error:
            log.warning("%s %s: %s", refresh.kind, meta.get("name"), error)
            return 0
        except kopf.PermanentError as error:  # its status says why (InvalidSpec): written below
            log.warning("%s %s: %s", refresh.kind, meta.get("name"), error)
        except Exception:  # one object's failure must not stop the others
            log.exception("refreshing %s %s failed", refresh.kind, meta.get("name"))
            return 0
        status = patch.get("status")
        if not status:
            return 0
        try:
            self._kube.patch_status(
                API_VERSION, refresh.kind, meta["name"], meta.get("namespace"), dict(status)
            )
        except ApiError as error:
            log.warning("status of %s %s not written: %s", refresh.kind, meta["name"], error)
            return 0
        return 1

    async def run(self, interval_s: float, indexed: threading.Event) -> None:
        """Refresh every `interval_s` once `indexed` says kopf's indexes are complete, until
        cancelled; a failed pass is logged and the next one runs all the same.

        kopf's own ready flag comes before its first listing, when the indexes are still empty:
        a pass then would write empty statuses and an empty router config. kopf runs no handler
        before every index is filled, so the handlers set `indexed` when they first run.
        """
        while not indexed.is_set():  # noqa: ASYNC110 (a threading.Event, set by kopf's handler threads)
            await asyncio.sleep(0.1)
        while True:
            try:
                await asyncio.to_thread(self.prepare)
                await asyncio.to_thread(self.refresh_all, self.snapshot())
                # A fresh view for the router config: the pass above may have taken a while.
                await asyncio.to_thread(self.finish, self.snapshot())
            except Exception:
                log.exception("status resync pass failed")
            await asyncio.sleep(interval_s)
