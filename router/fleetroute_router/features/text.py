"""Cheap, deterministic prompt features: size, text statistics, task type and complexity.

Every figure is scaled to about [0, 1] so that one ridge prior suits them all. Statistics look at
the first HEAD_CHARS characters only (answer options also at the last TAIL_CHARS; the token
estimate uses the whole prompt), so the cost is
bounded whatever the prompt's length: a few microseconds, all in C-level string methods.

Per-query signal beyond the task type (chosen by cross-validated replay, bench/README.md):
- markup: bracketed tags such as "[header]" or "[step]" (scraped how-to text reads differently
  from plain prose, and models differ more on it);
- brevity: 32 / (tokens + 1), capped at 1. A request's energy per token falls with its length
  roughly as a fixed cost spread over its tokens, which a log-length slope alone fits poorly;
- math:*: for math prompts only (0 otherwise), how many numbers the problem states, their
  density among its words and its length in words: more quantities, more steps to get right.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from fleetroute_router.features.request import CHARS_PER_TOKEN, Features, RequestInfo

HEAD_CHARS = 1024
TAIL_CHARS = 768
TOKEN_SCALE = math.log1p(4096.0)

# Task types, in vector order; "chat" is what is left when no rule matches.
TASKS = (
    "math",
    "code",
    "multiple-choice",
    "sentence-completion",
    "fill-in",
    "summary",
    "chat",
)
FEATURE_NAMES = (
    "bias",
    "prompt_tokens",
    "max_tokens",
    "max_tokens_unset",
    "stream",
    "priority",
    "digits",
    "uppercase",
    "symbols",
    "lines",
    "word_length",
    "questions",
    "options",
    "complexity",
    *(f"task:{t}" for t in TASKS),
    "markup",
    "brevity",
    "math:numbers",
    "math:number_density",
    "math:words",
)
DIMENSION = len(FEATURE_NAMES)
_TASK_OFFSET = FEATURE_NAMES.index(f"task:{TASKS[0]}")
_MATH_OFFSET = FEATURE_NAMES.index("math:numbers")
_NO_TASK = (0.0,) * len(TASKS)
BREVITY_TOKENS = 32.0
# Digits become "0", the separators inside numbers "x", everything else a space: a number starts
# wherever " 0" occurs (one translate and one count, no regular expression).
_NUMBER_TABLE = bytes(
    ord("0") if chr(c).isdigit() and c < 128 else ord("x") if c in b".," else ord(" ")
    for c in range(256)
)

_DIGITS = b"0123456789"
_UPPER = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_SYMBOLS = b"+-*/=^<>%$\\|&{}[]()"
_SPACE = b" \t\n\r"

_OPTION_MARKS = tuple((b"\n" + bytes([c]) + b". ", b"\n" + bytes([c]) + b") ") for c in b"ABCDEFGH")
_BLANKS = (b" _ ", b" _.", b" _,", b" _?", b"___")
_MATH = (
    b"solve",
    b"calculat",
    b"compute",
    b"how many",
    b"how much",
    b"equation",
    b"\\frac",
    b"percent",
    b"integral",
    b"derivative",
)
_CODE = (b"```", b"def ", b"#include", b"();", b"{\n", b"};", b"=>", b"import ", b"print(")
_SUMMARY = (b"summar", b"tl;dr", b"key points", b"key details", b"article:")
_REASONING = (b"step by step", b"explain", b"why", b"prove", b"reason")


def _fraction(text: bytes, delete: bytes) -> float:
    return (len(text) - len(text.translate(None, delete))) / max(len(text), 1)


def _options(head: bytes) -> int:
    """How many consecutive answer options (A., B., ... at a line start) the text lists."""
    count = 0
    for dot, paren in _OPTION_MARKS:
        if dot not in head and paren not in head:
            break
        count += 1
    return count


def _any(text: bytes, needles: tuple[bytes, ...]) -> bool:
    # A plain loop: any() over a generator costs a frame resumption per needle.
    for needle in needles:  # noqa: SIM110
        if needle in text:
            return True
    return False


def task_type(head: bytes, lower: bytes, options: int, digits: float) -> str:
    """The task a prompt asks for, by simple rules on its opening text (lower: lowercased)."""
    if _any(lower, _SUMMARY):
        return "summary"
    if options >= 2:
        if _any(head, _BLANKS):
            return "fill-in"
        if b"context:" in lower:
            return "sentence-completion"
        return "multiple-choice"
    if _any(head, _CODE):
        return "code"
    if _any(lower, _MATH) or (digits > 0.03 and (b"=" in head or b"+" in head)):
        return "math"
    return "chat"


def math_features(head: bytes, words: int) -> tuple[float, float, float]:
    """Numbers a math problem states, their density among its words, and its length in words."""
    numbers = (b" " + head).translate(_NUMBER_TABLE).count(b" 0")
    return (
        min(math.log1p(numbers) / 3.0, 1.5),
        min(numbers / words * 5.0, 1.0),
        min(math.log1p(words) / 6.0, 1.5),
    )


def text_vector(request: RequestInfo) -> tuple[npt.NDArray[np.float64], int, str]:
    """The feature vector (FEATURE_NAMES order), the token estimate and the task type."""
    prompt = request.prompt
    tokens = max(1, round(len(prompt) / CHARS_PER_TOKEN)) if prompt else 0
    head = prompt[:HEAD_CHARS].encode("utf-8", "ignore")
    size = max(len(head), 1)
    spaces = size - len(head.translate(None, _SPACE))
    words = head.count(b" ") + head.count(b"\n") + 1
    lines = head.count(b"\n") + 1
    lower = head.lower()
    options = _options(head)
    if options < 2 and len(prompt) > HEAD_CHARS:
        options = _options(prompt[-TAIL_CHARS:].encode("utf-8", "ignore"))
    digits = _fraction(head, _DIGITS)
    task = task_type(head, lower, options, digits)
    symbols = _fraction(head, _SYMBOLS)
    token_level = min(math.log1p(tokens) / TOKEN_SCALE, 1.5)
    reasoning = 1.0 if _any(lower, _REASONING) else 0.0
    complexity = min(
        1.0,
        0.4 * min(token_level, 1.0)
        + 0.2 * min(digits * 10.0, 1.0)
        + 0.2 * min(symbols * 10.0, 1.0)
        + 0.2 * reasoning,
    )
    values = [
        1.0,
        token_level,
        min(math.log1p(request.max_tokens) / TOKEN_SCALE, 1.5),
        0.0 if request.max_tokens else 1.0,
        1.0 if request.stream else 0.0,
        max(-1.0, min(request.priority / 10.0, 1.0)),
        digits,
        _fraction(head, _UPPER),
        symbols,
        min(lines / (words + 1.0), 1.0),
        min((size - spaces) / words / 10.0, 1.0),
        min(head.count(b"?") / 4.0, 1.0),
        min(options / 5.0, 1.0),
        complexity,
        *_NO_TASK,
        min(head.count(b"[") / 4.0, 1.0),
        min(BREVITY_TOKENS / (tokens + 1.0), 1.0),
        0.0,
        0.0,
        0.0,
    ]
    values[_TASK_OFFSET + TASKS.index(task)] = 1.0
    if task == "math":
        values[_MATH_OFFSET : _MATH_OFFSET + 3] = math_features(head, words)
    return np.array(values, dtype=np.float64), tokens, task


def text_features(request: RequestInfo) -> Features:
    """Features of a request from its text and hints alone."""
    vector, tokens, task = text_vector(request)
    return Features(prompt_tokens=tokens, vector=vector, task=task)
