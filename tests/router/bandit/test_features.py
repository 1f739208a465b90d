"""Prompt features: task type rules, hints, scale and determinism."""

from __future__ import annotations

import math

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
    start = FEATURE_NAMES.index("task:math")
    onehot = features.vector[start : start + len(TASKS)]
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


def _feature(prompt: str, name: str) -> float:
    return float(text_features(RequestInfo("m", prompt)).vector[FEATURE_NAMES.index(name)])


def test_at_most_32_uniquely_named_features() -> None:
    assert len(set(FEATURE_NAMES)) == len(FEATURE_NAMES) == DIMENSION <= 32


def test_markup_counts_bracketed_tags() -> None:
    how_to = "Context:\n[header] How to paint a wall [title] Buy paint. [step] Open the can."
    assert _feature(how_to, "markup") == 0.75
    assert _feature("[a] [b] [c] [d] [e] [f]", "markup") == 1.0  # capped
    assert _feature("A man climbs a ladder. He paints the wall.", "markup") == 0.0


def test_brevity_falls_with_the_prompt_length() -> None:
    assert _feature("hi", "brevity") == 1.0  # capped
    assert _feature("", "brevity") == 1.0
    assert _feature("x" * 4 * 63, "brevity") == 0.5  # 63 tokens: 32 / 64
    assert _feature("x" * 4 * 399, "brevity") == pytest.approx(32 / 400)


MATH = (
    "Solve this.\nQuestion:\nKim has $320 and 1,200.5 beads; she gives 2.5 away. How many are left?"
)


def test_math_features_count_the_numbers_of_a_math_problem() -> None:
    features = text_features(RequestInfo("m", MATH))
    assert features.task == "math"
    words = MATH.count(" ") + MATH.count("\n") + 1  # 17
    numbers = 3  # 320, 1,200.5 and 2.5: separators inside a number do not split it
    vector = dict(zip(FEATURE_NAMES, features.vector.tolist(), strict=True))
    assert vector["math:numbers"] == pytest.approx(math.log1p(numbers) / 3.0)
    assert vector["math:number_density"] == pytest.approx(numbers / words * 5.0)
    assert vector["math:words"] == pytest.approx(math.log1p(words) / 6.0)
    more = text_features(
        RequestInfo("m", MATH.replace("How many", "Then 4, 5 and 6 more come. How many"))
    ).vector
    index = FEATURE_NAMES.index("math:numbers")
    assert more[index] > features.vector[index]


def test_math_features_are_zero_for_other_tasks() -> None:
    mc_with_numbers = MC.replace("Which planet is largest?", "Which is 12 + 30?")
    features = text_features(RequestInfo("m", mc_with_numbers))
    assert features.task == "multiple-choice"
    for name in ("math:numbers", "math:number_density", "math:words"):
        assert features.vector[FEATURE_NAMES.index(name)] == 0.0


def test_empty_and_non_ascii_prompts() -> None:
    assert text_features(RequestInfo("m", "")).prompt_tokens == 0
    assert text_features(RequestInfo("m", "¿Qué hora es? 今日は")).task == "chat"
