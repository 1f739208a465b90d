"""Status conditions following Kubernetes API conventions, kept stable across reconciles."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

READY = "Ready"


def condition(
    type_: str, status: bool, reason: str, message: str, generation: int | None
) -> dict[str, Any]:
    """A condition dict, without lastTransitionTime (merge() sets it)."""
    result: dict[str, Any] = {
        "type": type_,
        "status": "True" if status else "False",
        "reason": reason,
        "message": message,
    }
    if generation is not None:
        result["observedGeneration"] = generation
    return result


def merge(
    existing: Iterable[Mapping[str, Any]],
    updates: Iterable[dict[str, Any]],
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """Conditions after applying updates: lastTransitionTime changes only when status changes."""
    stamp = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    merged = {c["type"]: dict(c) for c in existing}
    for update in updates:
        previous = merged.get(update["type"])
        changed = previous is None or previous.get("status") != update["status"]
        keep = previous.get("lastTransitionTime") if previous else None
        merged[update["type"]] = {
            **update,
            "lastTransitionTime": stamp if changed or not keep else keep,
        }
    return [merged[t] for t in sorted(merged)]


def find(conditions: Iterable[Mapping[str, Any]], type_: str) -> Mapping[str, Any] | None:
    """The condition of a type, if present."""
    return next((c for c in conditions if c.get("type") == type_), None)
