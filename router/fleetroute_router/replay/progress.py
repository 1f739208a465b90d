"""A tiny progress bar on stderr (only when stderr is a terminal, or when forced)."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """`advance()` per unit of work; redraws at most ten times a second."""

    def __init__(
        self, total: int, label: str, *, stream: TextIO | None = None, enabled: bool | None = None
    ) -> None:
        self.total, self.label, self.done = max(total, 1), label, 0
        self._stream = stream or sys.stderr
        self._enabled = self._stream.isatty() if enabled is None else enabled
        self._drawn = 0.0
        self._start = time.monotonic()

    def advance(self, units: int = 1) -> None:
        self.done = min(self.done + units, self.total)
        now = time.monotonic()
        if self._enabled and (now - self._drawn > 0.1 or self.done == self.total):
            self._drawn = now
            filled = int(30 * self.done / self.total)
            self._stream.write(
                f"\r{self.label} [{'#' * filled}{'.' * (30 - filled)}] "
                f"{self.done}/{self.total} {now - self._start:.1f}s"
            )
            self._stream.flush()

    def close(self) -> None:
        if self._enabled:
            self._stream.write("\n")
            self._stream.flush()
