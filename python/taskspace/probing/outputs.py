"""The probe outputs file: what ``taskspace probe`` writes and ``embed``/``report``/``compare`` read.

:meth:`ProbeResult.save <taskspace.probing.result.ProbeResult.save>` and
:meth:`ProbeResult.load <taskspace.probing.result.ProbeResult.load>` are the public doors; this
module holds the format. One JSON object per line:

* line 1, the header: ``{"format": "taskspace.probe-outputs/1", "probe_set": {...}, "texts": [...],
  "text_pairs": [...] | null, "usage": {...}, "stop_reason": ..., "elapsed": ...}``;
* then one line per model: ``{"model": name, "mode": "label" | "text", "labels": [...] | null,
  "outputs": [...], "usage": {...}, "failed": int, "unparseable": int, "skipped": int,
  "stop_reason": ..., "meta": {...}}`` where ``outputs`` is aligned with ``texts``: a soft label
  row (list of floats, columns ``labels``), a label or answer text, or ``null`` (no output).

The file keeps per-input outputs but only the counts of failed, unparseable and skipped inputs
and the usage totals, so a loaded :class:`~taskspace.probing.result.ModelResult` has
``counts`` set and no ``records``.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from taskspace.datasets.files import jsonl_rows, line_error
from taskspace.errors import InvalidInputError
from taskspace.probing.result import ModelResult, ProbeResult, Usage

__all__ = ["OUTPUTS_FORMAT", "load_outputs", "save_outputs"]

#: The format tag of line 1; a new layout gets a new tag, old files keep loading.
OUTPUTS_FORMAT = "taskspace.probe-outputs/1"


# -- writing -------------------------------------------------------------------------------------


def _jsonable(o: Any) -> Any:
    if isinstance(o, np.ndarray):
        return [round(float(x), 7) for x in o]
    return o


def _header(result: ProbeResult, first: ModelResult, probe_set: Mapping[str, Any] | None) -> dict[str, Any]:
    return {
        "format": OUTPUTS_FORMAT,
        "probe_set": dict(result.probe_set if probe_set is None else probe_set),
        "texts": list(first.texts),
        "text_pairs": None if first.text_pairs is None else list(first.text_pairs),
        "usage": result.usage.as_dict(),
        "stop_reason": result.stop_reason,
        "elapsed": result.elapsed,
    }


def _model_row(m: ModelResult, meta: Mapping[str, Any] | None) -> dict[str, Any]:
    return {
        "model": m.name,
        "mode": m.mode,
        "labels": None if m.labels is None else list(m.labels),
        "outputs": [_jsonable(o) for o in m.outputs],
        "usage": m.usage.as_dict(),
        "failed": m.n_failed,
        "unparseable": m.n_unparseable,
        "skipped": m.n_skipped,
        "stop_reason": m.stop_reason,
        "meta": {**m.meta, **dict(meta or {})},
    }


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


def save_outputs(
    result: ProbeResult,
    path: str | os.PathLike[str],
    *,
    probe_set: Mapping[str, Any] | None = None,
    meta: Mapping[str, Mapping[str, Any]] | None = None,
) -> None:
    """Write ``result`` as an outputs file, atomically (see :meth:`ProbeResult.save`)."""
    models = list(result.models.values())
    if not models:
        raise InvalidInputError("the probe result has no models")
    header = _header(result, models[0], probe_set)

    def lines() -> Iterator[str]:
        yield json.dumps(header, ensure_ascii=False)
        for m in models:
            row = _model_row(m, (meta or {}).get(m.name))
            yield json.dumps(row, ensure_ascii=False, allow_nan=False)

    _atomic_write(Path(path), lines())


# -- reading -------------------------------------------------------------------------------------


def _read_header(p: Path, line: int, header: dict[str, Any]) -> tuple[list[str], list[str] | None]:
    if header.get("format") != OUTPUTS_FORMAT:
        raise line_error(
            p,
            line,
            f"field 'format' must be {OUTPUTS_FORMAT!r} (a file written by `taskspace probe`), "
            f"got {header.get('format')!r}",
        )
    texts = header.get("texts")
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise line_error(p, line, "field 'texts' must be a non-empty list of strings")
    pairs = header.get("text_pairs")
    if pairs is not None and (
        not isinstance(pairs, list) or len(pairs) != len(texts) or not all(isinstance(t, str) for t in pairs)
    ):
        raise line_error(p, line, "field 'text_pairs' must be null or a list of strings as long as 'texts'")
    return texts, pairs


def _check_model_fields(
    p: Path, line: int, row: dict[str, Any], n_texts: int, seen: Mapping[str, Any]
) -> None:
    name = row.get("model")
    if not isinstance(name, str) or not name:
        raise line_error(p, line, "field 'model' must be a non-empty string")
    if name in seen:
        raise line_error(p, line, f"field 'model': {name!r} appears twice")
    mode = row.get("mode")
    if mode not in ("label", "text"):
        raise line_error(p, line, f"field 'mode' must be 'label' or 'text', got {mode!r}")
    labels = row.get("labels")
    if labels is not None and (not isinstance(labels, list) or not all(isinstance(x, str) for x in labels)):
        raise line_error(p, line, "field 'labels' must be null or a list of strings")
    outputs = row.get("outputs")
    if not isinstance(outputs, list) or len(outputs) != n_texts:
        raise line_error(p, line, f"field 'outputs' must be a list of {n_texts} outputs (one per text)")
    if not isinstance(row.get("usage") or {}, Mapping):
        raise line_error(p, line, "field 'usage' must be an object")


def _output(p: Path, line: int, row: dict[str, Any], i: int, o: Any) -> str | np.ndarray | None:
    """One stored output as a :class:`ModelResult` holds it (soft label rows as float64 arrays)."""
    if o is None or isinstance(o, str):
        return o
    labels = row.get("labels")
    if isinstance(o, list) and labels is not None and len(o) == len(labels):
        if all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in o):
            return np.asarray(o, dtype=np.float64)
    raise line_error(
        p,
        line,
        f"field 'outputs'[{i}] of model {row['model']!r} must be null, a string or a list of "
        f"{0 if labels is None else len(labels)} numbers (one per label), got {o!r}",
    )


def _model(
    p: Path,
    line: int,
    row: dict[str, Any],
    texts: list[str],
    pairs: list[str] | None,
    seen: Mapping[str, Any],
) -> ModelResult:
    _check_model_fields(p, line, row, len(texts), seen)
    labels = row.get("labels")
    return ModelResult(
        name=row["model"],
        mode=row["mode"],
        labels=None if labels is None else tuple(labels),
        texts=texts,
        text_pairs=pairs,
        outputs=[_output(p, line, row, i, o) for i, o in enumerate(row["outputs"])],
        stop_reason=row.get("stop_reason"),
        usage=Usage.from_dict(row.get("usage") or {}),
        meta=row.get("meta") or {},
        counts={k: int(row.get(k) or 0) for k in ("failed", "unparseable", "skipped")},
    )


def load_outputs(path: str | os.PathLike[str]) -> ProbeResult:
    """Read an outputs file (see :meth:`ProbeResult.load`); errors name the file, line and field."""
    rows = jsonl_rows(path)
    p = Path(path)
    try:
        line, header = next(rows)
    except StopIteration:
        raise InvalidInputError(f"{p}: the outputs file is empty") from None
    texts, pairs = _read_header(p, line, header)
    models: dict[str, ModelResult] = {}
    for line, row in rows:
        m = _model(p, line, row, texts, pairs, models)
        models[m.name] = m
    if not models:
        raise InvalidInputError(f"{p}: the outputs file holds no models")
    return ProbeResult(
        models=models,
        usage=Usage.from_dict(header.get("usage") or {}),
        stop_reason=header.get("stop_reason"),
        elapsed=float(header.get("elapsed") or 0.0),
        probe_set=header.get("probe_set") or {},
    )
