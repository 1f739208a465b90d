"""A request as routing sees it, and the features record every extractor returns."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

CHARS_PER_TOKEN = 4.0


@dataclass(frozen=True)
class RequestInfo:
    """A request as routing sees it: the text, the client's hints and its model."""

    model: str
    prompt: str
    max_tokens: int = 0
    stream: bool = False
    priority: int = 0


@dataclass(frozen=True)
class Features:
    """Features of one request: a few named figures and the vector a contextual policy uses."""

    prompt_tokens: int
    vector: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))
    # The task type the extractor recognised ("" when it did not look).
    task: str = ""


def estimate_tokens(text: str) -> int:
    """Tokens in text, estimated from its length (about four characters a token in English)."""
    return max(1, round(len(text) / CHARS_PER_TOKEN)) if text else 0


def chat_prompt(messages: Sequence[tuple[str, str]]) -> str:
    """One prompt text from chat messages (role: content per line)."""
    return "\n".join(f"{role}: {content}" for role, content in messages)


def baseline_features(request: RequestInfo) -> Features:
    """The token estimate alone; the contextual policies use a richer extractor."""
    return Features(prompt_tokens=estimate_tokens(request.prompt))
