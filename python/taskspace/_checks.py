"""Checking and coercing what users pass in: texts, labels, soft labels, vectors, thread counts.

Everything here raises a clear :class:`TypeError` or :class:`InvalidInputError` naming the argument
and, where it helps, the offending index, so that nothing malformed reaches the Rust core.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from taskspace._core import MAX_LABELS
from taskspace.errors import InvalidInputError

#: Largest accepted ``n_threads``.
MAX_THREADS = 1024
_F32_MAX = float(np.finfo(np.float32).max)

#: Rows of soft labels must sum to 1 within this tolerance.
SOFT_LABEL_TOLERANCE = 1e-3


def texts_list(texts: Any, what: str = "texts") -> list[str]:
    """A non-empty list of str from a sequence (list, tuple, 1-D array) of str."""
    if isinstance(texts, (str, bytes)):
        raise TypeError(f"{what} must be a sequence of str, not a single {type(texts).__name__}")
    if isinstance(texts, np.ndarray):
        if texts.ndim != 1:
            raise InvalidInputError(f"{what} must be 1-D, got an array of shape {texts.shape}")
        texts = texts.tolist()
    if not isinstance(texts, Sequence):
        try:
            texts = list(texts)
        except TypeError:
            raise TypeError(f"{what} must be a sequence of str, got {type(texts).__name__}") from None
    out = list(texts)
    if not out:
        raise InvalidInputError(f"{what} is empty")
    if set(map(type, out)) == {str}:  # the common case, checked at C speed
        return out
    for i, t in enumerate(out):
        if not isinstance(t, str):
            raise TypeError(f"{what}[{i}] must be str, got {type(t).__name__}")
    return out


def check_encodable(texts: list[str], what: str) -> None:
    """Raise a clear error for strings that are not valid Unicode (lone surrogates)."""
    try:  # one encode of all texts; only on failure look for the culprit
        "".join(texts).encode("utf-8")
        return
    except UnicodeEncodeError:
        pass
    for i, t in enumerate(texts):
        try:
            t.encode("utf-8")
        except UnicodeEncodeError as e:
            raise InvalidInputError(f"{what}[{i}] is not valid Unicode: {e.reason}") from None


def same_length(n: int, other: int, what: str) -> None:
    if n != other:
        raise InvalidInputError(f"{what} has {other} items but texts has {n}")


def hard_labels(labels: Any, n: int) -> tuple[np.ndarray, tuple[str, ...]]:
    """One-hot float32 (n, C) rows and the label names (sorted) from a sequence of str/int labels."""
    if isinstance(labels, np.ndarray):
        if labels.ndim != 1:
            raise InvalidInputError(
                f"labels must be 1-D (or an (n, C) float array), got shape {labels.shape}"
            )
        labels = labels.tolist()
    if isinstance(labels, (str, bytes)) or not isinstance(labels, Sequence):
        raise TypeError(f"labels must be a sequence of str or int, got {type(labels).__name__}")
    same_length(n, len(labels), "labels")
    types = set(map(type, labels))
    if types == {str}:  # fast paths (checked at C speed): all str, or all int without bool
        keys = list(labels)
    elif types and all(issubclass(t, (int, np.integer)) and not issubclass(t, bool) for t in types):
        keys = [str(int(lab)) for lab in labels]
    else:
        keys = _label_keys(labels)
    names = tuple(sorted(set(keys)))
    if len(names) > MAX_LABELS:
        raise InvalidInputError(f"{len(names)} distinct labels; label mode supports at most {MAX_LABELS}")
    index = {name: j for j, name in enumerate(names)}
    y = np.zeros((n, len(names)), dtype=np.float32)
    y[np.arange(n), list(map(index.__getitem__, keys))] = 1.0
    return y, names


def _label_keys(labels: Sequence[Any]) -> list[str]:
    """Label keys one at a time, with the message for the first bad label."""
    keys: list[str] = []
    kinds: set[type] = set()
    for i, lab in enumerate(labels):
        if isinstance(lab, bool) or not isinstance(lab, (str, int, np.integer)):
            raise TypeError(f"labels[{i}] must be str or int, got {type(lab).__name__}")
        kinds.add(str if isinstance(lab, str) else int)
        keys.append(lab if isinstance(lab, str) else str(int(lab)))
    if len(kinds) > 1:
        raise TypeError("labels mix str and int; use one type")
    return keys


def soft_labels(labels: Any, n: int) -> np.ndarray:
    """Validated float32 (n, C) label distributions."""
    arr = numeric_array(
        labels,
        ragged="soft labels must form an (n, C) array",
        not_numeric="soft labels must be a numeric (n, C) array",
    )
    if arr.ndim != 2:
        raise InvalidInputError(f"soft labels must be 2-D (n, C), got shape {arr.shape}")
    same_length(n, arr.shape[0], "labels")
    if arr.shape[1] < 1:
        raise InvalidInputError("soft labels need at least one column")
    if arr.shape[1] > MAX_LABELS:
        raise InvalidInputError(f"{arr.shape[1]} label columns; label mode supports at most {MAX_LABELS}")
    a64 = arr.astype(np.float64)
    bad = ~np.isfinite(a64)
    if bad.any():
        row = int(np.argwhere(bad)[0][0])
        raise InvalidInputError(f"soft labels contain NaN or infinity (row {row})")
    if (a64 < 0).any():
        row = int(np.argwhere(a64 < 0)[0][0])
        raise InvalidInputError(f"soft labels contain negative values (row {row})")
    if (a64 > 1.0 + SOFT_LABEL_TOLERANCE).any():
        row = int(np.argwhere(a64 > 1.0 + SOFT_LABEL_TOLERANCE)[0][0])
        raise InvalidInputError(f"soft labels must be probabilities in [0, 1] (row {row})")
    sums = a64.sum(axis=1)
    off = np.abs(sums - 1.0) > SOFT_LABEL_TOLERANCE
    if off.any():
        row = int(np.argmax(off))
        raise InvalidInputError(
            f"soft label rows must sum to 1 (±{SOFT_LABEL_TOLERANCE}); row {row} sums to {sums[row]:.6g}"
        )
    return np.ascontiguousarray(arr, dtype=np.float32)


def is_soft(labels: Any) -> bool:
    """True when ``labels`` looks like an (n, C) numeric array rather than a sequence of label values."""
    if isinstance(labels, np.ndarray):
        return labels.ndim == 2
    if isinstance(labels, Sequence) and not isinstance(labels, (str, bytes)) and len(labels) > 0:
        first = labels[0]
        return isinstance(first, (Sequence, np.ndarray)) and not isinstance(first, (str, bytes))
    return False


def n_threads(value: int | None) -> int:
    """``None`` -> 0 (all cores); otherwise a positive int."""
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"n_threads must be an int or None, got {type(value).__name__}")
    if not 1 <= value <= MAX_THREADS:
        raise InvalidInputError(f"n_threads must be in 1..{MAX_THREADS} (or None for all cores), got {value}")
    return int(value)


def numeric_array(x: Any, *, ragged: str, not_numeric: str) -> np.ndarray:
    """``np.asarray(x)`` of a numeric (integer or floating) dtype: ragged nested sequences raise
    :class:`InvalidInputError` (``"{ragged}: ..."``), anything else :class:`TypeError`
    (``"{not_numeric}, got dtype ..."``)."""
    try:
        arr = np.asarray(x)
    except ValueError as e:  # ragged nested sequences
        raise InvalidInputError(f"{ragged}: {e}") from None
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)
    ):
        raise TypeError(f"{not_numeric}, got dtype {arr.dtype}")
    return arr


def matrix(x: Any, what: str) -> np.ndarray:
    """A finite, C-contiguous float32 2-D array (a 1-D input becomes one row)."""
    arr = numeric_array(
        x, ragged=f"{what} must form a rectangular array", not_numeric=f"{what} must be a numeric array"
    )
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise InvalidInputError(f"{what} must be 1-D or 2-D, got shape {arr.shape}")
    if arr.shape[1] == 0:
        raise InvalidInputError(f"{what} has zero-length vectors")
    finite_f32(arr, what)
    return np.ascontiguousarray(arr, dtype=np.float32)


def finite_f32(arr: np.ndarray, what: str) -> None:
    """Raise unless every value is finite and fits in float32 (checked before any cast warns)."""
    if np.issubdtype(arr.dtype, np.integer):
        return
    if not np.isfinite(arr).all():
        raise InvalidInputError(f"{what} contains NaN or infinity")
    if arr.size and float(np.abs(arr).max()) > _F32_MAX:
        raise InvalidInputError(f"{what} has values too large for float32")


def positive_int(
    value: Any,
    what: str,
    *,
    minimum: int = 1,
    maximum: int | None = None,
    allow_none: bool = False,
    error: type[Exception] = InvalidInputError,
) -> Any:
    """An int >= ``minimum`` (and <= ``maximum`` when given; ``None`` passes when ``allow_none``);
    a bool is not an int here."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{what} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise error(f"{what} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise error(f"{what} must be <= {maximum}, got {value}")
    return int(value)


def positive_number(
    value: Any, what: str, *, allow_none: bool = False, error: type[Exception] = InvalidInputError
) -> Any:
    """A finite number > 0 as a float (``None`` passes when ``allow_none``)."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{what} must be a number, got {type(value).__name__}")
    number = float(value)
    if not (math.isfinite(number) and number > 0):
        raise error(f"{what} must be > 0, got {value!r}")
    return number


def unit_rows(x: Any, *, dtype: type = np.float32) -> np.ndarray:
    """Rows of ``x`` (or a single vector, as one row) scaled to unit length, as ``dtype``. Norms are
    computed in float64, so huge or tiny float32 values neither overflow nor underflow; zero rows
    stay zero (the same convention as the Rust kernels)."""
    m64 = np.asarray(x, dtype=np.float64).reshape(-1, np.shape(x)[-1])
    norms = np.linalg.norm(m64, axis=1, keepdims=True)
    return np.divide(m64, norms, out=np.zeros_like(m64), where=norms > 0).astype(dtype, copy=False)
