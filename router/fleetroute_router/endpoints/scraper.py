"""Scrape every endpoint's /metrics on a short period; stale figures read as missing."""

from __future__ import annotations

import logging
import ssl
import time
from collections.abc import Callable, Iterable

import aiohttp

from fleetroute_router.endpoints import metrics
from fleetroute_router.endpoints.interfaces import EndpointMetrics
from fleetroute_router.polling import Pollers

log = logging.getLogger(__name__)
DEFAULT_INTERVAL_S = 0.075
DEFAULT_STALE_AFTER_S = 0.5
# Figures are stale once this many scrapes in a row were missed (and never sooner than
# DEFAULT_STALE_AFTER_S), whatever the interval.
STALE_SCRAPES = 4


class MetricsScraper:
    """One polling task per endpoint; `get` returns the last figures unless they are stale."""

    def __init__(
        self,
        *,
        interval_s: float = DEFAULT_INTERVAL_S,
        timeout_s: float = 0.25,
        stale_after_s: float | None = None,
        on_unreachable: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        ssl_context: ssl.SSLContext | bool = True,
    ) -> None:
        """`ssl_context`: verifies https endpoints (default: the system's CAs);
        `stale_after_s`: default, STALE_SCRAPES intervals but at least DEFAULT_STALE_AFTER_S."""
        if not interval_s > 0:
            raise ValueError(f"the scrape interval must be above 0 s, got {interval_s}")
        self.interval_s = interval_s
        self.stale_after_s = (
            max(DEFAULT_STALE_AFTER_S, STALE_SCRAPES * interval_s)
            if stale_after_s is None
            else stale_after_s
        )
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._on_unreachable = on_unreachable
        self._clock = clock
        self._latest: dict[str, EndpointMetrics] = {}
        self._pollers = Pollers(self.scrape, "scraping")
        self._session: aiohttp.ClientSession | None = None
        self._secure: frozenset[str] = frozenset()
        self.ssl_context = ssl_context

    @property
    def scraped(self) -> frozenset[str]:
        """The endpoints scraped now."""
        return self._pollers.keys

    def get(self, address: str) -> EndpointMetrics | None:
        found = self._latest.get(address)
        if found is None or self._clock() - found.scraped_at > self.stale_after_s:
            return None
        return found

    def set_endpoints(self, addresses: Iterable[str], secure: Iterable[str] = ()) -> None:
        """Scrape exactly these endpoints (the `secure` ones over https) from now on (needs a
        running event loop)."""
        self._secure = frozenset(secure)
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=self._timeout,
                connector=aiohttp.TCPConnector(limit=0, ssl=self.ssl_context),
            )
        for address in self._pollers.keep(dict.fromkeys(addresses, self.interval_s)):
            self._latest.pop(address, None)

    async def scrape(self, address: str) -> EndpointMetrics | None:
        """Scrape one endpoint now; None when unreachable or without known metrics."""
        assert self._session is not None  # noqa: S101 (set_endpoints creates it)
        try:
            scheme = "https" if address in self._secure else "http"
            async with self._session.get(f"{scheme}://{address}/metrics") as response:
                if response.status != 200:
                    return None
                text = await response.text()
        except aiohttp.ClientConnectionError:
            if self._on_unreachable is not None:
                self._on_unreachable(address)
            return None
        except (aiohttp.ClientError, TimeoutError):
            return None
        found = metrics.parse(text, self._clock())
        if found is not None:
            self._latest[address] = found
        return found

    async def close(self) -> None:
        await self._pollers.close()
        if self._session is not None:
            await self._session.close()
            self._session = None
