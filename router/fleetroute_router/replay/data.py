"""Read a routing-data directory (the layout of shared/data) into plain records."""

from __future__ import annotations

import csv
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

csv.field_size_limit(1 << 24)


@dataclass(frozen=True)
class Query:
    """A greenserv prompt and its generation budget."""

    query_id: str
    dataset: str
    prompt: str
    max_new_tokens: int


@dataclass(frozen=True)
class LogStep:
    """One step of a logging policy: the model it picked for a query and the reward it got."""

    run: int
    step: int
    query_id: str
    model: str
    reward: float


@dataclass(frozen=True)
class GreenServ:
    """The greenserv files: queries, observed (query, model) rewards, optima and the random log."""

    queries: dict[str, Query]
    rewards: dict[str, dict[str, float]]
    optimal: dict[str, float]
    log: list[LogStep]

    @property
    def models(self) -> list[str]:
        return sorted(
            {m for per in self.rewards.values() for m in per} | {s.model for s in self.log}
        )


@dataclass(frozen=True)
class Outcomes:
    """A routellm prompt and whether the weak and the strong model answered it correctly."""

    prompt: str
    group: str
    weak: float
    strong: float


def _rows(path: Path) -> Iterable[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        yield from csv.DictReader(f)


def _flag(value: str) -> float:
    text = value.strip().lower()
    if text in ("true", "1", "1.0"):
        return 1.0
    if text in ("false", "0", "0.0"):
        return 0.0
    raise ValueError(f"not a boolean outcome: {value!r}")


def load_greenserv(root: Path) -> GreenServ:
    """greenserv/ under root; ValueError naming a missing file."""
    base = root / "greenserv"
    for name in ("queries.csv", "rewards.csv"):
        if not (base / name).is_file():
            raise ValueError(f"{base / name} is missing (not a routing-data directory?)")
    queries = {
        r["query_id"]: Query(
            r["query_id"], r.get("dataset", ""), r["prompt"], int(r.get("max_new_tokens") or 0)
        )
        for r in _rows(base / "queries.csv")
    }
    rewards: dict[str, dict[str, float]] = {}
    for r in _rows(base / "rewards.csv"):
        rewards.setdefault(r["query_id"], {})[r["model"]] = float(r["reward"])
    optimal_path, log_path = base / "optimal.csv", base / "random_log.csv"
    optimal = (
        {r["query_id"]: float(r["optimal_reward"]) for r in _rows(optimal_path)}
        if optimal_path.is_file()
        else {}
    )
    log = (
        [
            LogStep(int(r["run"]), int(r["step"]), r["query_id"], r["model"], float(r["reward"]))
            for r in _rows(log_path)
        ]
        if log_path.is_file()
        else []
    )
    log.sort(key=lambda s: (s.run, s.step))
    return GreenServ(queries, rewards, optimal, log)


def load_routellm(root: Path, benchmark: str) -> list[Outcomes]:
    """routellm/<benchmark>.csv under root (mmlu or gsm8k)."""
    path = root / "routellm" / f"{benchmark}.csv"
    if not path.is_file():
        raise ValueError(f"{path} is missing (not a routing-data directory?)")
    return [
        Outcomes(
            r["prompt"],
            r.get("subject", ""),
            _flag(r["mixtral_8x7b_correct"]),
            _flag(r["gpt4_1106_correct"]),
        )
        for r in _rows(path)
    ]


def fold(key: str, folds: int) -> int:
    """A stable split of keys into folds 0..folds-1, by CRC-32 of the key."""
    return zlib.crc32(key.encode("utf-8")) % folds


def half(key: str) -> int:
    """A stable split of keys into halves 0 (evaluate) and 1 (train), by CRC-32 of the key."""
    return fold(key, 2)


def same_directory(a: Path, b: Path) -> bool:
    try:
        return a.resolve().samefile(b.resolve())
    except OSError:
        return False
