"""Decode a plugin's `parameters` mapping into its typed, frozen Parameters dataclass."""

from __future__ import annotations

import dataclasses
import re
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

T = TypeVar("T")


def _snake(key: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", key).lower()


def decode(kind: type[T], raw: Mapping[str, Any] | None) -> T:
    """Parameters of type `kind` from camelCase (or snake_case) keys; ValueError on unknown keys,
    wrong types or values a field's `check` metadata rejects."""
    fields = {f.name: f for f in dataclasses.fields(kind)}  # type: ignore[arg-type]
    hints = typing.get_type_hints(kind)
    values: dict[str, Any] = {}
    for key, value in (raw or {}).items():
        name = _snake(str(key))
        if name not in fields:
            known = ", ".join(sorted(fields)) or "none"
            raise ValueError(f"unknown parameter {key!r} (known: {known})")
        wanted = hints[name]
        if wanted is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, wanted) or (wanted is not bool and isinstance(value, bool)):
            raise ValueError(f"parameter {key!r} must be {wanted.__name__}, got {value!r}")
        check = fields[name].metadata.get("check")
        if check is not None and not check(value):
            raise ValueError(f"parameter {key!r}: {fields[name].metadata['rule']}, got {value!r}")
        values[name] = value
    return kind(**values)


def positive(default: float) -> Any:
    """A dataclass field that must be > 0."""
    return dataclasses.field(
        default=default, metadata={"check": lambda v: v > 0, "rule": "must be positive"}
    )


def non_negative(default: float) -> Any:
    """A dataclass field that must be >= 0."""
    return dataclasses.field(
        default=default, metadata={"check": lambda v: v >= 0, "rule": "must not be negative"}
    )
