"""Nearest-neighbour search over task embeddings: an HNSW graph (hnswlib) behind a safe, typed API.

:class:`Index` adds what raw hnswlib leaves to its users: int64 ids of the caller's choosing (mapped
to hnswlib's internal labels), automatic growth, named and padded results, an ``allowed_ids`` filter,
exact search through taskspace's own kernel, deletions with a tombstone count and :meth:`Index.compact`,
crash-safe saves, and a readers-writer lock so that searches run in parallel with each other (hnswlib
releases the GIL) but never with a write.

The metric is cosine: distances are ``1 - cos`` in ``[0, 2]``. The cosine of a zero vector is
undefined, so zero vectors are refused, as items and as queries (a degenerate task embedding is the
zero vector: it is near nothing).

Memory: besides hnswlib's graph (about ``dim * 4 + M * 8`` bytes per item) the index keeps a float32
copy of the vectors scaled to unit length (``dim * 4`` bytes per item), which exact search,
``compact()`` and ``save()`` read.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import json
import os
import tempfile
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

import hnswlib
import numpy as np

from taskspace import _checks
from taskspace.embedding.task_embedding import TaskEmbedding
from taskspace.errors import FingerprintMismatchError, InvalidInputError
from taskspace.search.cosine import as_vectors, similarity

__all__ = ["EXACT_MAX", "Index", "SearchResult"]

#: A search restricted by ``allowed_ids`` to at most this many items is answered exactly (a brute-force
#: scan of that many vectors costs less than a filtered graph walk, and it is exact).
EXACT_MAX = 10_000

FORMAT = "taskspace.Index/1"
MANIFEST = "index.json"
METRICS = ("cosine",)

_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1
#: hnswlib's labels are size_t; ours are dense 0..n-1 and its graph is addressed with uint32.
_MAX_ITEMS = 2**32 - 2
#: Exact search gathers live or allowed items in blocks of this many rows (the fused top-k kernel
#: itself never holds more than a block of the similarity matrix).
_ITEM_BLOCK = 65_536
_HASH_CHUNK = 1 << 22
#: Squared norms below this take the float64 path (float32 loses precision among subnormals).
_TINY = 1e-30
#: hnswlib caps M at 10,000 (its link counts are 16-bit, and 2·M links are kept on level 0).
_MAX_M = 10_000
#: Largest ef / ef_construction: beyond the item count they only mean "exhaustive".
_MAX_EF = 2**31 - 1


def _physical_memory() -> int:
    """Bytes of RAM on this machine (a generous fallback where the OS does not say)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return 1 << 40


def _item_bytes(dim: int, M: int) -> int:
    """About what one item costs: hnswlib's copy and links, our unit copy, id and liveness."""
    return 8 * dim + 8 * M + 96


