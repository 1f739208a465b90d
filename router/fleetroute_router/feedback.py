"""Decisions awaiting quality feedback: bounded, expiring with each policy's feedback window.

A decision made for a RoutingPolicy waits here from the moment it is made until its policy's
feedback window ends (or until its request fails: a failed request has no answer to grade).
Feedback names it by decision id or by request id. Each source (user, judge, eval) may score a
decision once: the same score again is a duplicate, learned once; a different one a conflict.
The store holds at most `capacity` decisions; the oldest go first when it is full.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final, Literal

import numpy as np

from fleetroute.v1alpha1 import learning_pb2
from fleetroute_router import errors
from fleetroute_router.decisions import Decision

SOURCES: Final = ("user", "judge", "eval")
LABELS: Final[Mapping[str, float]] = {"good": 1.0, "bad": 0.0}
MAX_METADATA: Final = 16
MAX_METADATA_CHARS: Final = 256
DEFAULT_WINDOW_S: Final = 600.0
# Scores this close count as the same (a client resending a float it printed).
SAME_SCORE: Final = 1e-9
Result = Literal["accepted", "duplicate"]


@dataclass(frozen=True)
class Grade:
    """One feedback message, checked: which decision, the quality, and who says so."""

    decision_id: str
    request_id: str
    quality: float
    source: str
    metadata: Mapping[str, str] = field(default_factory=dict)


def grade(
    *,
    decision_id: str = "",
    request_id: str = "",
    score: object = None,
    label: object = None,
    source: object = None,
    metadata: object = None,
) -> Grade:
    """A Grade from loosely typed fields (JSON or protobuf); InvalidFeedback naming the fault."""
    if not isinstance(decision_id, str) or not isinstance(request_id, str):
        raise errors.InvalidFeedback("decision_id and request_id must be strings")
    if not decision_id and not request_id:
        raise errors.InvalidFeedback(
            "decision_id (x-fleetroute-decision-id) or request_id is required"
        )
    if (score is None) == (label is None or label == ""):
        raise errors.InvalidFeedback("give exactly one of score (0..1) and label (good|bad)")
    if score is not None:
        if isinstance(score, bool) or not isinstance(score, int | float):
            raise errors.InvalidFeedback(f"score must be a number in [0, 1], got {score!r}")
        quality = float(score)
        if not math.isfinite(quality) or not 0.0 <= quality <= 1.0:
            raise errors.InvalidFeedback(f"score must be in [0, 1], got {score!r}")
    else:
        if not isinstance(label, str) or label.lower() not in LABELS:
            raise errors.InvalidFeedback(f"label must be one of {', '.join(LABELS)}, got {label!r}")
        quality = LABELS[label.lower()]
    source = source or "user"
    if source not in SOURCES:
        raise errors.InvalidFeedback(f"source must be one of {', '.join(SOURCES)}, got {source!r}")
    metadata = metadata or {}
    if not isinstance(metadata, Mapping) or len(metadata) > MAX_METADATA:
        raise errors.InvalidFeedback(f"metadata must be an object of at most {MAX_METADATA} keys")
    for key, value in metadata.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise errors.InvalidFeedback("metadata keys and values must be strings")
        if len(key) > MAX_METADATA_CHARS or len(value) > MAX_METADATA_CHARS:
            raise errors.InvalidFeedback(
                f"metadata keys and values must be at most {MAX_METADATA_CHARS} characters"
            )
    return Grade(decision_id, request_id, quality, str(source), dict(metadata))


@dataclass
class Awaiting:
    """A decision that may still be graded, until `deadline` (the store's clock)."""

    decision: Decision
    deadline: float
    # Quality learned so far, by source.
    scores: dict[str, float] = field(default_factory=dict)


class FeedbackStore:
    """Decisions awaiting feedback, by decision id and by request id, bounded and expiring."""

    def __init__(
        self, capacity: int = 100_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.capacity, self._clock = capacity, clock
        self._items: OrderedDict[str, Awaiting] = OrderedDict()
        self._by_request: dict[str, str] = {}

    def __len__(self) -> int:
        return len(self._items)

    def add(self, decision: Decision, window_s: float) -> tuple[int, int]:
        """Hold a decision for `window_s`; returns how many others (expired, pushed out) went."""
        self._items[decision.id] = Awaiting(decision, self._clock() + window_s)
        self._items.move_to_end(decision.id)
        self._by_request[decision.request_id] = decision.id
        expired = self.expire()
        pushed = 0
        while len(self._items) > self.capacity:
            self._drop(next(iter(self._items)))
            pushed += 1
        return expired, pushed

    def moved(self, decision: Decision) -> None:
        """The decision moved (a retry on another pool): feedback goes to where it is served."""
        if (held := self._items.get(decision.id)) is not None:
            held.decision = decision

    def discard(self, decision_id: str) -> None:
        """Stop waiting (the request failed, so there is no answer to grade)."""
        if decision_id in self._items:
            self._drop(decision_id)

    def find(self, decision_id: str = "", request_id: str = "") -> Awaiting:
        """The decision a grade names; UnknownDecision when unknown or past its window."""
        key = decision_id or self._by_request.get(request_id, "")
        held = self._items.get(key)
        if held is None:
            named = f"decision {decision_id!r}" if decision_id else f"request {request_id!r}"
            raise errors.UnknownDecision(
                f"no {named} awaits feedback (unknown, failed, or past its feedback window)"
            )
        if self._clock() > held.deadline:
            self._drop(key)
            raise errors.FeedbackExpired(
                f"the feedback window of decision {key!r} has ended; feedback is not learned"
            )
        return held

    def record(self, held: Awaiting, grade: Grade) -> Result:
        """Note a source's score: accepted the first time, duplicate for the same score again;
        ConflictingFeedback for a different one."""
        previous = held.scores.get(grade.source)
        if previous is None:
            held.scores[grade.source] = grade.quality
            return "accepted"
        if abs(previous - grade.quality) <= SAME_SCORE:
            return "duplicate"
        raise errors.ConflictingFeedback(
            f"decision {held.decision.id!r} already has {grade.source} score {previous:g}; "
            f"{grade.quality:g} conflicts with it"
        )

    def expire(self) -> int:
        """Drop decisions past their window from the oldest on; returns how many went."""
        now, dropped = self._clock(), 0
        while self._items:
            oldest = next(iter(self._items.values()))
            if oldest.deadline >= now:
                break
            self._drop(oldest.decision.id)
            dropped += 1
        return dropped

    def items(self) -> Iterable[Awaiting]:
        """Every decision still awaiting feedback, oldest first."""
        return list(self._items.values())

    def restore(self, held: Awaiting) -> None:
        """Hold a decision saved by an earlier run (its deadline already on this clock)."""
        if held.deadline >= self._clock() and len(self._items) < self.capacity:
            self._items[held.decision.id] = held
            self._by_request[held.decision.request_id] = held.decision.id

    def state(self, items: Iterable[Awaiting]) -> list[learning_pb2.AwaitingFeedback]:
        """Decisions awaiting feedback as messages with wall-clock times, for a snapshot."""
        offset = time.time() - self._clock()
        found = []
        for held in items:
            d = held.decision
            message = learning_pb2.AwaitingFeedback(
                decision_id=d.id,
                request_id=d.request_id,
                policy=d.policy,
                pool=d.pool,
                features=d.features.tolist(),
                scores=held.scores,
            )
            message.made_at.FromNanoseconds(int((d.made_at + offset) * 1e9))
            message.deadline.FromNanoseconds(int((held.deadline + offset) * 1e9))
            found.append(message)
        return found

    def restore_state(
        self, messages: Iterable[learning_pb2.AwaitingFeedback], models: Mapping[str, str]
    ) -> int:
        """Hold the decisions of a snapshot whose pool still exists (`models`: model by pool)
        and whose window has not ended; returns how many."""
        offset = time.time() - self._clock()
        restored = 0
        for message in messages:
            if message.pool not in models:
                continue
            decision = Decision(
                id=message.decision_id,
                request_id=message.request_id,
                policy=message.policy,
                model=models[message.pool],
                pool=message.pool,
                endpoint="",
                algorithm="",
                scores={},
                features=np.array(message.features, dtype=np.float64),
                made_at=message.made_at.ToNanoseconds() / 1e9 - offset,
            )
            deadline = message.deadline.ToNanoseconds() / 1e9 - offset
            before = len(self._items)
            self.restore(Awaiting(decision, deadline, dict(message.scores)))
            restored += len(self._items) - before
        return restored

    def _drop(self, decision_id: str) -> None:
        held = self._items.pop(decision_id)
        if self._by_request.get(held.decision.request_id) == decision_id:
            del self._by_request[held.decision.request_id]
