"""What the router knows about a request before placing it: hints, text features, task type."""

from fleetroute_router.features.request import (
    CHARS_PER_TOKEN,
    Features,
    RequestInfo,
    baseline_features,
    chat_prompt,
    estimate_tokens,
)
from fleetroute_router.features.text import DIMENSION, FEATURE_NAMES, TASKS, text_features

__all__ = [
    "CHARS_PER_TOKEN",
    "DIMENSION",
    "FEATURE_NAMES",
    "TASKS",
    "Features",
    "RequestInfo",
    "baseline_features",
    "chat_prompt",
    "estimate_tokens",
    "text_features",
]
