"""Cosine similarity between task embeddings (or plain vectors)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from taskspace import _core, inputs
from taskspace.embedding import TaskEmbedding
from taskspace.errors import InvalidInputError

__all__ = ["similarity"]

Vectors = TaskEmbedding | Sequence[TaskEmbedding] | np.ndarray | Sequence[Sequence[float]]


def _as_matrix(x: Any, what: str) -> tuple[np.ndarray, list[TaskEmbedding]]:
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
    m = inputs.matrix(x, what)
    if m.shape[0] == 0:
        raise InvalidInputError(f"{what} is empty")
    return m, []


def similarity(
    a: Vectors,
    b: Vectors | None = None,
    *,
    out: np.ndarray | None = None,
    n_threads: int | None = None,
) -> np.ndarray:
    """Cosine similarity matrix (float32, shape (len(a), len(b))) between rows of ``a`` and ``b``.

    ``a`` and ``b`` are TaskEmbeddings, sequences of them, or float arrays of shape (n, d) / (d,).
    With ``b=None`` the rows of ``a`` are compared with each other. Embeddings from different
    surrogates or modes raise :class:`FingerprintMismatchError`. A zero vector (a degenerate task)
    has similarity 0 with everything. ``out`` may be a C-contiguous float32 array to fill.

    Example:
        >>> import numpy as np, taskspace as ts
        >>> ts.similarity(np.array([[1.0, 0.0], [1.0, 1.0]])).astype(float).round(3).tolist()
        [[1.0, 0.707], [0.707, 1.0]]
    """
    ma, ea = _as_matrix(a, "a")
    if b is None:
        mb, eb = ma, ea
    else:
        mb, eb = _as_matrix(b, "b")
    if ea and eb:
        ea[0].check_comparable(eb[0])
    if ma.shape[1] != mb.shape[1]:
        raise InvalidInputError(f"dimension mismatch: a has {ma.shape[1]}, b has {mb.shape[1]}")
    shape = (ma.shape[0], mb.shape[0])
    if out is None:
        out = np.empty(shape, dtype=np.float32)
    elif not isinstance(out, np.ndarray) or out.dtype != np.float32 or out.shape != shape:
        raise InvalidInputError(f"out must be a float32 array of shape {shape}")
    elif not out.flags.c_contiguous or not out.flags.writeable:
        raise InvalidInputError("out must be C-contiguous and writeable")
    _core.cosine(ma, mb, out, inputs.n_threads(n_threads))
    return out
