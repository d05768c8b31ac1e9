"""Distributed embeddings: workers encode shards of the pairs and return additive statistics.

The Rust accumulator (``Stats::accumulate`` in rust/surrogate.rs) sums fixed pieces of 512 rows in
float64, in piece order, starting from zeros. Workers return the statistics of each such piece, and
the driver adds them in the same order starting from zeros, so the merged statistics — and the
embedding — are bit-identical to one local call whatever the number of shards or workers.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np
import ray

from taskspace import _checks
from taskspace.distributed._cluster import connect
from taskspace.embedding.surrogate import Mode, Surrogate, TaskStats
from taskspace.embedding.task_embedding import TaskEmbedding, warn_if_degenerate
from taskspace.errors import InvalidInputError

__all__ = ["dataset_embedding", "model_embedding", "stats"]

#: Rows per accumulation piece in the Rust kernel (ROWS_PER_PIECE in rust/surrogate.rs); shards
#: and the driver's additions follow these pieces. tests/test_distributed.py checks bit-identity.
PIECE = 512


@ray.remote
def _shard_stats(
    surrogate: Surrogate,
    texts: list[str],
    pairs: list[str] | None,
    outputs: Any,
    lo: int,
    mode: str,
) -> list[TaskStats]:
    """Statistics of each 512-row piece of one shard (``outputs`` is the whole run's array, or this
    shard's output texts; ``lo`` is the shard's first row)."""
    out = []
    for p0 in range(0, len(texts), PIECE):
        p1 = min(p0 + PIECE, len(texts))
        y = outputs[lo + p0 : lo + p1] if isinstance(outputs, np.ndarray) else outputs[p0:p1]
        out.append(
            surrogate.stats(
                texts[p0:p1],
                y,
                text_pairs=None if pairs is None else pairs[p0:p1],
                mode=mode,  # type: ignore[arg-type]
                n_threads=1,
            )
        )
    return out


def _zeros(s: TaskStats) -> TaskStats:
    return dataclasses.replace(
        s,
        n=0,
        sum_f=np.zeros_like(s.sum_f),
        sum_y=np.zeros_like(s.sum_y),
        ff=np.zeros_like(s.ff),
        fy=np.zeros_like(s.fy),
        yy=np.zeros_like(s.yy),
    )


def stats(
    surrogate: Surrogate,
    texts: Sequence[str],
    outputs: Any,
    text_pairs: Sequence[str] | None = None,
    *,
    mode: Mode = "label",
    shards: int = 8,
    ray_address: str | None = None,
) -> TaskStats:
    """``surrogate.stats(texts, outputs, ...)`` computed by ``shards`` Ray tasks; bit-identical.

    Label outputs (labels or an (n, C) array of label distributions) are validated and turned into
    rows on the driver and put into the object store once; each shard's texts (and output texts in
    text mode) travel with its task only. Each task returns one :class:`taskspace.TaskStats` per
    512 rows (about ``8 * (h*h + h*c + c*c)`` bytes each: 0.5 MB for h=256), which the driver adds
    in order.
    """
    if not isinstance(surrogate, Surrogate):
        raise TypeError(f"surrogate must be a taskspace.Surrogate, got {type(surrogate).__name__}")
    if mode not in ("label", "text"):
        raise InvalidInputError(f"mode must be 'label' or 'text', got {mode!r}")
    shards = _checks.positive_int(shards, "shards")
    t = _checks.texts_list(texts, "texts")
    _checks.check_encodable(t, "texts")
    n = len(t)
    if n == 0:
        raise InvalidInputError("texts is empty")
    pairs = None
    if text_pairs is not None:
        pairs = _checks.texts_list(text_pairs, "text_pairs")
        _checks.same_length(n, len(pairs), "text_pairs")
        _checks.check_encodable(pairs, "text_pairs")
    labels: tuple[str, ...] | None = None
    if mode == "label":
        # Hard labels become one-hot rows over the labels of the whole run here, so every piece
        # has the same columns as a local call (a piece missing a label would otherwise differ).
        if _checks.is_soft(outputs):
            y = _checks.soft_labels(outputs, n)
        else:
            y, labels = _checks.hard_labels(outputs, n)
    else:
        if _checks.is_soft(outputs):
            raise TypeError("text mode needs output texts (a sequence of str), not an array of label scores")
        out_texts = _checks.texts_list(outputs, "outputs")
        _checks.same_length(n, len(out_texts), "outputs")
        _checks.check_encodable(out_texts, "outputs")
    connect(ray_address)
    pieces = -(-n // PIECE)
    per_shard = -(-pieces // shards) * PIECE
    y_ref = ray.put(y) if mode == "label" else None
    refs = []
    for lo in range(0, n, per_shard):
        hi = min(lo + per_shard, n)
        outs = y_ref if mode == "label" else out_texts[lo:hi]
        sub_pairs = None if pairs is None else pairs[lo:hi]
        refs.append(_shard_stats.remote(surrogate, t[lo:hi], sub_pairs, outs, lo, mode))
    total: TaskStats | None = None
    for k, ref in enumerate(refs):  # in shard order: the additions must follow the pieces' order
        try:
            pieces_stats = ray.get(ref)
        except BaseException:
            for later in refs[k + 1 :]:  # only tasks not collected yet (cancelling a finished one
                ray.cancel(later)  # can crash Ray 2.60's driver)
            raise
        for piece in pieces_stats:
            total = _zeros(piece).merge(piece) if total is None else total.merge(piece)
    assert total is not None
    return total if labels is None else dataclasses.replace(total, labels=labels)


def model_embedding(
    surrogate: Surrogate,
    texts: Sequence[str],
    outputs: Any,
    text_pairs: Sequence[str] | None = None,
    *,
    mode: Mode = "label",
    name: str = "",
    meta: dict[str, Any] | None = None,
    shards: int = 8,
    ray_address: str | None = None,
) -> TaskEmbedding:
    """``surrogate.model_embedding(texts, outputs, ...)`` with the encoding spread over ``shards``
    Ray tasks; the vector is bit-identical to the local one (see :func:`stats`).

    Example:
        >>> import taskspace as ts, taskspace.distributed as tsd
        >>> sur = ts.Surrogate(features=32, dim=128)
        >>> texts = ["great", "awful", "superb", "bad"] * 500
        >>> m = tsd.model_embedding(sur, texts, ["+", "-", "+", "-"] * 500, shards=4)  # doctest: +SKIP
        >>> m == sur.model_embedding(texts, ["+", "-", "+", "-"] * 500)  # doctest: +SKIP
        True
    """
    s = stats(surrogate, texts, outputs, text_pairs, mode=mode, shards=shards, ray_address=ray_address)
    return warn_if_degenerate(surrogate.embed(s, name=name, kind="model", meta=meta))


def dataset_embedding(
    surrogate: Surrogate,
    texts: Sequence[str],
    labels: Any,
    text_pairs: Sequence[str] | None = None,
    *,
    mode: Mode = "label",
    name: str = "",
    meta: dict[str, Any] | None = None,
    shards: int = 8,
    ray_address: str | None = None,
) -> TaskEmbedding:
    """``surrogate.dataset_embedding(texts, labels, ...)`` on Ray; bit-identical (see :func:`stats`)."""
    s = stats(surrogate, texts, labels, text_pairs, mode=mode, shards=shards, ray_address=ray_address)
    return warn_if_degenerate(surrogate.embed(s, name=name, kind="dataset", meta=meta))
