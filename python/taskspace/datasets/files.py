"""Files users bring: labelled datasets, probe texts, and the one JSON Lines reader.

**Datasets** (:func:`read_dataset`): JSON Lines (``.jsonl``/``.ndjson``), CSV (``.csv``, with a
header row; ``.tsv`` tab-separated) or Parquet (``.parquet``, needs ``pyarrow``). Columns:
``text`` (required), ``label`` (required) and ``text_pair`` (optional: the second text of pair
tasks such as NLI; when the column exists every row needs one). Other columns are ignored. Labels
are read as strings (``1`` and ``"1"`` are the same label). Every problem is reported with the file,
the line (JSONL/CSV; Parquet: the row) and the field.

**Probe texts** (:func:`read_texts`): JSONL ``{"text": ...}`` rows or a ``.txt`` file.

**JSON Lines** (:func:`jsonl_rows`): every JSONL file the package reads goes through this one
reader, so every such error reads ``"FILE, line N: message"`` (:func:`line_error`). The probe
outputs file of ``taskspace probe`` is read and written by
:meth:`taskspace.probing.result.ProbeResult.load` / ``save``.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from taskspace.errors import InvalidInputError

__all__ = [
    "Dataset",
    "jsonl_rows",
    "line_error",
    "read_dataset",
    "read_texts",
]

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


def _existing(path: str | os.PathLike[str]) -> Path:
    p = Path(path)
    if not p.is_file():
        raise InvalidInputError(f"{p}: no such file")
    return p


def line_error(path: str | os.PathLike[str], line: int, message: str) -> InvalidInputError:
    """The one error format of the package's line-based files: ``"FILE, line N: message"``.

    Example:
        >>> from taskspace.datasets.files import line_error
        >>> str(line_error("texts.jsonl", 3, "field 'text' is missing"))
        "texts.jsonl, line 3: field 'text' is missing"
    """
    return _fail(Path(path), f"line {line}", message)


def jsonl_rows(path: str | os.PathLike[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line number, object)`` for every non-blank line of a JSON Lines file.

    Line numbers count from 1 and include blank lines, so they match an editor's. Raises
    :class:`~taskspace.InvalidInputError` in the format of :func:`line_error` for a line that is
    not valid JSON or not a JSON object, and ``"FILE: no such file"`` when the file is missing
    (on the first ``next``: this is a generator).

    Example:
        >>> import pathlib, tempfile
        >>> from taskspace.datasets.files import jsonl_rows
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     path = pathlib.Path(tmp) / "rows.jsonl"
        ...     _ = path.write_text('{"text": "a"}\\n\\n{"text": "b"}\\n')
        ...     list(jsonl_rows(path))
        [(1, {'text': 'a'}), (3, {'text': 'b'})]
    """
    p = _existing(path)
    with p.open(encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise line_error(p, number, f"not valid JSON: {e.msg} (column {e.colno})") from None
            if not isinstance(row, dict):
                raise line_error(p, number, f"expected a JSON object, got {type(row).__name__}")
            yield number, row


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
        return ((f"line {number}", row) for number, row in jsonl_rows(path))
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
    for number, row in jsonl_rows(p):
        where = f"line {number}"
        texts.append(_text(p, where, row, "text"))
        if "text_pair" in row or pairs:
            if len(pairs) != len(texts) - 1:
                raise _fail(p, where, "field 'text_pair' is given on some rows only")
            pairs.append(_text(p, where, row, "text_pair"))
    if not texts:
        raise InvalidInputError(f"{p}: no texts")
    return texts, pairs or None
