"""The evaluation's data: labelled tasks, the probe corpus and task families, read from ``--data DIR``.

Layout: ``tasks/<task>/{train,test}.jsonl`` (rows ``{"text", "label"}`` and, for pair tasks,
``"text_pair"``; optional ``meta.json`` with ``labels``), ``probe/unlabeled.jsonl`` (rows
``{"text"}``) and ``families.json`` (``{family: [task, ...]}``). Every error names the file, the
line and the field at fault, in the package's one format (``"FILE, line N: message"``, from
:func:`taskspace.datasets.files.line_error`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from taskspace.datasets.files import jsonl_rows, line_error
from taskspace.embedding.surrogate import Surrogate
from taskspace.embedding.task_embedding import TaskEmbedding
from taskspace.errors import InvalidInputError

__all__ = ["EvalData", "Split", "Task", "join_pairs", "load_data"]


@dataclass(frozen=True)
class Split:
    """One split of a task: input texts, their second texts (pair tasks, else ``None``), labels."""

    texts: list[str]
    pairs: list[str] | None
    labels: list[str]


@dataclass(frozen=True)
class Task:
    """One labelled task: its name, label names (meta.json order) and its train and test splits."""

    name: str
    labels: tuple[str, ...]
    train: Split
    test: Split

    @property
    def is_pair(self) -> bool:
        return self.train.pairs is not None

    def embedding(self, sur: Surrogate, mode: str) -> TaskEmbedding:
        """The DTE of the train split, named after the task.

        Built with the surrogate's silent building blocks: degeneracy is data here, not a warning."""
        train = self.train
        stats = sur.stats(train.texts, train.labels, text_pairs=train.pairs, mode=mode)  # type: ignore[arg-type]
        return sur.embed(stats, name=self.name)


@dataclass(frozen=True)
class EvalData:
    """What the suite evaluates on: tasks by name, the probe texts and each task's family."""

    tasks: dict[str, Task]
    probe: list[str]
    families: dict[str, str]
    root: Path


def join_pairs(texts: Sequence[str], pairs: Sequence[str] | None) -> list[str]:
    """Texts as the TF-IDF models see them: a pair task's two texts joined by ``" || "``."""
    return list(texts) if pairs is None else [f"{a} || {b}" for a, b in zip(texts, pairs, strict=True)]


def _read_jsonl(path: Path, required: Sequence[str]) -> list[tuple[int, dict[str, Any]]]:
    """``(line number, row)`` of every row, each with the ``required`` string fields."""
    rows = []
    for number, row in jsonl_rows(path):
        for key in required:
            if not isinstance(row.get(key), str):
                raise line_error(path, number, f"field {key!r} is missing or not a string")
        rows.append((number, row))
    if not rows:
        raise InvalidInputError(f"{path}: no rows")
    return rows


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise line_error(path, e.lineno, f"not valid JSON: {e.msg} (column {e.colno})") from None


def _split(path: Path, cap: int | None) -> Split:
    numbered = _read_jsonl(path, ("text", "label"))
    paired = "text_pair" in numbered[0][1]
    for number, row in numbered:
        if ("text_pair" in row) != paired or (paired and not isinstance(row["text_pair"], str)):
            raise line_error(path, number, "field 'text_pair' must be a string in every row or in none")
    rows = [row for _, row in numbered]
    if cap is not None and len(rows) > cap:
        # A fixed, label-balanced-in-expectation subset: every k-th row keeps the file's order.
        step = len(rows) / cap
        rows = [rows[int(i * step)] for i in range(cap)]
    return Split(
        [r["text"] for r in rows],
        [r["text_pair"] for r in rows] if paired else None,
        [r["label"] for r in rows],
    )


def _task_names(task_dir: Path, tasks: Sequence[str] | None) -> list[str]:
    if not task_dir.is_dir():
        raise InvalidInputError(f"{task_dir}: not found (expected tasks/<task>/train.jsonl and test.jsonl)")
    names = sorted(p.name for p in task_dir.iterdir() if p.is_dir())
    if tasks is not None:
        unknown = sorted(set(tasks) - set(names))
        if unknown:
            raise InvalidInputError(f"{task_dir}: no task named {unknown}")
        names = [n for n in names if n in set(tasks)]
    if len(names) < 2:
        raise InvalidInputError(f"{task_dir}: need at least 2 tasks, found {len(names)}")
    return names


