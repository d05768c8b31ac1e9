"""Shared fixtures of the benchmarks: the 2,000 labelled texts every benchmark runs on.

Data: the train split of ``sst2_movie_sentiment`` from ``../shared/data`` beside the checkout when it
is there; otherwise 2,000 synthetic texts built deterministically from the sentences of
``taskspace.datasets.builtin``. ``TASKSPACE_BENCH_DATA`` chooses: ``auto`` (default, as just described),
``shared`` (only the shared data: the benchmarks skip, saying why, when it is absent) or
``synthetic`` (always the synthetic texts). The data used is printed in the report header and
summary and stored in every benchmark's ``extra_info["data"]``.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import NamedTuple

import pytest
from taskspace.datasets import builtin as datasets

N_TEXTS = 2000
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SST2_TRAIN = SHARED_DATA / "tasks" / "sst2_movie_sentiment" / "train.jsonl"
CHOICES = ("auto", "shared", "synthetic")


class BenchData(NamedTuple):
    texts: list[str]
    labels: list[str]
    source: str


def _choice() -> str:
    value = os.environ.get("TASKSPACE_BENCH_DATA", "auto").strip().lower() or "auto"
    if value not in CHOICES:
        raise pytest.UsageError(f"TASKSPACE_BENCH_DATA must be one of {', '.join(CHOICES)}, got {value!r}")
    return value


def _shared() -> BenchData:
    with SST2_TRAIN.open(encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh if line.strip()]
    rows = rows[:N_TEXTS]
    texts = [r["text"] for r in rows]
    labels = [r["label"] for r in rows]
    mean = sum(map(len, texts)) / len(texts)
    source = f"sst2_movie_sentiment train ({SST2_TRAIN}; {len(texts)} texts, mean {mean:.0f} chars)"
    return BenchData(texts, labels, source)


def _synthetic() -> BenchData:
    """2,000 texts from the built-in sentiment sentences: repeated, word-shuffled and combined."""
    pool: dict[str, list[str]] = {}
    for name in ("movie_sentiment", "product_sentiment"):
        for ex in datasets.BUILTIN[name]:
            pool.setdefault(ex.label, []).append(ex.text)
    names = sorted(pool)
    rng = random.Random(20240601)
    texts, labels = [], []
    for i in range(N_TEXTS):
        label = names[i % len(names)]
        words = rng.choice(pool[label]).split()
        kind = rng.randrange(3)
        if kind == 1:  # shuffled words
            rng.shuffle(words)
        elif kind == 2:  # the start of one sentence, the end of another (same label)
            other = rng.choice(pool[label]).split()
            words = words[: len(words) // 2] + other[len(other) // 2 :]
        texts.append(" ".join(words))
        labels.append(label)
    order = list(range(N_TEXTS))
    rng.shuffle(order)
    texts = [texts[i] for i in order]
    labels = [labels[i] for i in order]
    mean = sum(map(len, texts)) / len(texts)
    return BenchData(
        texts,
        labels,
        f"synthetic ({N_TEXTS} texts from taskspace.datasets.builtin movie/product sentiment, mean {mean:.0f} chars)",
    )


def load_bench_data() -> BenchData | str:
    """The benchmark data, or the reason why there is none."""
    choice = _choice()
    if choice == "synthetic" or (choice == "auto" and not SST2_TRAIN.is_file()):
        return _synthetic()
    if not SST2_TRAIN.is_file():
        return (
            f"TASKSPACE_BENCH_DATA=shared but {SST2_TRAIN} is absent "
            "(../shared/data beside the checkout); use auto or synthetic to run on synthetic texts"
        )
    return _shared()


_CACHE: list[BenchData | str] = []


def _cached() -> BenchData | str:
    if not _CACHE:
        _CACHE.append(load_bench_data())
    return _CACHE[0]


def _describe() -> str:
    data = _cached()
    return f"benchmark data: {data.source if isinstance(data, BenchData) else 'none: ' + data}"


def pytest_report_header(config: pytest.Config) -> list[str]:
    return [_describe()]


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    if _CACHE:
        terminalreporter.write_line(_describe())


@pytest.fixture(scope="session")
def bench_data() -> BenchData:
    data = _cached()
    if isinstance(data, str):
        pytest.skip(data)
    return data
