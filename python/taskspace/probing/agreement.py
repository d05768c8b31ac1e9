"""Agreement: how often two models (or prompts) give the same answers on the same inputs.

Task-embedding similarity says whether two models do the *same kind of task*; agreement says whether
they give the *same answers*. Both are useful side by side (``taskspace compare --agreement``).

* Labels (str or int): exact agreement (fraction of equal answers) and Cohen's κ (agreement beyond
  what the two label frequencies give by chance; ``nan`` when undefined: both always give the one
  same label); the mean total-variation distance of one-hot rows is ``1 - exact``.
* Soft labels ((n, C) label distributions, same columns): exact agreement and κ of the arg-max
  labels, and the mean total-variation distance ½·Σ|p - q| per input.
* Free text (``mode="text"``): exact agreement of the texts after whitespace normalisation, and
  the mean cosine of their hashed n-gram features (the surrogate's featurizer: lowercase word 1-2
  grams and character 3-5 grams, sublinear tf, unit length), 1 for identical wording.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

from taskspace import _checks, _core
from taskspace.errors import InvalidInputError

__all__ = ["Agreement", "agreement", "agreement_matrix"]

_TEXT_HASH_BITS = 20


@dataclass(frozen=True)
class Agreement:
    """The result of :func:`agreement`; a field that does not apply to the output kind is ``None``.

    Attributes:
        kind: ``"label"``, ``"soft"`` or ``"text"``.
        n: number of inputs compared.
        exact: fraction of inputs with the same answer (soft labels: the same arg-max label).
        kappa: Cohen's κ (labels and soft labels' arg-max; ``nan`` when undefined).
        tv: mean total-variation distance between the answers' label distributions (labels and soft).
        text_similarity: mean cosine of the answers' hashed n-gram features (text).
    """

    kind: str
    n: int
    exact: float
    kappa: float | None = None
    tv: float | None = None
    text_similarity: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict."""
        return asdict(self)


def agreement(outputs_a: Any, outputs_b: Any, *, mode: Literal["label", "text"] = "label") -> Agreement:
    """Agreement between two models' outputs on the same inputs (aligned, equal length).

    Args:
        outputs_a, outputs_b: both labels (a sequence of str or int), both (n, C) label
            distributions with the same C, or — with ``mode="text"`` — both sequences of texts.
        mode: ``"label"`` (default) or ``"text"`` (outputs are free texts).

    Raises:
        InvalidInputError: different lengths, no outputs, one run of labels and one of
            distributions, soft labels with different columns or rows that are not distributions.
        TypeError: outputs that are not str/int labels (or texts).

    Example:
        >>> import taskspace as ts
        >>> a = ts.agreement(["pos", "neg", "pos", "neg"], ["pos", "neg", "neg", "neg"])
        >>> a.exact, round(a.kappa, 3)
        (0.75, 0.5)
        >>> ts.agreement(["a fine film"], ["a  fine film "], mode="text").exact
        1.0
    """
    if mode not in ("label", "text"):
        raise InvalidInputError(f"mode must be 'label' or 'text', got {mode!r}")
    soft = (_checks.is_soft(outputs_a), _checks.is_soft(outputs_b))
    if soft[0] != soft[1]:
        raise InvalidInputError(
            "mixed output kinds: one is an (n, C) array of label distributions, the other is not"
        )
    if mode == "text":
        if soft[0]:
            raise TypeError("text mode compares output texts, not arrays of label scores")
        a, b = _values(outputs_a, "outputs_a", text=True), _values(outputs_b, "outputs_b", text=True)
        _same_length(a, b)
        na = [" ".join(t.split()) for t in a]
        nb = [" ".join(t.split()) for t in b]
        exact = float(np.mean([x == y for x, y in zip(na, nb, strict=True)]))
        return Agreement("text", len(a), exact, text_similarity=_text_similarity(a, b))
    if soft[0]:
        p = _checks.soft_labels(outputs_a, len(outputs_a)).astype(np.float64)
        q = _checks.soft_labels(outputs_b, len(outputs_b)).astype(np.float64)
        if p.shape[0] != q.shape[0]:
            raise InvalidInputError(f"outputs_a has {p.shape[0]} rows but outputs_b has {q.shape[0]}")
        if p.shape[1] != q.shape[1]:
            raise InvalidInputError(
                f"outputs_a has {p.shape[1]} label columns but outputs_b has {q.shape[1]}: "
                "soft labels must share their columns"
            )
        la, lb = p.argmax(axis=1), q.argmax(axis=1)
        tv = float(0.5 * np.abs(p - q).sum(axis=1).mean())
        return Agreement("soft", len(la), float(np.mean(la == lb)), kappa=_kappa(la, lb), tv=tv)
    a, b = _values(outputs_a, "outputs_a", text=False), _values(outputs_b, "outputs_b", text=False)
    _same_length(a, b)
    kinds = {type(x) for x in a} | {type(x) for x in b}
    if len(kinds) > 1:
        raise InvalidInputError("mixed label types: labels must be all str or all int")
    codes = {v: i for i, v in enumerate(sorted(set(a) | set(b)))}
    ca = np.array([codes[x] for x in a])
    cb = np.array([codes[x] for x in b])
    exact = float(np.mean(ca == cb))
    return Agreement("label", len(a), exact, kappa=_kappa(ca, cb), tv=1.0 - exact)


