"""Files the command line reads and writes: labelled datasets and probe outputs.

**Datasets** (:func:`read_dataset`): JSON Lines (``.jsonl``/``.ndjson``), CSV (``.csv``, with a
header row; ``.tsv`` tab-separated) or Parquet (``.parquet``, needs ``pyarrow``). Columns:
``text`` (required), ``label`` (required) and ``text_pair`` (optional: the second text of pair
tasks such as NLI; when the column exists every row needs one). Other columns are ignored. Labels
are read as strings (``1`` and ``"1"`` are the same label). Every problem is reported with the file,
the line (JSONL/CSV; Parquet: the row) and the field.

**Probe outputs** (:func:`write_outputs` / :func:`read_outputs`): what ``taskspace probe`` writes
and ``taskspace embed`` / ``taskspace report`` read, one JSON object per line:

* line 1, the header: ``{"format": "taskspace.probing-outputs/1", "probe_set": {...}, "texts": [...],
  "text_pairs": [...] | null, "usage": {...}, "stop_reason": ..., "elapsed": ...}``;
* then one line per model: ``{"model": name, "mode": "label" | "text", "labels": [...] | null,
  "outputs": [...], "usage": {...}, "failed": int, "unparseable": int, "skipped": int,
  "stop_reason": ..., "meta": {...}}`` where ``outputs`` is aligned with ``texts``: a soft label
  row (list of floats, columns ``labels``), a label or answer text, or ``null`` (no output).
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from taskspace.errors import InvalidInputError

__all__ = [
    "OUTPUTS_FORMAT",
    "Dataset",
    "ModelOutputs",
    "ProbeOutputs",
    "read_dataset",
    "read_outputs",
    "read_texts",
    "write_outputs",
]

OUTPUTS_FORMAT = "taskspace.probing-outputs/1"
_JSONL = (".jsonl", ".ndjson")


@dataclass(frozen=True)
class Dataset:
    """A labelled dataset read from a file."""

    name: str
    texts: list[str]
    labels: list[str]
    text_pairs: list[str] | None
    path: Path

    def __len__(self) -> int:
        return len(self.texts)


def _fail(path: Path, where: str, message: str) -> InvalidInputError:
    return InvalidInputError(f"{path}, {where}: {message}")


def _jsonl_rows(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise _fail(path, f"line {number}", f"not valid JSON: {e.msg} (column {e.colno})") from None
            if not isinstance(row, dict):
                raise _fail(path, f"line {number}", f"expected a JSON object, got {type(row).__name__}")
            yield f"line {number}", row


def _csv_rows(path: Path, delimiter: str) -> Iterator[tuple[str, dict[str, Any]]]:
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f, delimiter=delimiter)
        if reader.fieldnames is None:
            raise _fail(path, "line 1", "the file is empty (expected a header row with text and label)")
        for row in reader:
            if None in row:
                raise _fail(path, f"line {reader.line_num}", "more fields than the header names")
            yield f"line {reader.line_num}", {k: v for k, v in row.items() if v is not None}


def _parquet_rows(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise InvalidInputError(
            f"{path}: reading Parquet files needs pyarrow; install it with `pip install pyarrow`, "
            "or convert the file to JSONL or CSV"
        ) from None
    try:
        table = pq.read_table(path)
    except Exception as e:  # pyarrow raises its own error types for corrupt files
        raise InvalidInputError(f"{path}: not a readable Parquet file: {e}") from None
    for i, row in enumerate(table.to_pylist(), start=1):
        yield f"row {i}", row


def _rows(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    suffix = path.suffix.lower()
    if suffix in _JSONL:
        return _jsonl_rows(path)
    if suffix == ".csv":
        return _csv_rows(path, ",")
    if suffix == ".tsv":
        return _csv_rows(path, "\t")
    if suffix == ".parquet":
        return _parquet_rows(path)
    raise InvalidInputError(
        f"{path}: unknown file type {suffix or '(no suffix)'!r}; use .jsonl, .csv, .tsv or .parquet"
    )


def _text(path: Path, where: str, row: Mapping[str, Any], key: str) -> str:
    value = row.get(key)
    if value is None:
        raise _fail(path, where, f"field {key!r} is missing")
    if not isinstance(value, str):
        raise _fail(path, where, f"field {key!r} must be a string, got {type(value).__name__} {value!r}")
    return value


def _label(path: Path, where: str, row: Mapping[str, Any]) -> str:
    value = row.get("label")
    if value is None or value == "":
        raise _fail(path, where, "field 'label' is missing or empty")
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise _fail(path, where, f"field 'label' must be a string or an integer, got {value!r}")
    return str(value)


def _existing(path: str | os.PathLike[str]) -> Path:
    p = Path(path)
    if not p.is_file():
        raise InvalidInputError(f"{p}: no such file")
    return p


def read_dataset(path: str | os.PathLike[str], *, name: str | None = None) -> Dataset:
    """Read a labelled dataset (``text``, ``label``, optional ``text_pair`` columns).

    ``name`` defaults to the file name without its suffix. Raises
    :class:`~taskspace.InvalidInputError` naming the file, line (or row) and field for anything
    wrong: a missing or non-string field, a malformed line, fewer than two rows, a
    ``text_pair`` given on some rows only, or an unknown file type.

    Example:
        >>> import pathlib, tempfile
        >>> from taskspace.datasets.files import read_dataset
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     path = pathlib.Path(tmp) / "reviews.csv"
        ...     _ = path.write_text("text,label\\ngreat film,pos\\nawful film,neg\\n")
        ...     ds = read_dataset(path)
        >>> ds.name, ds.texts, ds.labels, ds.text_pairs
        ('reviews', ['great film', 'awful film'], ['pos', 'neg'], None)
    """
    p = _existing(path)
    texts: list[str] = []
    labels: list[str] = []
    pairs: list[str] = []
    has_pairs: bool | None = None
    for where, row in _rows(p):
        texts.append(_text(p, where, row, "text"))
        labels.append(_label(p, where, row))
        row_has_pair = row.get("text_pair") not in (None, "") or (has_pairs and "text_pair" in row)
        if has_pairs is None:
            has_pairs = bool(row_has_pair)
        if has_pairs:
            pairs.append(_text(p, where, row, "text_pair"))
        elif row_has_pair:
            raise _fail(p, where, "field 'text_pair' is given here but not on the first row")
    if len(texts) < 2:
        raise InvalidInputError(f"{p}: a dataset needs at least 2 rows with text and label, got {len(texts)}")
    return Dataset(name or p.stem, texts, labels, pairs if has_pairs else None, p)


def read_texts(path: str | os.PathLike[str]) -> tuple[list[str], list[str] | None]:
    """Read probe texts: a JSONL file of ``{"text": ...}`` objects (``text_pair`` optional, on every
    row or none) or a plain ``.txt`` file with one text per line. Errors name file, line and field."""
    p = _existing(path)
    if p.suffix.lower() == ".txt":
        with p.open(encoding="utf-8") as f:
            lines = [line.rstrip("\n") for line in f if line.strip()]
        if not lines:
            raise InvalidInputError(f"{p}: no texts")
        return lines, None
    if p.suffix.lower() not in _JSONL:
        raise InvalidInputError(f"{p}: probe texts must be a .jsonl file (or .txt, one text per line)")
    texts: list[str] = []
    pairs: list[str] = []
    for where, row in _jsonl_rows(p):
        texts.append(_text(p, where, row, "text"))
        if "text_pair" in row or pairs:
            if len(pairs) != len(texts) - 1:
                raise _fail(p, where, "field 'text_pair' is given on some rows only")
            pairs.append(_text(p, where, row, "text_pair"))
    if not texts:
        raise InvalidInputError(f"{p}: no texts")
    return texts, pairs or None


# -- probe outputs ------------------------------------------------------------------------------


@dataclass
class ModelOutputs:
    """One model's outputs on the probe texts, as stored in an outputs file."""

    model: str
    mode: str
    labels: list[str] | None
    outputs: list[Any]
    usage: dict[str, Any] = field(default_factory=dict)
    failed: int = 0
    unparseable: int = 0
    skipped: int = 0
    stop_reason: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def embedding_inputs(
        self, texts: Sequence[str], text_pairs: Sequence[str] | None, mode: str
    ) -> tuple[list[str], list[str] | None, Any]:
        """(texts, text_pairs, outputs) of the inputs that have an output, ready for
        ``Surrogate.model_embedding``: soft label rows as an array in label mode, label names
        (the most likely label) in text mode."""
        keep = [i for i, o in enumerate(self.outputs) if o is not None]
        kept = [self.outputs[i] for i in keep]
        t = [texts[i] for i in keep]
        tp = None if text_pairs is None else [text_pairs[i] for i in keep]
        soft = any(isinstance(o, list) for o in kept)
        if not soft:
            return t, tp, [str(o) for o in kept]
        if self.labels is None:
            raise InvalidInputError(f"model {self.model!r} has soft label rows but no label names")
        col = {label: j for j, label in enumerate(self.labels)}
        rows = np.zeros((len(kept), len(self.labels)))
        for r, o in enumerate(kept):
            if isinstance(o, list):
                rows[r] = o
            else:
                rows[r, col[str(o)]] = 1.0
        if mode == "text":
            return t, tp, [self.labels[j] for j in rows.argmax(axis=1)]
        return t, tp, rows


