"""Routing decisions: what was chosen for a request, and what it was chosen from."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class Decision:
    """Where one request was sent, and what is needed to learn from its outcome."""

    id: str
    request_id: str
    policy: str
    model: str
    pool: str
    endpoint: str
    algorithm: str
    scores: Mapping[str, float]
    prefill_pool: str = ""
    prefill_endpoint: str = ""
    features: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))
    # The request's share of its endpoint's concurrent requests at decision time.
    share: float = 1.0
    made_at: float = 0.0
    # The chosen endpoint's load signal at pick time (endpoints.signals.load).
    endpoint_load: float = 0.0
    # The policy chose an arm other than the one it currently believes best.
    explored: bool = False
    # The objective weights the choice was made with (None: a concrete model, no policy).
    weights: npt.NDArray[np.float64] | None = None
    # The prompt's estimated tokens (features.estimate_tokens).
    prompt_tokens: int = 0
