"""Values read from other processes' Prometheus expositions: GPU power from the DCGM exporter of
an endpoint's node (Endpoint.power), grid carbon intensity of a pool (carbon_intensity_from).

One polling task per URL (a node's exporter serves every GPU of the node); a value older than
its staleness limit reads as missing, so callers fall back to the server's metrics or the
pool's configured figures.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Final

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from fleetroute.v1alpha1 import config_pb2
from fleetroute_router.fleet import Fleet
from fleetroute_router.polling import Pollers

log = logging.getLogger(__name__)
DCGM_POWER: Final = "DCGM_FI_DEV_POWER_USAGE"
POWER_INTERVAL_S: Final = 1.0
POWER_STALE_S: Final = 5.0
CARBON_INTERVAL_S: Final = 60.0
CARBON_STALE_S: Final = 900.0

Sample = tuple[str, Mapping[str, str], float]


def read(samples: Iterable[Sample], metric: str, labels: Mapping[str, str]) -> float | None:
    """Sum of the samples of `metric` carrying all of `labels`; None when none matches."""
    values = [
        value
        for name, have, value in samples
        if name == metric and all(have.get(k) == v for k, v in labels.items())
    ]
    return sum(values) if values else None


def parse(text: str, metrics: Iterable[str] | None = None) -> list[Sample]:
    """The samples of a Prometheus text exposition; with `metrics`, only theirs (the other lines
    are skipped before parsing: a node exporter's page is large and read every second)."""
    if metrics is not None:
        names = tuple(metrics)
        text = "\n".join(
            line for line in text.splitlines() if line.startswith(names) and _named(line, names)
        )
    return [
        (sample.name, sample.labels, float(sample.value))
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    ]


def _named(line: str, names: tuple[str, ...]) -> bool:
    """The sample line is of one of `names` exactly (not merely a name they prefix)."""
    return any(line.startswith(n) and line[len(n) : len(n) + 1] in ("{", " ") for n in names)


@dataclass(frozen=True)
class _Reading:
    samples: list[Sample]
    at: float


class MetricSources:
    """Polls the metric sources of a fleet's config and answers the latest fresh values."""

    def __init__(
        self,
        *,
        power_interval_s: float = POWER_INTERVAL_S,
        carbon_interval_s: float = CARBON_INTERVAL_S,
        timeout_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.power_interval_s, self.carbon_interval_s = power_interval_s, carbon_interval_s
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._clock = clock
        self._power: dict[str, config_pb2.MetricSource] = {}
        self._carbon: dict[str, config_pb2.MetricSource] = {}
        self._readings: dict[str, _Reading] = {}
        # The metric names read from each URL: only their lines are parsed.
        self._wanted: dict[str, frozenset[str]] = {}
        self._pollers = Pollers(self.fetch, "reading metric source")
        self._session: aiohttp.ClientSession | None = None

    def set_fleet(self, fleet: Fleet) -> None:
        """Poll exactly the sources of this config from now on (needs a running event loop)."""
        self._power = {
            e.address: e.power for p in fleet.config.pools for e in p.endpoints if e.power.url
        }
        self._carbon = {
            p.name: p.gpu.carbon_intensity_from
            for p in fleet.config.pools
            if p.gpu.carbon_intensity_from.url
        }
        wanted: dict[str, set[str]] = {}
        for source, default in [(s, "") for s in self._carbon.values()] + [
            (s, DCGM_POWER) for s in self._power.values()
        ]:
            wanted.setdefault(source.url, set()).add(source.metric or default)
        self._wanted = {url: frozenset(names) for url, names in wanted.items()}
        intervals = {s.url: self.carbon_interval_s for s in self._carbon.values()}
        intervals |= {s.url: self.power_interval_s for s in self._power.values()}
        if intervals and self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        for url in self._pollers.keep(intervals):
            self._readings.pop(url, None)

    def _value(self, source: config_pb2.MetricSource, default: str, stale_s: float) -> float | None:
        reading = self._readings.get(source.url)
        if reading is None or self._clock() - reading.at > stale_s:
            return None
        return read(reading.samples, source.metric or default, source.labels)

    def watts(self, address: str) -> float | None:
        """Watts the endpoint's GPUs draw per its node's DCGM exporter (None: not known)."""
        source = self._power.get(address)
        return None if source is None else self._value(source, DCGM_POWER, POWER_STALE_S)

    def carbon_intensity(self, pool: config_pb2.Pool) -> tuple[float, str]:
        """The pool's grid gCO2e/kWh and where it came from: metric, config, or none (0)."""
        source = self._carbon.get(pool.name)
        if source is not None:
            value = self._value(source, "", CARBON_STALE_S)
            if value is not None:
                return value, "metric"
        return configured_intensity(pool)

    async def fetch(self, url: str) -> bool:
        """Read one URL now; False when it could not be read or had none of its metrics."""
        assert self._session is not None  # noqa: S101 (set_fleet creates it)
        try:
            async with self._session.get(url) as response:
                if response.status != 200:
                    return False
                text = await response.text()
            samples = parse(text, self._wanted.get(url))
        except (aiohttp.ClientError, TimeoutError, ValueError) as error:
            log.debug("metric source %s: %s", url, error)
            return False
        if not samples:  # not an exposition of what is read here: keep the last good one
            log.debug("metric source %s: none of %s", url, sorted(self._wanted.get(url, ())))
            return False
        self._readings[url] = _Reading(samples, self._clock())
        return True

    async def close(self) -> None:
        await self._pollers.close()
        if self._session is not None:
            await self._session.close()
            self._session = None


def configured_intensity(pool: config_pb2.Pool) -> tuple[float, str]:
    """The pool's configured gCO2e/kWh (GPUPool.spec.carbonIntensity), or (0, none)."""
    if pool.gpu.carbon_intensity > 0:
        return pool.gpu.carbon_intensity, "config"
    return 0.0, "none"