def _meta_labels(meta_path: Path, labels: tuple[str, ...]) -> tuple[str, ...]:
    """The label order of ``meta.json`` when it has one, else ``labels``."""
    if not meta_path.is_file():
        return labels
    meta = _read_json(meta_path)
    meta_labels = meta.get("labels") if isinstance(meta, dict) else None
    if meta_labels is None:
        return labels
    if not isinstance(meta_labels, list) or not all(isinstance(x, str) for x in meta_labels):
        raise InvalidInputError(f"{meta_path}: field 'labels' must be a list of strings")
    return tuple(meta_labels)


def _task(task_dir: Path, name: str, max_train: int | None, max_test: int | None) -> Task:
    train = _split(task_dir / name / "train.jsonl", max_train)
    test = _split(task_dir / name / "test.jsonl", max_test)
    labels = _meta_labels(task_dir / name / "meta.json", tuple(dict.fromkeys(train.labels)))
    for split_name, split in (("train", train), ("test", test)):
        extra = sorted(set(split.labels) - set(labels))
        if extra:
            raise InvalidInputError(
                f"{task_dir / name / (split_name + '.jsonl')}: field 'label' has values {extra[:5]} "
                f"not in the task's labels {list(labels)[:10]}"
            )
    if len(set(train.labels)) < 2:
        raise InvalidInputError(f"{task_dir / name / 'train.jsonl'}: needs at least 2 distinct labels")
    return Task(name, labels, train, test)


def _families(families_path: Path, names: Sequence[str]) -> dict[str, str]:
    if not families_path.is_file():
        raise InvalidInputError(f"{families_path}: no such file")
    fam_raw = _read_json(families_path)
    if not isinstance(fam_raw, dict):
        raise InvalidInputError(f"{families_path}: expected an object family -> [task, ...]")
    families: dict[str, str] = {}
    for fam, members in fam_raw.items():
        if fam.startswith("_"):
            continue
        if not isinstance(members, list) or not all(isinstance(m, str) for m in members):
            raise InvalidInputError(f"{families_path}: field {fam!r} must be a list of task names")
        for m in members:
            families[m] = fam
    missing = [n for n in names if n not in families]
    if missing:
        raise InvalidInputError(f"{families_path}: tasks {missing} belong to no family")
    return {n: families[n] for n in names}


def load_data(
    data_dir: str | os.PathLike[str],
    *,
    tasks: Sequence[str] | None = None,
    n_probe: int | None = None,
    max_train: int | None = None,
    max_test: int | None = None,
) -> EvalData:
    """Read an evaluation directory; clear errors naming the file, line and field at fault.

    Args:
        data_dir: holds ``tasks/<task>/{train,test}.jsonl`` (+ optional ``meta.json`` with
            ``labels``), ``probe/unlabeled.jsonl`` and ``families.json``.
        tasks: only these tasks (default: every directory under ``tasks/``).
        n_probe: the first ``n_probe`` probe texts (default: all).
        max_train, max_test: evenly spaced subsets of at most this many rows per split.

    Raises:
        InvalidInputError: a missing or malformed file (the message names file, line and field).
    """
    root = Path(data_dir)
    if not root.is_dir():
        raise InvalidInputError(
            f"{root}: not a directory (expected the evaluation data: tasks/, probe/unlabeled.jsonl, families.json)"
        )
    task_dir = root / "tasks"
    names = _task_names(task_dir, tasks)
    loaded = {name: _task(task_dir, name, max_train, max_test) for name in names}
    probe_rows = _read_jsonl(root / "probe" / "unlabeled.jsonl", ("text",))
    probe = [r["text"] for _, r in probe_rows][: n_probe if n_probe is not None else None]
    return EvalData(loaded, probe, _families(root / "families.json", names), root)
