"""Label children of Prometheus metrics made once and kept, so a request does not pay labels().

prometheus_client's `labels(*values)` validates the values, converts them to strings and takes
the metric's lock on every call; a routed request used to make about twenty such calls. The
cache hands back the same child for the same metric and values. A series removed from its
metric (`metric.remove(...)`, `metric.clear()`) must be forgotten here too, or later updates
would go to a child nobody exports: `forget(value)` drops every cached child carrying a label
value (a churned endpoint's address, a deleted pool's name), `forget_metric(metric)` all of a
metric's.
"""

from __future__ import annotations

from typing import Any


class LabelChildren:
    """Cached label children by (metric, label values)."""

    def __init__(self) -> None:
        self._children: dict[tuple[int, tuple[object, ...]], Any] = {}
        self._metrics: dict[int, Any] = {}  # id -> metric, keeping the ids valid

    def child(self, metric: Any, *values: object) -> Any:
        """metric.labels(*values), made on first use."""
        key = (id(metric), values)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*values)
            self._metrics[key[0]] = metric
        return found

    def forget(self, value: str) -> int:
        """Drop the cached children that carry `value` as a label value; how many went."""
        gone = [key for key in self._children if value in key[1]]
        for key in gone:
            del self._children[key]
        return len(gone)

    def forget_metric(self, metric: Any) -> None:
        """Drop every cached child of one metric (after metric.clear())."""
        ident = id(metric)
        for key in [key for key in self._children if key[0] == ident]:
            del self._children[key]

    def __len__(self) -> int:
        return len(self._children)