def agreement_matrix(
    outputs: Mapping[str, Sequence[Any]], *, mode: Literal["label", "text"] = "label"
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Pairwise agreement of several models' answers to the same inputs.

    Args:
        outputs: model name -> its answers, aligned across models (labels, or texts with
            ``mode="text"``); ``None`` where a model has no answer: each pair is compared on the
            inputs both answered.
        mode: as for :func:`agreement`.

    Returns:
        ``(names, kappa, exact)``: names in the given order and two symmetric float64 matrices,
        Cohen's κ (``nan`` in text mode, where it does not apply, and where it is undefined) and
        exact agreement; ``nan`` for a pair with no input answered by both.

    Example:
        >>> from taskspace.probing.agreement import agreement_matrix
        >>> names, kappa, exact = agreement_matrix({"a": ["x", "y", None], "b": ["x", "x", "y"]})
        >>> names, float(exact[0, 1])
        (['a', 'b'], 0.5)
    """
    if not isinstance(outputs, Mapping) or not outputs:
        raise InvalidInputError("outputs must be a non-empty mapping model name -> answers")
    names = list(outputs)
    runs = [list(outputs[n]) for n in names]
    lengths = {len(r) for r in runs}
    if len(lengths) != 1:
        raise InvalidInputError(
            f"every model needs one answer (or None) per input; lengths: {sorted(lengths)}"
        )
    k = len(names)
    kappa = np.full((k, k), np.nan)
    exact = np.full((k, k), np.nan)
    for i in range(k):
        for j in range(i, k):
            both = [
                t
                for t, (a, b) in enumerate(zip(runs[i], runs[j], strict=True))
                if a is not None and b is not None
            ]
            if not both:
                continue
            r = agreement([runs[i][t] for t in both], [runs[j][t] for t in both], mode=mode)
            kappa[i, j] = kappa[j, i] = np.nan if r.kappa is None else r.kappa
            exact[i, j] = exact[j, i] = r.exact
    return names, kappa, exact


def _values(outputs: Any, what: str, *, text: bool) -> list[Any]:
    if isinstance(outputs, (str, bytes)) or not isinstance(outputs, (Sequence, np.ndarray)):
        raise TypeError(f"{what} must be a sequence of outputs, got {type(outputs).__name__}")
    if isinstance(outputs, np.ndarray):
        if outputs.ndim != 1:
            raise InvalidInputError(f"{what} must be 1-D (or an (n, C) array of label distributions)")
        outputs = outputs.tolist()
    values = list(outputs)
    if not values:
        raise InvalidInputError(f"{what} is empty")
    for i, v in enumerate(values):
        ok = isinstance(v, str) if text else isinstance(v, (str, int, np.integer)) and not isinstance(v, bool)
        if not ok:
            want = "a str" if text else "a label (str or int)"
            raise TypeError(f"{what}[{i}] must be {want}, got {type(v).__name__}")
    if not text:
        values = [int(v) if isinstance(v, np.integer) else v for v in values]
    else:
        _checks.check_encodable(values, what)
    return values


def _same_length(a: list[Any], b: list[Any]) -> None:
    if len(a) != len(b):
        raise InvalidInputError(f"outputs_a has {len(a)} outputs but outputs_b has {len(b)}")


def _kappa(a: np.ndarray, b: np.ndarray) -> float:
    """Cohen's κ of two integer-coded label arrays; nan when chance agreement is 1 (undefined)."""
    k = int(max(a.max(), b.max())) + 1
    pa = np.bincount(a, minlength=k) / len(a)
    pb = np.bincount(b, minlength=k) / len(b)
    observed = float(np.mean(a == b))
    chance = float(pa @ pb)
    if chance >= 1.0:
        return float("nan")
    return (observed - chance) / (1.0 - chance)


def _text_similarity(a: list[str], b: list[str]) -> float:
    """Mean cosine of the texts' hashed n-gram features, pair by pair (two empty texts: 1)."""
    n = len(a)
    ip_a, ix_a, va = _core.featurize(a, None, _core.NS_TEXT, _TEXT_HASH_BITS, 0)
    ip_b, ix_b, vb = _core.featurize(b, None, _core.NS_TEXT, _TEXT_HASH_BITS, 0)
    rows_a = np.repeat(np.arange(n), np.diff(ip_a.astype(np.int64)))
    rows_b = np.repeat(np.arange(n), np.diff(ip_b.astype(np.int64)))
    key_a = rows_a.astype(np.int64) << _TEXT_HASH_BITS | ix_a.astype(np.int64)
    key_b = rows_b.astype(np.int64) << _TEXT_HASH_BITS | ix_b.astype(np.int64)
    _, ia, ib = np.intersect1d(key_a, key_b, assume_unique=True, return_indices=True)
    dots = np.bincount(rows_a[ia], weights=va[ia].astype(np.float64) * vb[ib], minlength=n)
    norm_a = np.sqrt(np.bincount(rows_a, weights=va.astype(np.float64) ** 2, minlength=n))
    norm_b = np.sqrt(np.bincount(rows_b, weights=vb.astype(np.float64) ** 2, minlength=n))
    both_empty = (norm_a == 0) & (norm_b == 0)
    denom = np.where(norm_a * norm_b > 0, norm_a * norm_b, 1.0)
    cos = np.where(both_empty, 1.0, np.clip(dots / denom, -1.0, 1.0))
    return float(cos.mean())
