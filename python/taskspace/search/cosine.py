"""Cosine similarity between task embeddings (or plain vectors): full matrices, fused top-k, and
streaming threshold search. The kernels are in Rust (``rust/similarity.rs``) and release the GIL."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple, overload

import numpy as np

from taskspace import _checks, _core
from taskspace.embedding.task_embedding import TaskEmbedding
from taskspace.errors import InvalidInputError

__all__ = ["Pairs", "TopK", "Vectors", "as_vectors", "operands", "pairs_above", "similarity"]

Vectors = TaskEmbedding | Sequence[TaskEmbedding] | np.ndarray | Sequence[Sequence[float]]


class TopK(NamedTuple):
    """Per query row: the ids (int64) and cosines (float32) of its best matches, best first; ties go
    to the smaller id. Missing candidates (a row left out of its own results) are id -1, score -inf."""

    ids: np.ndarray
    scores: np.ndarray


class Pairs(NamedTuple):
    """A block of pairs (row of a, row of b, cosine), ordered by i then j."""

    i: np.ndarray
    j: np.ndarray
    scores: np.ndarray


def as_vectors(x: Any, what: str) -> tuple[np.ndarray, list[TaskEmbedding]]:
    """``x`` as a finite float32 (n, d) matrix (a 1-D input is one row), and the TaskEmbeddings it
    came from (empty for plain vectors).

    ``x`` is a TaskEmbedding, a sequence of them (all comparable: one surrogate and mode, else
    :class:`FingerprintMismatchError`; mixing them with plain vectors is a :class:`TypeError`), or a
    numeric array. Nothing is scaled: rows keep their lengths.
    """
    if isinstance(x, TaskEmbedding):
        return x.vector[None, :], [x]
    if (
        isinstance(x, Sequence)
        and not isinstance(x, (str, bytes))
        and any(isinstance(e, TaskEmbedding) for e in x)
    ):
        embs = list(x)
        for i, e in enumerate(embs):
            if not isinstance(e, TaskEmbedding):
                raise TypeError(f"{what}[{i}] is {type(e).__name__}; do not mix TaskEmbedding and vectors")
            e.check_comparable(embs[0])
        if len({e.dim for e in embs}) > 1:
            raise InvalidInputError(f"{what} holds embeddings of different lengths")
        return np.stack([e.vector for e in embs]), embs
    m = _checks.matrix(x, what)
    if m.shape[0] == 0:
        raise InvalidInputError(f"{what} is empty")
    return m, []


def operands(a: Vectors, b: Vectors | None) -> tuple[np.ndarray, np.ndarray | None]:
    """The float32 matrices of ``a`` and ``b`` (``None`` when ``b`` is), checked to be comparable
    (the same surrogate and mode for embeddings, the same length for vectors), as :func:`similarity`
    and :func:`pairs_above` take them."""
    ma, ea = as_vectors(a, "a")
    if b is None:
        return ma, None
    mb, eb = as_vectors(b, "b")
    if ea and eb:
        ea[0].check_comparable(eb[0])
    if ma.shape[1] != mb.shape[1]:
        raise InvalidInputError(f"dimension mismatch: a has {ma.shape[1]}, b has {mb.shape[1]}")
    return ma, mb


@overload
def similarity(
    a: Vectors,
    b: Vectors | None = None,
    *,
    top_k: None = None,
    exclude_self: bool = False,
    out: np.ndarray | None = None,
    n_threads: int | None = None,
) -> np.ndarray: ...
@overload
def similarity(
    a: Vectors,
    b: Vectors | None = None,
    *,
    top_k: int,
    exclude_self: bool = False,
    out: None = None,
    n_threads: int | None = None,
) -> TopK: ...
def similarity(
    a: Vectors,
    b: Vectors | None = None,
    *,
    top_k: int | None = None,
    exclude_self: bool = False,
    out: np.ndarray | None = None,
    n_threads: int | None = None,
) -> np.ndarray | TopK:
    """Cosine similarity between rows of ``a`` and rows of ``b`` (or of ``a`` when ``b`` is None).

    ``a`` and ``b`` are TaskEmbeddings, sequences of them, or float arrays of shape (n, d) / (d,)
    (float64 and non-contiguous arrays are converted). Embeddings from different surrogates or modes
    raise :class:`FingerprintMismatchError`. A zero vector (a degenerate task) has similarity 0 with
    everything, including itself.

    Without ``top_k``: the float32 matrix of shape (len(a), len(b)); ``out`` may be a C-contiguous
    float32 array of that shape to fill. With ``b=None`` only half of it is computed.

    With ``top_k=k``: a :class:`TopK` ``(ids, scores)`` of shape (len(a), min(k, len(b))) per query
    row (``k`` is clamped to the number of candidate rows, so any positive ``k`` is safe), computed
    block by block without ever holding the full matrix. ``exclude_self=True`` (with ``b=None``)
    leaves each row out of its own results; its last column is then padded with id -1 and score
    -inf when ``k`` reaches len(a).

    Example:
        >>> import numpy as np, taskspace as ts
        >>> ts.similarity(np.array([[1.0, 0.0], [1.0, 1.0]])).astype(float).round(3).tolist()
        [[1.0, 0.707], [0.707, 1.0]]
        >>> x = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])
        >>> ts.similarity(x, top_k=1, exclude_self=True).ids.tolist()
        [[1], [0], [1]]
    """
    threads = _checks.n_threads(n_threads)
    if not isinstance(exclude_self, bool):
        raise TypeError("exclude_self must be a bool")
    ma, mb = operands(a, b)
    if top_k is not None:
        k = _checks.positive_int(top_k, "top_k")
        if out is not None:
            raise InvalidInputError("out= is for the full matrix; it cannot be combined with top_k")
        if exclude_self and mb is not None:
            raise InvalidInputError("exclude_self applies only when b is None (a compared with itself)")
        k = min(k, ma.shape[0] if mb is None else mb.shape[0])  # more columns than rows is padding
        ids, scores = _core.top_k(ma, mb, k, exclude_self, threads)
        return TopK(ids.reshape(ma.shape[0], k), scores.reshape(ma.shape[0], k))
    if exclude_self:
        raise InvalidInputError("exclude_self needs top_k")
    shape = (ma.shape[0], ma.shape[0] if mb is None else mb.shape[0])
    if out is None:
        out = np.empty(shape, dtype=np.float32)
    elif not isinstance(out, np.ndarray) or out.dtype != np.float32 or out.shape != shape:
        raise InvalidInputError(f"out must be a float32 array of shape {shape}")
    elif not out.flags.c_contiguous or not out.flags.writeable:
        raise InvalidInputError("out must be C-contiguous and writeable")
    _core.cosine(ma, mb, out, threads)
    return out


def pairs_above(
    a: Vectors,
    b: Vectors | None = None,
    *,
    threshold: float,
    block_rows: int = 8192,
    n_threads: int | None = None,
) -> Iterator[Pairs]:
    """Stream all pairs with cosine ≥ ``threshold`` (near-duplicate detection), block by block.

    With ``b=None`` the pairs are rows ``i < j`` of ``a``; otherwise every (row of a, row of b).
    Each yielded :class:`Pairs` covers ``block_rows`` rows of ``a``, so memory stays bounded however
    many pairs there are in total.

    Example:
        >>> import numpy as np, taskspace as ts
        >>> x = np.array([[1.0, 0.0], [0.99, 0.05], [0.0, 1.0]])
        >>> [(int(i), int(j)) for p in ts.pairs_above(x, threshold=0.9) for i, j in zip(p.i, p.j)]
        [(0, 1)]
    """
    threads = _checks.n_threads(n_threads)
    try:
        t = float(threshold)
    except (TypeError, ValueError):
        raise TypeError(f"threshold must be a number, got {type(threshold).__name__}") from None
    if not np.isfinite(t):
        raise InvalidInputError("threshold must be finite")
    if isinstance(block_rows, bool) or not isinstance(block_rows, (int, np.integer)) or block_rows < 1:
        raise InvalidInputError(f"block_rows must be a positive int, got {block_rows!r}")
    ma, mb = operands(a, b)
    return _pairs_blocks(ma, mb, t, int(block_rows), threads)


def _pairs_blocks(
    ma: np.ndarray, mb: np.ndarray | None, t: float, block: int, threads: int
) -> Iterator[Pairs]:
    for r0 in range(0, ma.shape[0], block):
        if mb is None:
            i, j, s = _core.pairs_above(ma[r0 : r0 + block], ma, t, r0, True, threads)
        else:
            i, j, s = _core.pairs_above(ma[r0 : r0 + block], mb, t, r0, False, threads)
        yield Pairs(i, j, s)