@dataclass
class ProbeOutputs:
    """Everything in an outputs file: the probe texts and each model's outputs and usage."""

    texts: list[str]
    text_pairs: list[str] | None
    models: dict[str, ModelOutputs]
    probe_set: dict[str, Any] = field(default_factory=dict)
    usage: dict[str, Any] = field(default_factory=dict)
    stop_reason: str | None = None
    elapsed: float = 0.0


def _jsonable(o: Any) -> Any:
    if isinstance(o, np.ndarray):
        return [round(float(x), 7) for x in o]
    return o


def _atomic_write(path: Path, lines: Iterator[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("w", encoding="utf-8") as f:
            for line in lines:
                f.write(line)
                f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_outputs(
    path: str | os.PathLike[str],
    result: Any,
    *,
    probe_set: Mapping[str, Any] | None = None,
    meta: Mapping[str, Mapping[str, Any]] | None = None,
) -> None:
    """Write a :class:`~taskspace.probing.ProbeResult` as an outputs file (atomically: a reader sees
    the old file or the new one, never half of one). ``meta`` maps model names to extra
    JSON-serialisable information stored with them (endpoint, template, ...)."""
    models = list(result.models.values())
    if not models:
        raise InvalidInputError("the probe result has no models")
    first = models[0]
    header = {
        "format": OUTPUTS_FORMAT,
        "probe_set": dict(probe_set or {}),
        "texts": list(first.texts),
        "text_pairs": None if first.text_pairs is None else list(first.text_pairs),
        "usage": result.usage.as_dict(),
        "stop_reason": result.stop_reason,
        "elapsed": result.elapsed,
    }

    def lines() -> Iterator[str]:
        yield json.dumps(header, ensure_ascii=False)
        for m in models:
            row = {
                "model": m.name,
                "mode": m.mode,
                "labels": None if m.labels is None else list(m.labels),
                "outputs": [_jsonable(o) for o in m.outputs],
                "usage": m.usage.as_dict(),
                "failed": m.n_failed,
                "unparseable": m.n_unparseable,
                "skipped": len(m.skipped),
                "stop_reason": m.stop_reason,
                "meta": dict((meta or {}).get(m.name, {})),
            }
            yield json.dumps(row, ensure_ascii=False, allow_nan=False)

    _atomic_write(Path(path), lines())


def _check_output(path: Path, where: str, m: ModelOutputs, i: int, o: Any) -> None:
    if o is None or isinstance(o, str):
        return
    if isinstance(o, list) and m.labels is not None and len(o) == len(m.labels):
        if all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in o):
            return
    raise _fail(
        path,
        where,
        f"field 'outputs'[{i}] of model {m.model!r} must be null, a string or a list of "
        f"{0 if m.labels is None else len(m.labels)} numbers (one per label), got {o!r}",
    )


def read_outputs(path: str | os.PathLike[str]) -> ProbeOutputs:
    """Read an outputs file written by :func:`write_outputs` (``taskspace probe``); errors name
    the file, line and field."""
    p = _existing(path)
    rows = _jsonl_rows(p)
    try:
        where, header = next(rows)
    except StopIteration:
        raise InvalidInputError(f"{p}: the outputs file is empty") from None
    if header.get("format") != OUTPUTS_FORMAT:
        raise _fail(
            p,
            where,
            f"field 'format' must be {OUTPUTS_FORMAT!r} (a file written by `taskspace probe`), "
            f"got {header.get('format')!r}",
        )
    texts = header.get("texts")
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise _fail(p, where, "field 'texts' must be a non-empty list of strings")
    pairs = header.get("text_pairs")
    if pairs is not None and (
        not isinstance(pairs, list) or len(pairs) != len(texts) or not all(isinstance(t, str) for t in pairs)
    ):
        raise _fail(p, where, "field 'text_pairs' must be null or a list of strings as long as 'texts'")
    models: dict[str, ModelOutputs] = {}
    for where, row in rows:
        name = row.get("model")
        if not isinstance(name, str) or not name:
            raise _fail(p, where, "field 'model' must be a non-empty string")
        if name in models:
            raise _fail(p, where, f"field 'model': {name!r} appears twice")
        mode = row.get("mode")
        if mode not in ("label", "text"):
            raise _fail(p, where, f"field 'mode' must be 'label' or 'text', got {mode!r}")
        labels = row.get("labels")
        if labels is not None and (
            not isinstance(labels, list) or not all(isinstance(x, str) for x in labels)
        ):
            raise _fail(p, where, "field 'labels' must be null or a list of strings")
        outputs = row.get("outputs")
        if not isinstance(outputs, list) or len(outputs) != len(texts):
            raise _fail(p, where, f"field 'outputs' must be a list of {len(texts)} outputs (one per text)")
        m = ModelOutputs(
            model=name,
            mode=mode,
            labels=labels,
            outputs=outputs,
            usage=row.get("usage") or {},
            failed=int(row.get("failed") or 0),
            unparseable=int(row.get("unparseable") or 0),
            skipped=int(row.get("skipped") or 0),
            stop_reason=row.get("stop_reason"),
            meta=row.get("meta") or {},
        )
        for i, o in enumerate(outputs):
            _check_output(p, where, m, i, o)
        models[name] = m
    if not models:
        raise InvalidInputError(f"{p}: the outputs file holds no models")
    return ProbeOutputs(
        texts=texts,
        text_pairs=pairs,
        models=models,
        probe_set=header.get("probe_set") or {},
        usage=header.get("usage") or {},
        stop_reason=header.get("stop_reason"),
        elapsed=float(header.get("elapsed") or 0.0),
    )