def _max_items(dim: int, M: int) -> int:
    """How many items of this size the machine's memory can hold (capped at hnswlib's limit)."""
    return min(_physical_memory() // _item_bytes(dim, M), _MAX_ITEMS)


def _check_room(dim: int, M: int, capacity: int) -> None:
    """Raise, naming the argument, when ``dim`` or ``capacity`` cannot fit in this machine's memory
    (checked before hnswlib allocates: it would raise a bare ``std::bad_alloc`` or worse)."""
    mem, item = _physical_memory(), _item_bytes(dim, M)
    if item > mem:
        raise InvalidInputError(
            f"dim={dim}: one item needs about {item / 2**30:.3g} GiB, more than this machine's "
            f"{mem / 2**30:.3g} GiB of memory"
        )
    if capacity * item > mem:
        raise InvalidInputError(
            f"capacity={capacity} items of dim={dim} need about {capacity * item / 2**30:.3g} GiB, more "
            f"than this machine's {mem / 2**30:.3g} GiB of memory (at most {mem // item} items); the "
            f"index grows by itself, so start smaller"
        )


_F32 = np.dtype(np.float32)
#: Exact search for at most this many queries uses a BLAS product instead of the top-k kernel.
_FEW_QUERIES = 16
#: hnswlib's message when a search finds fewer than k items (heavy filtering or many deletions).
_TOO_FEW = "Cannot return the results in a contiguous 2D array"
#: Template of a one-query ``counts`` array (copying it is cheaper than building one).
_ONE_COUNT = np.zeros(1, dtype=np.int64)


class SearchResult(NamedTuple):
    """Result of :meth:`Index.search`, one row per query, nearest first.

    Attributes:
        ids: int64 ``(q, k)`` ids of the nearest items; ``-1`` pads rows with fewer than k results.
        distances: float32 ``(q, k)`` cosine distances ``1 - cos`` in ``[0, 2]``, ascending; ``inf`` pads.
        counts: int64 ``(q,)`` number of real results in each row.
    """

    ids: np.ndarray
    distances: np.ndarray
    counts: np.ndarray


# -- the exact kernel -------------------------------------------------------------------------------


def _top_k(
    queries: np.ndarray, items: np.ndarray, k: int, n_threads: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """Per query: positions (int64, ``-1`` padded) and cosines (float32, ``-inf`` padded) of the k best.

    Both arguments hold unit rows. A batch goes to taskspace's fused top-k kernel; a few queries go
    to one BLAS product instead, because the kernel's fixed cost per call (preparing every item row)
    dominates when there are only a handful of query rows.
    """
    if queries.shape[0] > _FEW_QUERIES:
        res = similarity(queries, items, top_k=k, n_threads=n_threads)
        return res.ids, res.scores
    scores = queries @ items.T
    q, m = scores.shape
    kk = min(k, m)
    if kk < m:
        part = np.argpartition(-scores, kk - 1, axis=1)[:, :kk]
    else:
        part = np.broadcast_to(np.arange(m), (q, m))
    part_scores = np.take_along_axis(scores, part, axis=1)
    order = np.argsort(-part_scores, axis=1, kind="stable")
    pos = np.full((q, k), -1, dtype=np.int64)
    best = np.full((q, k), -np.inf, dtype=np.float32)
    pos[:, :kk] = np.take_along_axis(part, order, axis=1)
    best[:, :kk] = np.take_along_axis(part_scores, order, axis=1)
    return pos, best


def _merge(
    labels: np.ndarray, scores: np.ndarray, new_labels: np.ndarray, new_scores: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    k = labels.shape[1]
    all_labels = np.concatenate([labels, new_labels], axis=1)
    all_scores = np.concatenate([scores, new_scores], axis=1)
    order = np.argsort(-all_scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(all_labels, order, axis=1), np.take_along_axis(all_scores, order, axis=1)


# -- validation -------------------------------------------------------------------------------------


def _as_ids(ids: Any, what: str) -> np.ndarray:
    """A 1-D int64 array from an int, a sequence of ints or an integer array; range checked, never wrapped."""
    if isinstance(ids, (bool, np.bool_, str, bytes)):
        raise TypeError(f"{what} must be ints, got {type(ids).__name__}")
    if isinstance(ids, (int, np.integer)):
        ids = [ids]
    if isinstance(ids, np.ndarray):
        arr = ids.reshape(1) if ids.ndim == 0 else ids
        if arr.ndim != 1:
            raise InvalidInputError(f"{what} must be 1-D, got shape {arr.shape}")
        if arr.dtype == object:
            return _as_ids(arr.tolist(), what)
        if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
            raise TypeError(f"{what} must be integers, got dtype {arr.dtype}")
        if arr.dtype == np.uint64 and arr.size and int(arr.max()) > _INT64_MAX:
            raise InvalidInputError(f"{what} holds {int(arr.max())}, outside the int64 range")
        return arr.astype(np.int64)
    if not isinstance(ids, Sequence):
        try:
            ids = list(ids)
        except TypeError:
            raise TypeError(f"{what} must be a sequence of ints, got {type(ids).__name__}") from None
    values = list(ids)
    for i, v in enumerate(values):
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
            raise TypeError(f"{what}[{i}] must be an int, got {type(v).__name__}")
        if not _INT64_MIN <= int(v) <= _INT64_MAX:
            raise InvalidInputError(f"{what}[{i}] = {int(v)} is outside the int64 range")
    return np.array(values, dtype=np.int64).reshape(-1)


def _unit_rows(m: np.ndarray, what: str) -> np.ndarray:
    """Rows scaled to unit length (computed in float64, so huge float32 values do not overflow)."""
    zero = np.flatnonzero(~m.any(axis=1))
    if zero.size:
        raise InvalidInputError(
            f"{what}[{int(zero[0])}] is the zero vector: its cosine with anything is undefined "
            "(a degenerate task embedding is near nothing), so it cannot be indexed or searched for"
        )
    return _checks.unit_rows(m)


def _normalized(rows: np.ndarray) -> np.ndarray:
    """Validated non-zero rows scaled to unit length: in float32 when the squared norms are safely
    representable, else (huge or tiny values) in float64."""
    sq = np.einsum("ij,ij->i", rows, rows)
    if float(sq.min()) > _TINY and float(sq.max()) < np.inf:
        return rows / np.sqrt(sq)[:, None]
    return _unit_rows(rows, "rows")


# -- the lock ---------------------------------------------------------------------------------------


class _SearchWriteLock:
    """Readers-writer lock whose readers share only while they agree on hnswlib's ``ef``.

    hnswlib keeps ``ef`` on the index, not per query, so searches with different ``ef`` must not
    overlap: a reader passes a key (its ``ef``), or ``None`` when ``ef`` does not matter to it (exact
    search, save). Writers are exclusive and preferred (no new reader starts while one waits), and a
    reader of the current key waits while readers of another key are waiting, so nobody starves.
    """

    def __init__(self, set_key: Callable[[int], None]) -> None:
        # Fast paths take the mutex directly (a C-level context manager); waiting uses the condition.
        self._mutex = threading.Lock()
        self._cond = threading.Condition(self._mutex)
        self._set_key = set_key
        self._readers = 0
        self._pinned = 0  # readers holding self._key
        self._key: int | None = None
        self._writer = False
        self._writers_waiting = 0
        self._keys_waiting: Counter[int] = Counter()
        self._sleepers = 0  # threads inside a wait loop: only then is a notify needed

    def _may_read(self, key: int | None) -> bool:
        if self._writer or self._writers_waiting:
            return False
        if key is None or self._pinned == 0:
            return True
        if key != self._key:
            return False
        return not self._keys_waiting or sum(self._keys_waiting.values()) == self._keys_waiting[key]

    def acquire_read(self, key: int | None) -> None:
        with self._mutex:
            # The common case first, in few operations (single-query latency): no writer, nobody
            # waiting for another key, and this key already set or nothing pinned. Then
            # `_may_read` is True.
            if (
                self._writer
                or self._writers_waiting
                or self._keys_waiting
                or (self._pinned and key != self._key and key is not None)
            ) and not self._may_read(key):
                self._sleepers += 1
                if key is not None:
                    self._keys_waiting[key] += 1
                try:
                    while not self._may_read(key):
                        self._cond.wait()
                finally:
                    self._sleepers -= 1
                    if key is not None:
                        self._keys_waiting[key] -= 1
                        if not self._keys_waiting[key]:
                            del self._keys_waiting[key]
                    if self._sleepers:  # one waiter fewer may let others of this key in
                        self._cond.notify_all()
            if key is not None:
                if self._pinned == 0 and self._key != key:
                    self._set_key(key)
                    self._key = key
                self._pinned += 1
            self._readers += 1

    def release_read(self, key: int | None) -> None:
        with self._mutex:
            self._readers -= 1
            if key is not None:
                self._pinned -= 1
            if self._sleepers and (self._pinned == 0 or self._readers == 0):
                self._cond.notify_all()

    @contextmanager
    def read(self, key: int | None) -> Iterator[None]:
        self.acquire_read(key)
        try:
            yield
        finally:
            self.release_read(key)

    def acquire_write(self) -> None:
        with self._mutex:
            self._writers_waiting += 1
            self._sleepers += 1
            try:
                while self._writer or self._readers:
                    self._cond.wait()
            finally:
                self._writers_waiting -= 1
                self._sleepers -= 1
                if self._sleepers and not self._writers_waiting:  # readers held back for us may go
                    self._cond.notify_all()
            self._writer = True

    def release_write(self) -> None:
        with self._mutex:
            self._writer = False
            if self._sleepers:
                self._cond.notify_all()

    @contextmanager
    def write(self) -> Iterator[None]:
        self.acquire_write()
        try:
            yield
        finally:
            self.release_write()

    def forget_key(self) -> None:
        """The hnswlib object was replaced: the next reader must set its ef again (call under write)."""
        self._key = None


# -- files ------------------------------------------------------------------------------------------


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # platforms without directory handles
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _sha256_file(path: Path, *, fsync: bool = False) -> tuple[str, int]:
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(_HASH_CHUNK):
            h.update(chunk)
            size += len(chunk)
        if fsync:
            os.fsync(fh.fileno())
    return h.hexdigest(), size


def _commit_file(tmp: Path, directory: Path, prefix: str, suffix: str) -> dict[str, Any]:
    """fsync a finished temp file and give it its content-addressed name; returns its manifest entry."""
    digest, size = _sha256_file(tmp, fsync=True)
    name = f"{prefix}-{digest[:16]}{suffix}"
    os.replace(tmp, directory / name)
    return {"name": name, "sha256": digest, "size": size}


def _check_file(directory: Path, entry: Any, what: str) -> Path:
    if not isinstance(entry, dict) or not all(k in entry for k in ("name", "sha256", "size")):
        raise InvalidInputError(f"{directory}: {MANIFEST} has no valid entry for the {what} file")
    name = entry["name"]
    if not isinstance(name, str) or Path(name).name != name or name in ("", ".", ".."):
        raise InvalidInputError(f"{directory}: {MANIFEST} names an invalid {what} file {name!r}")
    path = directory / name
    if not path.is_file():
        raise InvalidInputError(f"{directory}: the {what} file {name} is missing")
    digest, size = _sha256_file(path)
    if size != entry["size"] or digest != entry["sha256"]:
        raise InvalidInputError(
            f"{directory}: the {what} file {name} is truncated or corrupt "
            f"({size} bytes, sha256 {digest[:16]}…; the manifest says {entry['size']} bytes, "
            f"sha256 {str(entry['sha256'])[:16]}…)"
        )
    return path


def _b64(arr: np.ndarray) -> str:
    return base64.b64encode(arr.tobytes()).decode("ascii")


def _unb64(text: Any, dtype: str, count: int, what: str) -> np.ndarray:
    try:
        raw = base64.b64decode(text, validate=True)
    except (TypeError, ValueError):
        raise InvalidInputError(f"{MANIFEST}: {what} is not valid base64") from None
    arr = np.frombuffer(raw, dtype=dtype)
    if arr.shape[0] != count:
        raise InvalidInputError(f"{MANIFEST}: {what} holds {arr.shape[0]} entries, expected {count}")
    return arr


# -- the index --------------------------------------------------------------------------------------


class Index:
    """An HNSW index of vectors (or task embeddings) under int64 ids, searched by cosine distance.

    Args:
        dim: vector length.
        metric: ``"cosine"`` (the only one: task embeddings are compared by cosine).
        M: graph degree (hnswlib's ``M``); larger is more accurate, slower and bigger.
        ef_construction: candidate list size while building.
        ef: default candidate list size while searching (``search(ef=...)`` overrides it; hnswlib
            always uses at least ``k``).
        capacity: initial room; the index grows by itself.
        fingerprint: the surrogate fingerprint of the embeddings it holds, if known. TaskEmbeddings
            added or searched for must match it (and the mode of the first one added); with ``None``
            the first TaskEmbedding added sets it. Plain arrays are not checked.
        n_threads: threads for adding and batch searching (``None``: all cores).

    Search runs exactly (taskspace's similarity kernel) with ``exact=True`` or when ``allowed_ids``
    leaves at most :data:`EXACT_MAX` items, and also when hnswlib cannot return k items (heavy
    filtering or many deletions); otherwise it walks the HNSW graph. Thread-safe: searches run
    concurrently, writes (``add``, ``remove``, ``compact``, setting ``ef``) exclusively.

    Example:
        >>> import numpy as np, taskspace as ts
        >>> idx = ts.Index(dim=3)
        >>> idx.add(np.array([[1.0, 0, 0], [0, 1.0, 0], [1.0, 1.0, 0]]), ids=[10, 20, -5])
        >>> res = idx.search([1.0, 0.1, 0], k=2)
        >>> res.ids.tolist(), res.distances.astype(float).round(3).tolist(), res.counts.tolist()
        ([[10, -5]], [[0.005, 0.226]], [2])
        >>> idx.remove([10]); len(idx), 10 in idx, idx.tombstones
        (2, False, 1)
        >>> idx.search([1.0, 0.1, 0], k=5, allowed_ids=[20]).ids.tolist()  # k clamped to 2 items, 1 allowed
        [[20, -1]]
    """

    def __init__(
        self,
        *,
        dim: int,
        metric: str = "cosine",
        M: int = 16,
        ef_construction: int = 200,
        ef: int = 64,
        capacity: int = 1024,
        fingerprint: str | None = None,
        n_threads: int | None = None,
    ) -> None:
        self._dim = _checks.positive_int(dim, "dim")
        if not isinstance(metric, str) or metric not in METRICS:
            raise InvalidInputError(f"metric must be one of {METRICS}, got {metric!r}")
        self._M = _checks.positive_int(M, "M", minimum=2, maximum=_MAX_M)
        self._ef_construction = _checks.positive_int(ef_construction, "ef_construction", maximum=_MAX_EF)
        self._ef = _checks.positive_int(ef, "ef", maximum=_MAX_EF)
        capacity = _checks.positive_int(capacity, "capacity")
        _check_room(self._dim, self._M, capacity)
        self._initial_capacity = min(capacity, _MAX_ITEMS)
        if fingerprint is not None and not isinstance(fingerprint, str):
            raise TypeError(f"fingerprint must be a str or None, got {type(fingerprint).__name__}")
        self._fingerprint = fingerprint
        self._mode: str | None = None
        self._n_threads = n_threads
        self._hnsw_threads = _checks.n_threads(n_threads) or -1
        self._lock = _SearchWriteLock(self._set_hnsw_ef)
        self._reset(self._initial_capacity)

    def _reset(self, capacity: int) -> None:
        """Empty state with room for ``capacity`` items (call under the write lock, or in __init__)."""
        hnsw = hnswlib.Index(space="cosine", dim=self._dim)
        hnsw.init_index(
            max_elements=capacity, M=self._M, ef_construction=self._ef_construction, random_seed=100
        )
        hnsw.set_ef(self._ef)
        self._hnsw = hnsw
        self._vectors = np.empty((capacity, self._dim), dtype=np.float32)
        self._ext = np.empty(capacity, dtype=np.int64)  # internal label -> external id
        self._live = np.zeros(capacity, dtype=bool)
        self._next = 0  # labels 0.._next-1 are used (live or tombstones)
        self._label_of: dict[int, int] = {}  # external id -> internal label, live items only
        self._lock.forget_key()

    def _set_hnsw_ef(self, ef: int) -> None:
        self._hnsw.set_ef(ef)

    # -- properties ---------------------------------------------------------------------------------
    @property
    def dim(self) -> int:
        return self._dim

    @property
    def metric(self) -> str:
        return "cosine"

    @property
    def M(self) -> int:
        return self._M

    @property
    def ef_construction(self) -> int:
        return self._ef_construction

    @property
    def ef(self) -> int:
        """Default search ``ef``; setting it waits for running searches."""
        return self._ef

    @ef.setter
    def ef(self, value: int) -> None:
        value = _checks.positive_int(value, "ef", maximum=_MAX_EF)
        with self._lock.write():
            self._ef = value

    @property
    def capacity(self) -> int:
        """Items the index holds before it next grows (tombstones take room until :meth:`compact`)."""
        return int(self._vectors.shape[0])

    @property
    def fingerprint(self) -> str | None:
        return self._fingerprint

    @property
    def mode(self) -> str | None:
        """Mode of the TaskEmbeddings added, once one was (``None`` before)."""
        return self._mode

    @property
    def tombstones(self) -> int:
        """Removed items that still occupy the graph (searches skip them; :meth:`compact` drops them)."""
        return self._next - len(self._label_of)

    def __len__(self) -> int:
        return len(self._label_of)

    def __contains__(self, item: object) -> bool:
        if isinstance(item, (bool, np.bool_)) or not isinstance(item, (int, np.integer)):
            return False
        return int(item) in self._label_of

    def ids(self) -> np.ndarray:
        """The ids of the items, int64, in insertion order."""
        with self._lock.read(None):
            labels = np.flatnonzero(self._live[: self._next])
            return self._ext[labels].copy()

    def __repr__(self) -> str:
        return (
            f"Index(dim={self._dim}, metric='cosine', len={len(self)}, tombstones={self.tombstones}, "
            f"M={self._M}, ef_construction={self._ef_construction}, ef={self._ef}, "
            f"fingerprint={self._fingerprint!r})"
        )

    # -- checks ---------------------------------------------------------------------------------------
    def _vectors_in(self, x: Any, what: str) -> tuple[np.ndarray, list[TaskEmbedding]]:
        if type(x) is np.ndarray and x.dtype is _F32 and 1 <= x.ndim <= 2 and x.shape[-1] == self._dim:
            # The common case in few numpy calls (single-query latency): finite, non-zero float32 rows
            # whose squared norms neither overflow nor underflow in float32, so hnswlib's own
            # normalization and the cosine kernel are exact enough. Anything else takes the careful
            # path, which rescales rows to unit length in float64.
            if x.ndim == 1:
                sq = float(np.dot(x, x))
                if _TINY < sq < np.inf:  # False for NaN
                    return x[None, :], []  # hnswlib and the kernel copy it if it is strided
            elif x.shape[0]:
                sq_rows = np.einsum("ij,ij->i", x, x)
                if _TINY < float(sq_rows.min()) and float(sq_rows.max()) < np.inf:
                    return np.ascontiguousarray(x), []
        m, embs = as_vectors(x, what)
        if m.shape[1] != self._dim:
            raise InvalidInputError(f"{what} have dimension {m.shape[1]}, the index has {self._dim}")
        if embs:
            self._check_space(embs[0], what)
        return _unit_rows(m, what), embs

    def _check_space(self, e: TaskEmbedding, what: str) -> None:
        if self._fingerprint is not None and e.fingerprint != self._fingerprint:
            raise FingerprintMismatchError(
                f"{what}: embeddings of surrogate {e.fingerprint} cannot go with an index of "
                f"surrogate {self._fingerprint}"
            )
        if self._mode is not None and e.mode != self._mode:
            raise FingerprintMismatchError(
                f"{what}: {e.mode}-mode embeddings cannot go with an index of {self._mode}-mode embeddings"
            )

    # -- writes ---------------------------------------------------------------------------------------
    def add(self, vectors: Any, ids: Any, *, replace: bool = False) -> None:
        """Add vectors (an ``(n, dim)`` or ``(dim,)`` array, or TaskEmbeddings) under int64 ``ids``.

        Arrays of any float dtype or memory layout are copied to float32. NaN/inf and zero vectors,
        a dimension mismatch, an empty input, ids outside int64 or repeated within the call raise
        :class:`InvalidInputError`; so do ids already in the index unless ``replace=True``, which
        replaces their vectors. Nothing is added when anything is wrong. The index grows as needed.
        """
        rows, embs = self._vectors_in(vectors, "vectors")
        id_arr = _as_ids(ids, "ids")
        if id_arr.shape[0] != rows.shape[0]:
            raise InvalidInputError(f"got {rows.shape[0]} vectors but {id_arr.shape[0]} ids")
        uniq, counts = np.unique(id_arr, return_counts=True)
        if uniq.shape[0] != id_arr.shape[0]:
            raise InvalidInputError(f"ids are repeated within the call: {int(uniq[counts > 1][0])}")
        id_list = id_arr.tolist()
        with self._lock.write():
            if embs:
                self._check_space(embs[0], "vectors")
            present = [i for i in id_list if i in self._label_of]
            if present and not replace:
                more = f" and {len(present) - 1} more" if len(present) > 1 else ""
                raise InvalidInputError(
                    f"id {present[0]}{more} already in the index; pass replace=True to replace their vectors"
                )
            n_new = len(id_list) - len(present)
            if self._next + n_new > _MAX_ITEMS:
                raise InvalidInputError(f"an index holds at most {_MAX_ITEMS} items (tombstones included)")
            self._reserve(self._next + n_new)
            labels = np.empty(len(id_list), dtype=np.int64)
            fresh = self._next
            for j, i in enumerate(id_list):
                old = self._label_of.get(i)
                if old is None:
                    labels[j] = fresh
                    fresh += 1
                else:
                    labels[j] = old
            self._hnsw.add_items(rows, labels.astype(np.uint64), num_threads=self._hnsw_threads)
            self._vectors[labels] = _normalized(rows)
            self._ext[labels] = id_arr
            self._live[labels] = True
            self._next = fresh
            self._label_of.update(zip(id_list, labels.tolist(), strict=True))
            if embs:
                self._fingerprint = self._fingerprint or embs[0].fingerprint
                self._mode = self._mode or embs[0].mode

    def _reserve(self, needed: int) -> None:
        cap = self.capacity
        if needed <= cap:
            return
        room = _max_items(self._dim, self._M)
        if needed > room:
            raise MemoryError(
                f"the index would hold {needed} items of dim={self._dim}, more than this machine's "
                f"memory can (about {room}); nothing was added"
            )
        new_cap = min(max(2 * cap, needed + needed // 4), room)
        self._hnsw.resize_index(new_cap)
        vectors = np.empty((new_cap, self._dim), dtype=np.float32)
        vectors[: self._next] = self._vectors[: self._next]
        ext = np.empty(new_cap, dtype=np.int64)
        ext[: self._next] = self._ext[: self._next]
        live = np.zeros(new_cap, dtype=bool)
        live[: self._next] = self._live[: self._next]
        self._vectors, self._ext, self._live = vectors, ext, live

    def remove(self, ids: Any) -> None:
        """Remove items by id (repeats are ignored); an unknown id raises :class:`KeyError`, removing nothing.

        Removed items become tombstones: searches skip them, but they keep their room in the graph
        until :meth:`compact`.
        """
        id_list = np.unique(_as_ids(ids, "ids")).tolist()
        with self._lock.write():
            missing = [i for i in id_list if i not in self._label_of]
            if missing:
                more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
                raise KeyError(f"id {missing[0]}{more} not in the index; nothing was removed")
            for i in id_list:
                label = self._label_of.pop(i)
                self._hnsw.mark_deleted(label)
                self._live[label] = False

    def compact(self) -> int:
        """Rebuild the graph without tombstones; returns how many were dropped. Blocks searches meanwhile."""
        with self._lock.write():
            dropped = self.tombstones
            if dropped == 0:
                return 0
            labels = np.flatnonzero(self._live[: self._next])
            vectors = self._vectors[labels].copy()
            ext = self._ext[labels].copy()
            self._reset(max(self._initial_capacity, len(labels) + len(labels) // 4))
            if len(labels):
                self._insert_new(vectors, ext)
            return dropped

    def _insert_new(self, rows: np.ndarray, ids: np.ndarray) -> None:
        """Append items under fresh labels (under the write lock, with the room reserved)."""
        n = rows.shape[0]
        labels = np.arange(self._next, self._next + n, dtype=np.int64)
        self._hnsw.add_items(rows, labels.astype(np.uint64), num_threads=self._hnsw_threads)
        self._vectors[labels] = rows
        self._ext[labels] = ids
        self._live[labels] = True
        self._next += n
        self._label_of.update(zip(ids.tolist(), labels.tolist(), strict=True))

    # -- search ---------------------------------------------------------------------------------------
    def search(
        self,
        queries: Any,
        k: int = 10,
        *,
        ef: int | None = None,
        allowed_ids: Any = None,
        exact: bool = False,
    ) -> SearchResult:
        """The k nearest items to each query (an ``(q, dim)`` / ``(dim,)`` array, or TaskEmbeddings).

        ``k`` is clamped to the number of items; rows with fewer results (``allowed_ids`` leaves
        fewer) are padded with id ``-1`` and distance ``inf``, and ``counts`` says how many are real.
        ``ef`` (default :attr:`ef`) trades speed for recall; at least ``k`` is used. ``allowed_ids``
        restricts results to those ids (unknown ones are ignored). ``exact=True`` scans every
        candidate with the exact kernel. Distances are ``1 - cos``. A single 1-D query still gives
        ``(1, k)`` arrays.
        """
        if (
            type(queries) is np.ndarray
            and queries.dtype is _F32
            and queries.shape == (self._dim,)
            and type(k) is int
            and k > 0
            and ef is None
            and allowed_ids is None
            and not exact
        ):
            # One float32 query with default options, the latency a service sees: the same checks
            # and results as below in fewer Python and numpy steps (each costs more than its
            # microbenchmark suggests, because the graph walk evicts them from the CPU caches).
            sq = float(queries.dot(queries))
            if _TINY < sq < np.inf:  # finite and non-zero (False for NaN)
                return self._search_one(queries, k)
        k = _checks.positive_int(k, "k")
        ef = self._ef if ef is None else _checks.positive_int(ef, "ef", maximum=_MAX_EF)
        rows, _ = self._vectors_in(queries, "queries")
        allowed = None if allowed_ids is None else np.unique(_as_ids(allowed_ids, "allowed_ids"))
        key = None if exact else ef
        self._lock.acquire_read(key)
        try:
            kk = min(k, len(self._label_of))
            if allowed is not None:
                label_of = self._label_of
                labels = np.array([label_of[i] for i in allowed.tolist() if i in label_of], dtype=np.int64)
                labels.sort()
                if exact or labels.shape[0] <= EXACT_MAX:
                    return self._exact(rows, labels, kk)
                kh = min(kk, labels.shape[0])
                allow = frozenset(labels.tolist()).__contains__
                return self._graph(rows, kk, kh, labels, filter=allow, num_threads=1)
            if exact:
                return self._exact(rows, None, kk)
            return self._graph(rows, kk, kk, None, filter=None, num_threads=self._hnsw_threads)
        finally:
            self._lock.release_read(key)

    def _search_one(self, query: np.ndarray, k: int) -> SearchResult:
        """:meth:`search` for one valid float32 query of shape ``(dim,)`` with default options."""
        key = self._ef
        self._lock.acquire_read(key)
        try:
            kk = min(k, len(self._label_of))
            if kk == 0:
                return _empty(1, 0)
            try:
                # Positional: pybind11 matching keywords by name costs ~5k instructions a call.
                found, dist = self._hnsw.knn_query(query, kk, 1)
            except RuntimeError as e:
                if _TOO_FEW not in str(e):
                    raise
                return self._exact(query[None, :], None, kk)  # too few reachable items: scan instead
            ids = self._ext.take(found.view(np.int64))  # labels are < 2**32: same bits
        finally:
            self._lock.release_read(key)
        # 1 - cos rounds a hair outside [0, 2] for identical or opposite directions (sorted row).
        if dist.item(0) < 0.0 or dist.item(-1) > 2.0:
            np.clip(dist, 0.0, 2.0, out=dist)
        counts = _ONE_COUNT.copy()
        counts[0] = kk
        return tuple.__new__(SearchResult, (ids, dist, counts))  # SearchResult(...) minus a frame

    def _graph(
        self,
        rows: np.ndarray,
        k: int,
        kh: int,
        labels: np.ndarray | None,
        *,
        filter: Callable[[int], bool] | None,
        num_threads: int,
    ) -> SearchResult:
        q = rows.shape[0]
        if kh == 0:
            return _empty(q, k)
        try:
            found, dist = self._hnsw.knn_query(rows, kh, num_threads, filter)  # positional: cheaper
        except RuntimeError as e:
            if _TOO_FEW not in str(e):
                raise
            return self._exact(rows, labels, k)  # too few reachable items: scan instead
        ids = self._ext[found.view(np.int64)]  # labels are < 2**32: same bits
        # 1 - cos rounds a hair outside [0, 2] for identical or opposite directions; rows are sorted,
        # so the first and last columns tell (checked in Python: cheaper than a ufunc for one row).
        if q > 1 or dist[0, 0] < 0.0 or dist[0, -1] > 2.0:
            np.clip(dist, 0.0, 2.0, out=dist)
        if kh == k:
            counts = np.empty(q, dtype=np.int64)
            counts.fill(k)
            return SearchResult(ids, dist, counts)
        out = _empty(q, k)
        out.ids[:, :kh] = ids
        out.distances[:, :kh] = dist
        out.counts[:] = kh
        return out

    def _exact(self, rows: np.ndarray, labels: np.ndarray | None, k: int) -> SearchResult:
        """Brute force over ``labels`` (sorted), or over every live item when ``labels`` is None."""
        q = rows.shape[0]
        if k == 0:
            return _empty(q, k)
        if labels is None:
            blocks = []
            for start in range(0, self._next, _ITEM_BLOCK):
                stop = min(start + _ITEM_BLOCK, self._next)
                live = self._live[start:stop]
                blocks.append(np.arange(start, stop) if live.all() else start + np.flatnonzero(live))
        else:
            blocks = [labels[s : s + _ITEM_BLOCK] for s in range(0, labels.shape[0], _ITEM_BLOCK)]
        rows = _normalized(rows)
        best_labels = np.full((q, k), -1, dtype=np.int64)
        best_scores = np.full((q, k), -np.inf, dtype=np.float32)
        for block in blocks:
            if block.shape[0] == 0:
                continue
            lo, hi = int(block[0]), int(block[-1]) + 1
            # A run of consecutive labels is a view; anything else is gathered.
            items = self._vectors[lo:hi] if hi - lo == block.shape[0] else self._vectors[block]
            pos, scores = _top_k(rows, items, k, self._n_threads)
            found = np.where(pos >= 0, block[np.maximum(pos, 0)], -1)
            best_labels, best_scores = _merge(best_labels, best_scores, found, scores)
        real = best_labels >= 0
        ids = np.where(real, self._ext[np.maximum(best_labels, 0)], -1)
        dist = np.where(real, np.clip(1.0 - best_scores, 0.0, 2.0), np.inf).astype(np.float32)
        return SearchResult(ids, dist, real.sum(axis=1).astype(np.int64))

    # -- persistence ----------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str]) -> None:
        """Save to the directory ``path`` (created if needed), atomically.

        The directory holds ``index.json`` (format, dim, metric, parameters, fingerprint, mode, the
        id map, tombstones, and the name, size and sha256 of each data file), the hnswlib graph
        ``graph-<sha>.hnsw`` and the vectors ``vectors-<sha>.npy``. Data files are written
        to temp files, fsynced and renamed to names made of their own hash; then ``index.json`` is
        written the same way and renamed over the old one (the commit), the directory fsynced, and
        files no longer named by it deleted. A crash at any point leaves the previous save or the
        new one loadable, never a mix. Searches may run during a save; writes wait for it. A
        directory that holds anything but a taskspace index is refused.
        """
        directory = Path(path)
        if directory.exists() and not directory.is_dir():
            raise InvalidInputError(
                f"{directory} exists and is not a directory; an Index saves to a directory"
            )
        if directory.is_dir() and any(directory.iterdir()) and not (directory / MANIFEST).is_file():
            raise InvalidInputError(
                f"{directory} is not empty and holds no {MANIFEST}: refusing to write into it"
            )
        directory.mkdir(parents=True, exist_ok=True)
        with self._lock.read(None):
            graph_tmp = self._temp(directory, ".hnsw")
            vectors_tmp = self._temp(directory, ".npy")
            manifest_tmp = self._temp(directory, ".json")
            try:
                self._hnsw.save_index(str(graph_tmp))
                graph = _commit_file(graph_tmp, directory, "graph", ".hnsw")
                with open(vectors_tmp, "wb") as fh:
                    np.save(fh, self._vectors[: self._next], allow_pickle=False)
                vectors = _commit_file(vectors_tmp, directory, "vectors", ".npy")
                manifest = self._manifest(graph, vectors)
                with open(manifest_tmp, "w", encoding="utf-8") as fh:
                    json.dump(manifest, fh, indent=1)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(manifest_tmp, directory / MANIFEST)
                _fsync_dir(directory)
            finally:
                for tmp in (graph_tmp, vectors_tmp, manifest_tmp):
                    tmp.unlink(missing_ok=True)
        keep = {MANIFEST, graph["name"], vectors["name"]}
        for old in directory.iterdir():
            if old.name not in keep and old.name.startswith(("graph-", "vectors-", ".index-")):
                old.unlink(missing_ok=True)

    @staticmethod
    def _temp(directory: Path, suffix: str) -> Path:
        fd, name = tempfile.mkstemp(prefix=".index-", suffix=suffix, dir=directory)
        os.close(fd)
        return Path(name)

    def _manifest(self, graph: dict[str, Any], vectors: dict[str, Any]) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "dim": self._dim,
            "metric": "cosine",
            "M": self._M,
            "ef_construction": self._ef_construction,
            "ef": self._ef,
            "capacity": self._initial_capacity,
            "fingerprint": self._fingerprint,
            "mode": self._mode,
            "count": len(self._label_of),
            "labels": self._next,
            "tombstones": self.tombstones,
            "hnswlib_version": importlib.metadata.version("hnswlib"),
            "ids_int64_le_base64": _b64(self._ext[: self._next].astype("<i8")),
            "live_packbits_base64": _b64(np.packbits(self._live[: self._next])),
            "graph": graph,
            "vectors": vectors,
        }

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, n_threads: int | None = None) -> Index:
        """Load an index saved by :meth:`save`.

        Anything that is not a complete, intact save (a missing directory or manifest, a foreign or
        newer format, a truncated or corrupt data file) raises :class:`InvalidInputError` before
        hnswlib reads a byte of it; nothing on disk is changed. Files that are intact but do not
        belong together (a manifest forged to name another index's graph, with its size and sha256)
        are refused too: the graph's header must match the manifest (dim, item count, M), its items
        must be the saved vectors, and those must be finite unit rows.
        """
        directory = Path(path)
        manifest = _read_manifest(directory)
        where = f"{directory}/{MANIFEST}"
        try:
            index = cls(
                dim=manifest["dim"],
                metric=manifest["metric"],
                M=manifest["M"],
                ef_construction=manifest["ef_construction"],
                ef=manifest["ef"],
                capacity=manifest["capacity"],
                fingerprint=manifest["fingerprint"],
                n_threads=n_threads,
            )
            n_labels, count = manifest["labels"], manifest["count"]
            mode = manifest["mode"]
        except KeyError as e:
            raise InvalidInputError(f"{where} lacks the field {e}") from None
        except TypeError as e:
            raise InvalidInputError(f"{where} has a field of the wrong type: {e}") from None
        if not all(isinstance(v, int) and v >= 0 for v in (n_labels, count)) or count > n_labels:
            raise InvalidInputError(f"{where}: invalid item counts")
        if mode not in (None, "label", "text"):
            raise InvalidInputError(f"{where}: invalid mode {mode!r}")
        ext, live = _saved_ids(manifest, n_labels, count, where)
        graph_path = _check_file(directory, manifest.get("graph"), "graph")
        vectors = _saved_vectors(
            _check_file(directory, manifest.get("vectors"), "vectors"), n_labels, index._dim
        )
        _check_unit(vectors, live, directory)
        capacity = max(index._initial_capacity, n_labels)
        hnsw = _saved_graph(graph_path, index._dim, capacity, n_labels, index._M)
        _check_graph_vectors(hnsw, vectors, live, graph_path)
        index._restore(hnsw, vectors, ext, live, capacity)
        if len(index._label_of) != count:
            raise InvalidInputError(f"{where}: the id map repeats ids")
        index._mode = mode
        return index

    def _restore(
        self, hnsw: hnswlib.Index, vectors: np.ndarray, ext: np.ndarray, live: np.ndarray, capacity: int
    ) -> None:
        """Take the loaded graph, unit vectors, id map and live mask as this index's state."""
        n_labels = vectors.shape[0]
        hnsw.set_ef(self._ef)
        self._hnsw = hnsw
        self._vectors = np.empty((capacity, self._dim), dtype=np.float32)
        self._vectors[:n_labels] = vectors  # unit rows, as saved (their sha256 was checked)
        self._ext = np.empty(capacity, dtype=np.int64)
        self._ext[:n_labels] = ext
        self._live = np.zeros(capacity, dtype=bool)
        self._live[:n_labels] = live
        self._next = n_labels
        labels = np.flatnonzero(live)
        self._label_of = dict(zip(ext[labels].tolist(), labels.tolist(), strict=True))


def _read_manifest(directory: Path) -> dict[str, Any]:
    """The manifest of a saved index, checked to be a JSON object of our format."""
    if not directory.is_dir():
        raise InvalidInputError(f"{directory} is not an Index directory (save() writes a directory)")
    try:
        manifest = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidInputError(f"{directory} holds no {MANIFEST}: not a saved taskspace Index") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InvalidInputError(
            f"{directory}/{MANIFEST} is not valid JSON ({e}): truncated or foreign"
        ) from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else None
        raise InvalidInputError(f"{directory}: not a taskspace Index of format {FORMAT!r} (found {found!r})")
    return manifest


def _saved_ids(
    manifest: dict[str, Any], n_labels: int, count: int, where: str
) -> tuple[np.ndarray, np.ndarray]:
    """The saved id map (int64 per label) and live mask (bool per label)."""
    ext = _unb64(manifest.get("ids_int64_le_base64"), "<i8", n_labels, "the id map")
    live = np.unpackbits(_unb64(manifest.get("live_packbits_base64"), "u1", (n_labels + 7) // 8, "live"))
    live = live[:n_labels].astype(bool)
    if int(live.sum()) != count:
        raise InvalidInputError(f"{where}: the live mask disagrees with the count")
    return ext, live


def _saved_vectors(path: Path, n_labels: int, dim: int) -> np.ndarray:
    """The saved float32 ``(n_labels, dim)`` vectors, all finite."""
    try:
        vectors = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise InvalidInputError(f"{path}: not a vectors file ({e})") from None
    if vectors.dtype != np.float32 or vectors.shape != (n_labels, dim):
        raise InvalidInputError(
            f"{path}: holds {vectors.dtype} {vectors.shape}, expected float32 ({n_labels}, {dim})"
        )
    bad = np.flatnonzero(~np.isfinite(vectors).all(axis=1))
    if bad.size:
        raise InvalidInputError(
            f"{path}: row {int(bad[0])} (and {bad.size - 1} more) holds non-finite values"
        )
    return vectors


def _check_unit(vectors: np.ndarray, live: np.ndarray, directory: Path) -> None:
    """Live items are stored as unit rows; anything else is not a save of ours."""
    norms = np.linalg.norm(vectors[live].astype(np.float64), axis=1)
    off = np.flatnonzero(np.abs(norms - 1.0) > 1e-3)
    if off.size:
        label = int(np.flatnonzero(live)[off[0]])
        raise InvalidInputError(
            f"{directory}: saved vector {label} has norm {norms[off[0]]:.6g}, not 1: the save is damaged"
        )


#: The header hnswlib (0.7, 0.8) writes at the start of a saved graph, little-endian, packed.
_GRAPH_HEADER = np.dtype(
    [
        ("offset_level0", "<u8"),
        ("max_elements", "<u8"),
        ("count", "<u8"),
        ("size_per_element", "<u8"),
        ("label_offset", "<u8"),
        ("offset_data", "<u8"),
        ("max_level", "<i4"),
        ("entry_point", "<u4"),
        ("max_m", "<u8"),
        ("max_m0", "<u8"),
        ("M", "<u8"),
        ("mult", "<f8"),
        ("ef_construction", "<u8"),
    ]
)


def _check_graph_header(path: Path, dim: int, n_labels: int, M: int) -> None:
    """Refuse a graph whose header disagrees with the manifest: hnswlib itself does not check the
    dimension, so another index's graph would load and answer with wrong ids."""
    size = path.stat().st_size
    with open(path, "rb") as fh:
        raw = fh.read(_GRAPH_HEADER.itemsize)
    if len(raw) < _GRAPH_HEADER.itemsize:
        raise InvalidInputError(f"{path}: {size} bytes, too short for an hnswlib graph header")
    record = np.frombuffer(raw, _GRAPH_HEADER)[0]
    h = {name: int(record[name]) for name in _GRAPH_HEADER.names if name != "mult"}
    graph_dim, rem = divmod(h["label_offset"] - h["offset_data"], 4)
    problems = []
    if h["offset_level0"] != 0 or rem or h["size_per_element"] != h["label_offset"] + 8:
        problems.append("its element layout is not hnswlib's")
    if graph_dim != dim:
        problems.append(f"it holds vectors of dim {graph_dim}, {MANIFEST} says {dim}")
    if h["count"] != n_labels:
        problems.append(f"it holds {h['count']} items, {MANIFEST} says {n_labels}")
    if h["M"] != M or h["max_m0"] != 2 * M:
        problems.append(f"it was built with M = {h['M']}, {MANIFEST} says {M}")
    elif size < _GRAPH_HEADER.itemsize + h["count"] * (h["size_per_element"] + 4):
        problems.append(f"it is truncated ({size} bytes for {h['count']} items)")
    if problems:
        raise InvalidInputError(f"{path} does not belong to this index: {'; '.join(problems)}")


def _saved_graph(path: Path, dim: int, capacity: int, n_labels: int, M: int) -> hnswlib.Index:
    """The saved hnswlib graph, with room for ``capacity`` items; it must hold ``n_labels``."""
    _check_graph_header(path, dim, n_labels, M)
    hnsw = hnswlib.Index(space="cosine", dim=dim)
    try:
        hnsw.load_index(str(path), max_elements=capacity)
    except (RuntimeError, ValueError, MemoryError) as e:
        raise InvalidInputError(f"{path}: hnswlib cannot read it ({e})") from None
    if hnsw.element_count != n_labels:
        raise InvalidInputError(f"{path} holds {hnsw.element_count} items, {MANIFEST} says {n_labels}")
    return hnsw


#: How many of a loaded graph's items are compared with the saved vectors.
_GRAPH_SAMPLE = 256


def _check_graph_vectors(hnsw: hnswlib.Index, vectors: np.ndarray, live: np.ndarray, path: Path) -> None:
    """The graph's labels are 0..n-1 and its items (a spread sample of the live ones) are the saved
    vectors: a graph of another index of the same shape is refused."""
    labels = np.sort(np.asarray(hnsw.get_ids_list(), dtype=np.int64))
    if not np.array_equal(labels, np.arange(vectors.shape[0])):
        raise InvalidInputError(f"{path}: its item labels are not 0..{vectors.shape[0] - 1}")
    alive = np.flatnonzero(live)
    if not alive.size:
        return
    sample = alive[np.linspace(0, alive.size - 1, min(alive.size, _GRAPH_SAMPLE)).astype(np.int64)]
    try:
        stored = np.asarray(hnsw.get_items(sample.tolist()), dtype=np.float32).reshape(len(sample), -1)
    except RuntimeError as e:  # a live label marked deleted in the graph
        raise InvalidInputError(f"{path}: its items disagree with the saved ids ({e})") from None
    far = np.flatnonzero(np.abs(stored - vectors[sample]).max(axis=1) > 1e-4)
    if far.size:
        raise InvalidInputError(
            f"{path}: item {int(sample[far[0]])} of the graph is not the saved vector: "
            "the graph belongs to another index"
        )


def _empty(q: int, k: int) -> SearchResult:
    return SearchResult(
        np.full((q, k), -1, dtype=np.int64),
        np.full((q, k), np.inf, dtype=np.float32),
        np.zeros(q, dtype=np.int64),
    )
