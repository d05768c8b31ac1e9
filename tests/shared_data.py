"""Access to the evaluation data in ../shared/data (beside the checkout); tests skip without it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def require_data() -> Path:
    if not (DATA / "tasks").is_dir() or not (DATA / "probe" / "unlabeled.jsonl").is_file():
        pytest.skip(f"evaluation data not found at {DATA} (../shared/data beside the checkout)")
    return DATA


def read_jsonl(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def task_names() -> list[str]:
    return sorted(p.name for p in (require_data() / "tasks").iterdir() if p.is_dir())


def load_split(task: str, split: str) -> tuple[list[str], list[str] | None, list[str]]:
    """(texts, text_pairs or None, labels) of a task's split."""
    rows = read_jsonl(require_data() / "tasks" / task / f"{split}.jsonl")
    texts = [r["text"] for r in rows]
    pairs = [r["text_pair"] for r in rows] if "text_pair" in rows[0] else None
    return texts, pairs, [r["label"] for r in rows]


def probe_texts(n: int) -> list[str]:
    return [r["text"] for r in read_jsonl(require_data() / "probe" / "unlabeled.jsonl")[:n]]
