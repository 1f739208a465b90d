"""Prompt features: task type rules, hints, scale and determinism."""

from __future__ import annotations

import numpy as np
import pytest

from fleetroute_router.features import DIMENSION, FEATURE_NAMES, TASKS, RequestInfo, text_features

MC = (
    "Question:\nWhich planet is largest?\nOptions:\nA. Mars\nB. Jupiter\nC. Venus\nD. Earth\n"
    "Answer:"
)


@pytest.mark.parametrize(
    ("prompt", "task"),
    [
        ("Natalia sold clips to 48 friends. How many clips did she sell in total?", "math"),
        ("Solve for x: 3x + 5 = 20", "math"),
        ("Fix this:\n```python\ndef f(x):\n    return x +\n```", "code"),
        (MC, "multiple-choice"),
        (
            "Context:\nA man climbs a ladder. He\nOptions:\nA. falls.\nB. paints the wall.",
            "sentence-completion",
        ),
        ("Context:\nSam gave Tom a gift because _ was kind.\nOptions:\nA. Sam\nB. Tom", "fill-in"),
        (
            "Summarize the article in two sentences.\nArticle:\nThe city council met on...",
            "summary",
        ),
        ("Hi! How are you today?", "chat"),
    ],
)
def test_task_type_rules(prompt: str, task: str) -> None:
    features = text_features(RequestInfo("m", prompt))
    assert features.task == task
    onehot = features.vector[FEATURE_NAMES.index("task:math") :]
    assert list(onehot) == [1.0 if t == task else 0.0 for t in TASKS]


def test_options_at_the_end_of_a_long_prompt_are_found() -> None:
    long_mc = "Passage: " + "words and more words. " * 200 + MC
    assert text_features(RequestInfo("m", long_mc)).task == "multiple-choice"


def test_vector_shape_scale_and_determinism() -> None:
    request = RequestInfo("m", "Explain why the sky is blue, step by step. " * 50, max_tokens=300)
    a, b = text_features(request), text_features(request)
    assert a.vector.shape == (DIMENSION,) == (len(FEATURE_NAMES),)
    np.testing.assert_array_equal(a.vector, b.vector)
    assert a.vector[0] == 1.0  # bias
    assert np.all(a.vector >= -1.0)
    assert np.all(a.vector <= 1.5)
    assert a.prompt_tokens == round(len(request.prompt) / 4)


def test_request_hints_are_features() -> None:
    plain = text_features(RequestInfo("m", "hello")).vector
    hinted = text_features(
        RequestInfo("m", "hello", max_tokens=512, stream=True, priority=5)
    ).vector
    changed = {FEATURE_NAMES[i] for i in np.flatnonzero(plain != hinted)}
    assert changed == {"max_tokens", "max_tokens_unset", "stream", "priority"}
    assert hinted[FEATURE_NAMES.index("priority")] == 0.5


def test_complexity_grows_with_length_and_math() -> None:
    index = FEATURE_NAMES.index("complexity")
    short = text_features(RequestInfo("m", "hi")).vector[index]
    hard = text_features(
        RequestInfo("m", "Prove that 3^n + 7 = 2k for some k, step by step. " * 40)
    ).vector[index]
    assert 0.0 <= short < hard <= 1.0


def test_empty_and_non_ascii_prompts() -> None:
    assert text_features(RequestInfo("m", "")).prompt_tokens == 0
    assert text_features(RequestInfo("m", "¿Qué hora es? 今日は")).task == "chat"
