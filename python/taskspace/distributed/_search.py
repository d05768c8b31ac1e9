"""Distributed all-pairs top-k and threshold search: row blocks x column blocks as Ray tasks.

Each block pair runs taskspace's own kernel (:func:`taskspace.similarity` / :func:`taskspace.pairs_above`)
on one worker; the driver merges per row block. Every score is computed by the same kernel path as
a single local call, so results are identical bit for bit, and the merge uses the kernel's order
(score descending in IEEE total order, then the smaller id).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from typing import Any

import numpy as np
import ray

from taskspace import _checks
from taskspace.distributed._cluster import cluster_cpus, connect
from taskspace.errors import InvalidInputError
from taskspace.search.cosine import Pairs, TopK, Vectors, operands
from taskspace.search.cosine import pairs_above as local_pairs_above
from taskspace.search.cosine import similarity as local_similarity

__all__ = ["pairs_above", "topk"]

#: The kernel scores at most this many query rows by a direct path whose rounding differs from the
#: blocked GEMM path in the last bit (rust/similarity.rs, FEW_QUERIES). Row blocks therefore hold
#: more rows than this whenever the whole query set does, so every score takes the path a single
#: local call would take.
_FEW_QUERIES = 16
#: Default block size in bytes of float32 vectors: big enough that a task's kernel time dwarfs
#: Ray's per-task overhead (~1 ms), small enough that a worker holds two blocks comfortably.
_BLOCK_BYTES = 32 << 20


def _block_bounds(n: int, size: int) -> list[tuple[int, int]]:
    """Contiguous [lo, hi) blocks of about ``size`` rows; a last block too small for the kernel's
    blocked path is folded into the one before it."""
    bounds = [(lo, min(lo + size, n)) for lo in range(0, n, size)]
    if len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] <= _FEW_QUERIES:
        lo, _ = bounds[-2]
        bounds[-2:] = [(lo, n)]
    return bounds


def _block_rows(block_rows: int | None, d: int) -> int:
    if block_rows is None:
        return max(1024, _BLOCK_BYTES // (4 * d))
    return _checks.positive_int(block_rows, "block_rows", minimum=_FEW_QUERIES + 1)


def _order_key(scores: np.ndarray) -> np.ndarray:
    """int64 keys that order float32 scores like Rust's ``f32::total_cmp`` (-0.0 below 0.0)."""
    bits = np.ascontiguousarray(scores, dtype=np.float32).view(np.int32).astype(np.int64)
    return np.where(bits < 0, bits ^ 0x7FFFFFFF, bits)


