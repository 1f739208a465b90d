"""prefix-cache-scorer: prefers the endpoint that most likely caches the prompt's prefix."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fleetroute_router import prefix
from fleetroute_router.endpoints import params
from fleetroute_router.endpoints.context import PluginContext
from fleetroute_router.endpoints.interfaces import Candidate, PickRequest

TYPE = "prefix-cache-scorer"


@dataclass(frozen=True)
class Parameters:
    block_chars: int = params.positive(prefix.DEFAULT_BLOCK_CHARS)
    capacity_blocks: int = params.positive(200_000)


class PrefixCacheScorer:
    """Remembers, per prefix block hash, the endpoints it was sent to (LRU of blocks)."""

    type = TYPE

    def __init__(self, name: str = TYPE, parameters: Parameters | None = None) -> None:
        self.name, self.parameters = name, parameters or Parameters()
        self._index: OrderedDict[int, set[str]] = OrderedDict()

    def _blocks(self, request: PickRequest) -> tuple[int, ...]:
        if request.block_chars == self.parameters.block_chars:
            return request.blocks
        return tuple(prefix.block_hashes(request.prompt, self.parameters.block_chars))

    def matched_blocks(self, request: PickRequest, address: str) -> int:
        """Leading blocks of the request's prompt the endpoint was last given."""
        matched = 0
        index = self._index
        for block in self._blocks(request):
            holders = index.get(block)
            if holders is None or address not in holders:
                break
            matched += 1
        return matched

    def cached_tokens(self, request: PickRequest, address: str) -> int:
        chars = self.matched_blocks(request, address) * self.parameters.block_chars
        return min(request.prompt_tokens, round(chars / 4))

    def score(self, request: PickRequest, candidates: Sequence[Candidate]) -> Mapping[str, float]:
        total = len(self._blocks(request))
        if total == 0:
            return {c.address: 0.0 for c in candidates}
        return {c.address: self.matched_blocks(request, c.address) / total for c in candidates}

    def picked(self, request: PickRequest, chosen: Candidate) -> None:
        for block in self._blocks(request):
            holders = self._index.get(block)
            if holders is None:
                self._index[block] = {chosen.address}
            else:
                holders.add(chosen.address)
                self._index.move_to_end(block)
        while len(self._index) > self.parameters.capacity_blocks:
            self._index.popitem(last=False)

    def forget(self, addresses: Collection[str]) -> None:
        """Drop endpoints that left the fleet from every block's holders."""
        gone = set(addresses)
        for block in list(self._index):
            holders = self._index[block]
            holders -= gone
            if not holders:
                del self._index[block]


def factory(name: str, raw: Mapping[str, Any], context: PluginContext) -> PrefixCacheScorer:
    return PrefixCacheScorer(name, params.decode(Parameters, raw))