def _merge(ids: np.ndarray, scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row's best k of the candidates (ids -1 / scores -inf are padding), best first."""
    key = _order_key(scores)
    pad = ids < 0
    # Padding sorts after every real candidate; among real ones: higher score, then smaller id.
    order = np.lexsort((ids, -key, pad), axis=1)[:, :k]
    return np.take_along_axis(ids, order, axis=1), np.take_along_axis(scores, order, axis=1)


def _pad(n: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    return np.full((n, k), -1, dtype=np.int64), np.full((n, k), -np.inf, dtype=np.float32)


@ray.remote
def _topk_block(
    a: np.ndarray, b: np.ndarray, k: int, c0: int, self_offset: int | None, threads: int
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k of rows of ``a`` among rows of ``b`` (numbered from ``c0``). With ``self_offset``,
    row t of ``a`` is column ``self_offset + t`` and is left out of its own results."""
    kk = k if self_offset is None else k + 1
    ids, scores = local_similarity(a, b, top_k=kk, n_threads=threads)
    ids = np.where(ids >= 0, ids + c0, -1)
    if self_offset is None:
        return ids, scores
    # Removing one candidate from a row's best k+1 leaves its best k others, in the same order.
    own = ids == (np.arange(a.shape[0], dtype=np.int64) + self_offset)[:, None]
    order = np.argsort(own, axis=1, kind="stable")[:, :k]
    # With fewer than k+1 columns (kk is clamped to the block) the own entry survives the cut: pad it.
    ids, scores = np.where(own, -1, ids), np.where(own, np.float32(-np.inf), scores)
    return np.take_along_axis(ids, order, axis=1), np.take_along_axis(scores, order, axis=1)


def _put_blocks(m: np.ndarray, bounds: list[tuple[int, int]]) -> list[ray.ObjectRef]:
    # One object per block, put once: a task fetches only the two blocks it works on.
    return [ray.put(np.ascontiguousarray(m[lo:hi])) for lo, hi in bounds]


def _window(max_in_flight: int | None) -> int:
    if max_in_flight is None:
        return 2 * cluster_cpus()
    return _checks.positive_int(max_in_flight, "max_in_flight")


def topk(
    A: Vectors,
    B: Vectors | None = None,
    k: int = 10,
    *,
    exclude_self: bool = False,
    ray_address: str | None = None,
    block_rows: int | None = None,
    cpus_per_task: int = 1,
    max_in_flight: int | None = None,
) -> TopK:
    """For each row of ``A``, its ``k`` most similar rows of ``B`` (or of ``A``), on a Ray cluster.

    The same result as ``taskspace.search.cosine(A, B, top_k=k, exclude_self=exclude_self)``, bit for
    bit: :class:`taskspace.TopK` ``(ids, scores)`` of shape (len(A), min(k, len(B))), best first, ties
    to the smaller id, rows with fewer than k candidates padded with id -1 / score -inf.

    ``A`` and ``B`` are cut into blocks of ``block_rows`` rows (default: about 32 MiB of vectors),
    each put into the object store once; one Ray task per (row block, column block) runs the fused
    top-k kernel on ``cpus_per_task`` threads, and the driver merges each row block's candidates.
    At most ``max_in_flight`` tasks (default: twice the cluster's CPUs) are queued at a time.
    A worker holds two blocks; the driver holds the inputs and the (len(A), k) result.

    Example:
        >>> import numpy as np, taskspace as ts, taskspace.distributed as tsd
        >>> x = np.random.default_rng(0).standard_normal((200, 8)).astype(np.float32)
        >>> res = tsd.topk(x, k=5, exclude_self=True, block_rows=64)  # doctest: +SKIP
        >>> (res.ids == ts.similarity(x, top_k=5, exclude_self=True).ids).all()  # doctest: +SKIP
        True
    """
    k = _checks.positive_int(k, "k")
    if not isinstance(exclude_self, bool):
        raise TypeError("exclude_self must be a bool")
    ma, mb = operands(A, B)
    if exclude_self and mb is not None:
        raise InvalidInputError("exclude_self applies only when B is None (A compared with itself)")
    k = min(k, ma.shape[0] if mb is None else mb.shape[0])  # as taskspace.similarity clamps it
    threads = _checks.n_threads(_checks.positive_int(cpus_per_task, "cpus_per_task"))
    size = _block_rows(block_rows, ma.shape[1])
    connect(ray_address)
    window = _window(max_in_flight)
    rows = _block_bounds(ma.shape[0], size)
    cols = rows if mb is None else _block_bounds(mb.shape[0], size)
    refs_a = _put_blocks(ma, rows)
    refs_b = refs_a if mb is None else _put_blocks(mb, cols)
    best = [_pad(hi - lo, k) for lo, hi in rows]
    todo = deque((r, c) for r in range(len(rows)) for c in range(len(cols)))
    task = _topk_block.options(num_cpus=cpus_per_task)
    running: dict[ray.ObjectRef, int] = {}
    try:
        while todo or running:
            while todo and len(running) < window:
                r, c = todo.popleft()
                own = rows[r][0] if (mb is None and exclude_self and r == c) else None
                ref = task.remote(refs_a[r], refs_b[c], k, cols[c][0], own, threads)
                running[ref] = r
            done, _ = ray.wait(list(running), num_returns=1)
            for ref in done:
                r = running.pop(ref)
                ids, scores = ray.get(ref)
                cur_ids, cur_scores = best[r]
                best[r] = _merge(np.hstack([cur_ids, ids]), np.hstack([cur_scores, scores]), k)
    finally:
        for ref in running:
            ray.cancel(ref)
    return TopK(np.vstack([b[0] for b in best]), np.vstack([b[1] for b in best]))


@ray.remote
def _pairs_block(
    a: np.ndarray, b: np.ndarray | None, threshold: float, r0: int, c0: int, threads: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs (i, j, score) with score >= threshold; ``b=None`` is the diagonal block (i < j only)."""
    found = list(local_pairs_above(a, b, threshold=threshold, block_rows=a.shape[0], n_threads=threads))
    i = np.concatenate([p.i for p in found]) + r0
    j = np.concatenate([p.j for p in found]) + (r0 if b is None else c0)
    s = np.concatenate([p.scores for p in found])
    return i, j, s


def pairs_above(
    A: Vectors,
    B: Vectors | None = None,
    *,
    threshold: float,
    ray_address: str | None = None,
    block_rows: int | None = None,
    cpus_per_task: int = 1,
    max_in_flight: int | None = None,
) -> Iterator[Pairs]:
    """Stream all pairs with cosine >= ``threshold`` on a Ray cluster, one row block at a time.

    The same pairs (and scores, bit for bit) as :func:`taskspace.pairs_above`: with ``B=None`` the
    pairs ``i < j`` of ``A``, otherwise every (row of A, row of B); each yielded
    :class:`taskspace.Pairs` covers one block of ``block_rows`` rows of ``A``, ordered by i then j,
    and blocks come in row order. With ``B=None`` only the block pairs on or above the diagonal are
    computed. Blocks and ``max_in_flight`` are as in :func:`topk`.

    Example:
        >>> import numpy as np, taskspace.distributed as tsd
        >>> x = np.random.default_rng(0).standard_normal((300, 4)).astype(np.float32)
        >>> n = sum(len(p.i) for p in tsd.pairs_above(x, threshold=0.95))  # doctest: +SKIP
    """
    try:
        t = float(threshold)
    except (TypeError, ValueError):
        raise TypeError(f"threshold must be a number, got {type(threshold).__name__}") from None
    if not np.isfinite(t):
        raise InvalidInputError("threshold must be finite")
    ma, mb = operands(A, B)
    threads = _checks.n_threads(_checks.positive_int(cpus_per_task, "cpus_per_task"))
    size = _block_rows(block_rows, ma.shape[1])
    connect(ray_address)
    window = _window(max_in_flight)
    return _pairs_stream(ma, mb, t, size, threads, cpus_per_task, window)


def _pairs_stream(
    ma: np.ndarray, mb: np.ndarray | None, t: float, size: int, threads: int, cpus: int, window: int
) -> Iterator[Pairs]:
    rows = _block_bounds(ma.shape[0], size)
    cols = rows if mb is None else _block_bounds(mb.shape[0], size)
    refs_a = _put_blocks(ma, rows)
    refs_b = refs_a if mb is None else _put_blocks(mb, cols)
    todo: deque[tuple[int, int]] = deque(
        (r, c) for r in range(len(rows)) for c in range(r if mb is None else 0, len(cols))
    )
    expected = [len(cols) - (r if mb is None else 0) for r in range(len(rows))]
    found: list[dict[int, Any]] = [{} for _ in rows]
    task = _pairs_block.options(num_cpus=cpus)
    running: dict[ray.ObjectRef, tuple[int, int]] = {}
    nxt = 0
    try:
        while nxt < len(rows):
            while todo and len(running) < window:
                r, c = todo.popleft()
                diagonal = mb is None and r == c
                b = None if diagonal else refs_b[c]
                running[task.remote(refs_a[r], b, t, rows[r][0], cols[c][0], threads)] = (r, c)
            if len(found[nxt]) < expected[nxt]:
                done, _ = ray.wait(list(running), num_returns=1)
                for ref in done:
                    r, c = running.pop(ref)
                    found[r][c] = ray.get(ref)
                continue
            parts = [found[nxt][c] for c in sorted(found[nxt])]
            found[nxt] = {}
            i = np.concatenate([p[0] for p in parts])
            j = np.concatenate([p[1] for p in parts])
            s = np.concatenate([p[2] for p in parts])
            order = np.lexsort((j, i))
            yield Pairs(i[order], j[order], s[order])
            nxt += 1
    finally:
        for ref in running:
            ray.cancel(ref)
