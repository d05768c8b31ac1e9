"""TaskSpace: the named task embeddings of one surrogate, persistent, searchable.

A :class:`TaskSpace` holds dataset embeddings (DTEs) and model embeddings (MTEs, e.g. one per LLM and
prompt) by name, in one SQLite file (see :mod:`taskspace.space.store`), and answers the questions task
embeddings are for: which models or prompts suit this dataset (:meth:`TaskSpace.select`), what is
near this task (:meth:`TaskSpace.nearest`), which entries are near-duplicates
(:meth:`TaskSpace.duplicates`).

In memory it keeps every vector scaled to unit length (``dim * 4`` bytes each) and searches them
exactly (a mat-vec for one query, taskspace's kernels for matrices and duplicates); a search over
more than ``index_threshold`` candidates uses an HNSW :class:`~taskspace.search.index.Index` instead: one
of every entry for searches of all kinds, and one per kind for searches of one kind (a graph walk
with a per-query filter would cost ~35x more). Each is built from the vectors on the first search
that needs it (not stored: the SQLite file is the only state) and kept up to date afterwards.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from taskspace import _checks
from taskspace.embedding.surrogate import Surrogate
from taskspace.embedding.task_embedding import TaskEmbedding
from taskspace.errors import FingerprintMismatchError, InvalidInputError
from taskspace.search.cosine import pairs_above, similarity
from taskspace.search.index import EXACT_MAX, Index
from taskspace.space.selection import Selection, check_tolerance, cost_table
from taskspace.space.store import Row, Store

__all__ = ["TaskSpace"]

_KINDS = (None, "dataset", "model")
#: The kinds an entry can have (the store's CHECK constraint); one search index each.
_ENTRY_KINDS = ("dataset", "model")


def _check_kind(kind: Any) -> None:
    if kind not in _KINDS:
        raise InvalidInputError(f"kind must be None, 'dataset' or 'model', got {kind!r}")


def _ranked(pairs: list[tuple[str, float]]) -> list[tuple[str, float]]:
    """Highest similarity first; ties by name, so results do not depend on storage order."""
    return sorted(pairs, key=lambda p: (-p[1], p[0]))


class TaskSpace:
    """Named DTEs and MTEs of one surrogate, kept in SQLite (``path``) or in memory (``path=None``).

    Every embedding added must come from ``surrogate`` (same fingerprint) and all share one mode
    (an empty space takes the mode of the first embedding added); otherwise
    :class:`FingerprintMismatchError`. Opening a file made with another surrogate raises it too.
    Each change is one SQLite transaction: reopening the file restores everything, and a crash
    during a write leaves the previous state. Another process's changes to the same file are
    picked up by the next call. Thread-safe.

    A degenerate (zero-vector) embedding is stored and listed, but it is near nothing: its
    similarity with anything is 0 in :meth:`similarity_matrix` and :meth:`select`, it is never a
    result of :meth:`nearest` or :meth:`duplicates`, and it cannot be a query.

    Args:
        surrogate: the :class:`Surrogate` every embedding comes from.
        path: the SQLite file (created if absent), or ``None`` for a space in memory.
        index_threshold: searches over more candidates than this use HNSW indexes (approximate;
            one per kind) instead of an exact scan.

    Example:
        >>> import taskspace as ts
        >>> from taskspace.datasets import builtin as datasets
        >>> sur = ts.Surrogate(features=64, dim=256)
        >>> space = ts.TaskSpace(sur)  # in memory; pass path="space.sqlite" to keep it
        >>> for name in ("movie_sentiment", "product_sentiment", "news_topic"):
        ...     space.add(sur.dataset_embedding(*datasets.load(name), name=name, mode="text"))
        >>> texts, labels = datasets.load("movie_sentiment")
        >>> space.add(sur.model_embedding(texts, labels, name="oracle", mode="text"))
        >>> noise = ["yes" if i % 3 else "no" for i in range(len(texts))]
        >>> space.add(sur.model_embedding(texts, noise, name="noise", mode="text"))
        >>> [name for name, _ in space.select("movie_sentiment")]
        ['oracle', 'noise']
        >>> space.nearest("movie_sentiment", k=1, kind="dataset")[0][0]
        'product_sentiment'
        >>> len(space), space.names(kind="model")
        (5, ['noise', 'oracle'])
    """

    def __init__(
        self,
        surrogate: Surrogate,
        path: str | os.PathLike[str] | None = None,
        *,
        index_threshold: int = EXACT_MAX,
    ) -> None:
        if not isinstance(surrogate, Surrogate):
            raise TypeError(f"surrogate must be a taskspace.Surrogate, got {type(surrogate).__name__}")
        if isinstance(index_threshold, bool) or not isinstance(index_threshold, (int, np.integer)):
            raise TypeError(f"index_threshold must be an int, got {type(index_threshold).__name__}")
        if index_threshold < 0:
            raise InvalidInputError(f"index_threshold must be >= 0, got {index_threshold}")
        self._surrogate = surrogate
        self._dim = surrogate.dim
        self._index_threshold = int(index_threshold)
        self._lock = threading.RLock()
        self._closed = False
        self._store = Store(path)
        try:
            self._claim()
            self._load()
        except BaseException:
            self._store.close()
            raise

    @classmethod
    def open(cls, path: str | os.PathLike[str], *, index_threshold: int = EXACT_MAX) -> TaskSpace:
        """Open an existing space file with the surrogate it was made with (rebuilt from its config)."""
        if not Path(path).is_file():
            raise InvalidInputError(f"{path}: no such space file")
        store = Store(path)
        try:
            config = store.settings().get("surrogate")
        finally:
            store.close()
        if config is None:
            raise InvalidInputError(f"{path}: the space records no surrogate")
        try:
            surrogate = Surrogate.from_config(json.loads(config))
        except (ValueError, TypeError, KeyError, RecursionError) as e:  # InvalidInputError is a ValueError
            raise InvalidInputError(f"{path}: the recorded surrogate is damaged ({e})") from None
        return cls(surrogate, path, index_threshold=index_threshold)

    def _claim(self) -> None:
        """Record our surrogate in a new file, or check that an existing file's is ours."""
        sur = self._surrogate
        settings = self._store.settings()
        if "fingerprint" not in settings:
            with self._store.transaction() as db:
                settings = self._store.settings()  # another process may have claimed it meanwhile
                if "fingerprint" not in settings:
                    settings = {
                        "fingerprint": sur.fingerprint,
                        "surrogate": json.dumps(sur.config, sort_keys=True),
                        "dim": str(sur.dim),
                    }
                    for key, value in settings.items():
                        self._store.set_setting(db, key, value)
        if settings["fingerprint"] != sur.fingerprint:
            raise FingerprintMismatchError(
                f"{self._store.path} holds embeddings of surrogate {settings['fingerprint']} "
                f"({settings.get('surrogate')}); it was opened with surrogate {sur.fingerprint} "
                f"({json.dumps(sur.config, sort_keys=True)})"
            )

    def _load(self) -> None:
        """(Re)read every row into memory."""
        self._version = self._store.data_version()
        n_rows = 0
        names: list[str] = []
        ids: list[int] = []
        kinds: list[str] = []
        mode: str | None = None
        vectors: list[np.ndarray] = []
        for row in self._store.rows(self._dim):  # each row checked by the store (finite, right length)
            if mode is not None and row.mode != mode:
                raise InvalidInputError(
                    f"{self._store.path}: row {row.id} ({row.name!r}) is in {row.mode} mode, earlier rows in "
                    f"{mode} mode; a space holds one mode: the file is damaged"
                )
            names.append(row.name)
            ids.append(row.id)
            kinds.append(row.kind)
            vectors.append(row.vector)
            mode = row.mode
            n_rows += 1
        cap = max(16, n_rows + n_rows // 2)
        self._matrix = np.zeros((cap, self._dim), dtype=np.float32)  # unit rows (zero for degenerate)
        if n_rows:
            self._matrix[:n_rows] = _checks.unit_rows(np.stack(vectors))
        self._names = names
        self._ids = ids
        self._is_model = np.zeros(cap, dtype=bool)
        self._is_model[:n_rows] = [k == "model" for k in kinds]
        self._zero = np.zeros(cap, dtype=bool)
        self._zero[:n_rows] = ~self._matrix[:n_rows].any(axis=1)
        self._pos = {name: i for i, name in enumerate(names)}
        self._pos_of_id = {rowid: i for i, rowid in enumerate(ids)}
        self._mode = mode
        # Non-degenerate entries of each kind: how many candidates a search has, without a scan.
        searchable = ~self._zero[:n_rows]
        n_models = int((searchable & self._is_model[:n_rows]).sum())
        self._searchable = {"dataset": int(searchable.sum()) - n_models, "model": n_models}
        # kind (None: every kind) -> HNSW index of its searchable entries, built on first use
        self._indexes: dict[str | None, Index] = {}
        self._sorted: dict[str | None, list[int]] = {}  # kind -> positions in name order (a cache)

    def _sync(self) -> None:
        if self._closed:
            raise InvalidInputError("this TaskSpace is closed")
        if self._store.data_version() != self._version:
            self._load()

    # -- properties ---------------------------------------------------------------------------------
    @property
    def surrogate(self) -> Surrogate:
        return self._surrogate

    @property
    def fingerprint(self) -> str:
        return self._surrogate.fingerprint

    @property
    def path(self) -> Path | None:
        """The SQLite file, or ``None`` for a space in memory."""
        return self._store.path

    @property
    def mode(self) -> str | None:
        """The mode all embeddings share (``None`` while the space is empty)."""
        with self._lock:
            self._sync()
            return self._mode

    def __len__(self) -> int:
        with self._lock:
            self._sync()
            return len(self._names)

    def __contains__(self, name: object) -> bool:
        with self._lock:
            self._sync()
            return isinstance(name, str) and name in self._pos

    def __repr__(self) -> str:
        where = "memory" if self.path is None else str(self.path)
        state = "closed" if self._closed else f"{len(self._names)} embeddings"
        return f"TaskSpace({where!r}, surrogate={self.fingerprint}, {state})"

    def close(self) -> None:
        """Close the file (idempotent). The data is already on disk: every change was committed."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._store.close()

    def __enter__(self) -> TaskSpace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- changes ------------------------------------------------------------------------------------
    def add(self, embedding: TaskEmbedding, *, replace: bool = False) -> None:
        """Store a named embedding of this space's surrogate.

        A name already present raises :class:`InvalidInputError` unless ``replace=True``. The
        embedding's ``meta`` must be JSON-serialisable; its ``model``, ``prompt`` and ``dataset``
        keys are also kept in columns of their own (see :mod:`taskspace.space.store`).
        """
        if not isinstance(embedding, TaskEmbedding):
            raise TypeError(f"embedding must be a TaskEmbedding, got {type(embedding).__name__}")
        e = embedding
        if not e.name:
            raise InvalidInputError("the embedding has no name; a TaskSpace keeps embeddings by name")
        if e.fingerprint != self.fingerprint:
            raise FingerprintMismatchError(
                f"{e.kind} embedding {e.name!r} comes from surrogate {e.fingerprint}; this space holds "
                f"embeddings of surrogate {self.fingerprint}"
            )
        Store.columns(e)  # what SQLite cannot store faithfully is refused before the transaction
        with self._lock:
            self._sync()
            with self._store.transaction() as db:
                exists = db.execute("SELECT 1 FROM embeddings WHERE name = ?", (e.name,)).fetchone()
                if exists and not replace:
                    raise InvalidInputError(
                        f"{e.name!r} is already in the space; pass replace=True to replace it"
                    )
                old_id = self._store.delete(db, e.name) if exists else None
                other = db.execute("SELECT mode FROM embeddings LIMIT 1").fetchone()
                if other is not None and other[0] != e.mode:
                    raise FingerprintMismatchError(
                        f"{e.kind} embedding {e.name!r} is in {e.mode} mode; "
                        f"this space holds {other[0]}-mode embeddings"
                    )
                new_id = self._store.insert(db, e)
            if old_id is not None:
                self._forget(e.name, old_id)
            self._remember(e, new_id)

    def remove(self, name: str) -> None:
        """Delete an embedding by name; :class:`KeyError` if there is none."""
        with self._lock:
            self._sync()
            if name not in self._pos:
                raise KeyError(f"no embedding named {name!r} in the space")
            with self._store.transaction() as db:
                rowid = self._store.delete(db, name)
            assert rowid is not None
            self._forget(name, rowid)

    def _remember(self, e: TaskEmbedding, rowid: int) -> None:
        n = len(self._names)
        if n == self._matrix.shape[0]:
            cap = 2 * n
            for attr in ("_matrix", "_is_model", "_zero"):
                old = getattr(self, attr)
                new = np.zeros((cap, *old.shape[1:]), dtype=old.dtype)
                new[:n] = old[:n]
                setattr(self, attr, new)
        self._matrix[n] = _checks.unit_rows(e.vector)[0]
        self._is_model[n] = e.kind == "model"
        self._zero[n] = e.degenerate
        self._names.append(e.name)
        self._ids.append(rowid)
        self._pos[e.name] = n
        self._pos_of_id[rowid] = n
        self._mode = e.mode
        self._sorted.clear()
        if not e.degenerate:
            self._searchable[e.kind] += 1
            for index in (self._indexes.get(None), self._indexes.get(e.kind)):
                if index is not None:
                    index.add(e.vector, rowid)

    def _forget(self, name: str, rowid: int) -> None:
        """Drop a row from memory: the last row moves into its place."""
        i = self._pos.pop(name)
        del self._pos_of_id[rowid]
        kind = "model" if self._is_model[i] else "dataset"
        if not self._zero[i]:
            self._searchable[kind] -= 1
        last = len(self._names) - 1
        if i != last:
            self._matrix[i] = self._matrix[last]
            self._is_model[i] = self._is_model[last]
            self._zero[i] = self._zero[last]
            self._names[i] = self._names[last]
            self._ids[i] = self._ids[last]
            self._pos[self._names[i]] = i
            self._pos_of_id[self._ids[i]] = i
        self._names.pop()
        self._ids.pop()
        if not self._names:
            self._mode = None
        self._sorted.clear()
        for index in (self._indexes.get(None), self._indexes.get(kind)):
            if index is not None and rowid in index:
                index.remove([rowid])

    # -- reading ------------------------------------------------------------------------------------
    def get(self, name: str) -> TaskEmbedding:
        """The embedding stored under ``name`` (with its meta); :class:`KeyError` if there is none."""
        return self.info(name).embedding(self.fingerprint)

    def info(self, name: str) -> Row:
        """The row stored for ``name`` (kind, mode, method, model, prompt, dataset, n, created, meta...)."""
        with self._lock:
            self._sync()
            row = self._store.get(name, self._dim) if isinstance(name, str) else None
            if row is None:
                raise KeyError(f"no embedding named {name!r} in the space")
            return row

    def names(self, kind: str | None = None) -> list[str]:
        """Names of the stored embeddings (of one kind, ``"dataset"`` or ``"model"``), sorted."""
        _check_kind(kind)
        with self._lock:
            self._sync()
            return [self._names[i] for i in self._positions(kind)]

    def _positions(self, kind: str | None) -> list[int]:
        """Row positions of ``kind``, in name order (cached until the next change: do not modify)."""
        pos = self._sorted.get(kind)
        if pos is None:
            n = len(self._names)
            every = (
                range(n) if kind is None else np.flatnonzero(self._is_model[:n] == (kind == "model")).tolist()
            )
            pos = self._sorted[kind] = sorted(every, key=self._names.__getitem__)
        return pos

    def _query(self, query: Any, what: str) -> tuple[np.ndarray, int | None]:
        """The query vector and, for a query by name, its row position."""
        if isinstance(query, str):
            if query not in self._pos:
                raise KeyError(f"no embedding named {query!r} in the space")
            i = self._pos[query]
            v, own = self._matrix[i], i
        elif isinstance(query, TaskEmbedding):
            if query.fingerprint != self.fingerprint or (self._mode is not None and query.mode != self._mode):
                raise FingerprintMismatchError(
                    f"{what} comes from surrogate {query.fingerprint} ({query.mode} mode); this space holds "
                    f"embeddings of surrogate {self.fingerprint} ({self._mode} mode)"
                )
            v, own = query.vector, None
        else:
            m = _checks.matrix(query, what)
            if m.shape[0] != 1 or m.shape[1] != self._dim:
                raise InvalidInputError(
                    f"{what} must be one vector of length {self._dim}, got shape {m.shape}"
                )
            v, own = m[0], None
        if not np.any(v):
            raise InvalidInputError(f"{what} is a degenerate (zero) embedding: nothing is near it")
        return _checks.unit_rows(v)[0], own

    def _cosines(self, u: np.ndarray, rows: np.ndarray | slice | list[int]) -> np.ndarray:
        """Cosines of the unit query ``u`` with stored rows: one BLAS mat-vec over unit rows (for a
        single query that is far cheaper than the blocked all-pairs kernel, and exact to float32)."""
        return np.clip(self._matrix[rows] @ u, -1.0, 1.0)

    def nearest(self, name_or_vector: Any, k: int = 5, *, kind: str | None = None) -> list[tuple[str, float]]:
        """The k entries most similar to a stored entry (by name; itself excluded) or to a vector.

        Returns ``(name, cosine similarity)`` pairs, most similar first, at most ``k`` of them
        (fewer when the space holds fewer candidates); ``kind`` restricts the candidates.
        """
        k = _checks.positive_int(k, "k")
        _check_kind(kind)
        with self._lock:
            self._sync()
            v, own = self._query(name_or_vector, "the query")
            kinds = _ENTRY_KINDS if kind is None else (kind,)
            n_cand = sum(self._searchable[c] for c in kinds)
            if own is not None and self._kind_at(own) in kinds:
                n_cand -= 1
            if n_cand == 0:
                return []
            if n_cand <= self._index_threshold:
                return self._nearest_exact(v, k, kind=kind, own=own)
            return _ranked(self._nearest_indexed(v, k, kind=kind, own=own))[:k]

    def _kind_at(self, i: int) -> str:
        return "model" if self._is_model[i] else "dataset"

    def _nearest_exact(
        self, v: np.ndarray, k: int, *, kind: str | None, own: int | None
    ) -> list[tuple[str, float]]:
        """:meth:`nearest` by one mat-vec over every stored row."""
        n = len(self._names)
        mask = ~self._zero[:n]
        if kind is not None:
            mask &= self._is_model[:n] == (kind == "model")
        if own is not None:
            mask[own] = False
        sims = self._cosines(v, slice(0, n))
        cand = np.flatnonzero(mask)
        if len(cand) > k:
            cand = cand[np.argpartition(-sims[cand], k - 1)[:k]]
        return _ranked([(self._names[i], float(sims[i])) for i in cand])

    def _nearest_indexed(
        self, v: np.ndarray, k: int, *, kind: str | None, own: int | None
    ) -> list[tuple[str, float]]:
        """:meth:`nearest` through the HNSW index of ``kind`` (None: of every entry), unranked."""
        index = self._indexes.get(kind)
        if index is None:
            n = len(self._names)
            mask = ~self._zero[:n]
            if kind is not None:
                mask &= self._is_model[:n] == (kind == "model")
            live = np.flatnonzero(mask)
            index = Index(dim=self._dim, capacity=max(1024, len(live)), fingerprint=self.fingerprint)
            if len(live):
                index.add(self._matrix[live], np.asarray(self._ids, dtype=np.int64)[live])
            self._indexes[kind] = index
        mine = own is not None and kind in (None, self._kind_at(own))
        res = index.search(v, k + 1 if mine else k)
        sims = (1.0 - res.distances[0]).tolist()  # float32 arithmetic, as the exact path's cosines
        return [
            (self._names[i], s)
            for rowid, s in zip(res.ids[0].tolist(), sims, strict=True)
            if rowid >= 0 and (i := self._pos_of_id[rowid]) != own
        ]

    def similarity_matrix(self, kind: str | None = None) -> tuple[list[str], np.ndarray]:
        """Names (sorted) and the float32 matrix of their cosine similarities (0 for a degenerate entry)."""
        _check_kind(kind)
        with self._lock:
            self._sync()
            pos = self._positions(kind)
            names = [self._names[i] for i in pos]
            if not pos:
                return names, np.zeros((0, 0), dtype=np.float32)
            return names, similarity(self._matrix[pos])

    def select(
        self,
        dataset: str | TaskEmbedding,
        candidates: Sequence[str] | None = None,
        *,
        costs: Mapping[str, float] | Any = None,
        tolerance: float = 0.0,
    ) -> Selection:
        """Rank candidate entries (default: every model embedding) by similarity to a dataset's and
        name the one to use.

        ``dataset`` is the name of a stored entry or a TaskEmbedding of this space. The result is a
        :class:`Selection`: a list of every candidate as ``(name, cosine similarity)``, most similar
        first, with ``choice`` (the candidate to use) and ``reason`` (why, in words).

        Without ``costs`` the choice is the most similar candidate. With ``costs`` — a mapping
        candidate -> cost per call (any currency; e.g. from a price table), or a
        :class:`~taskspace.probing.result.ProbeResult` whose usage records give each model's mean
        cost per answered call — the choice is the cheapest candidate whose similarity is within
        ``tolerance`` of the best (ties: the more similar, then the name); every candidate needs a
        cost.

        Example:
            >>> import taskspace as ts
            >>> from taskspace.datasets import builtin as datasets
            >>> sur = ts.Surrogate(features=64, dim=256)
            >>> space = ts.TaskSpace(sur)
            >>> texts, labels = datasets.load("movie_sentiment")
            >>> space.add(sur.dataset_embedding(texts, labels, name="movies", mode="text"))
            >>> space.add(sur.model_embedding(texts, labels, name="big", mode="text"))
            >>> space.add(sur.model_embedding(texts, labels[:-1] + ["?"], name="small", mode="text"))
            >>> sel = space.select("movies", costs={"big": 0.01, "small": 0.001}, tolerance=0.05)
            >>> sel.choice, sel[0][0]
            ('small', 'big')
        """
        tol = check_tolerance(tolerance)
        with self._lock:
            self._sync()
            v, own = self._query(dataset, "dataset")
            if candidates is None:
                pos = self._positions("model")
                if own is not None and self._is_model[own]:
                    pos = [i for i in pos if i != own]
            else:
                if isinstance(candidates, (str, bytes)):
                    raise TypeError("candidates must be a sequence of names, not a single str")
                names = list(dict.fromkeys(candidates))
                if not names:
                    raise InvalidInputError("candidates is empty")
                for name in names:
                    if not isinstance(name, str):
                        raise TypeError(f"candidates must be names (str), got {type(name).__name__}")
                    if name not in self._pos:
                        raise KeyError(f"no embedding named {name!r} in the space")
                pos = [self._pos[name] for name in names]
            sims = self._cosines(v, pos) if pos else np.zeros(0)
            ranked = _ranked([(self._names[i], float(s)) for i, s in zip(pos, sims, strict=True)])
        return Selection.decide(ranked, costs=cost_table(costs, [name for name, _ in ranked]), tolerance=tol)

    # -- drift ----------------------------------------------------------------------------------------
    def set_drift_baseline(
        self,
        model: str,
        probe_texts: Sequence[str],
        outputs: Any,
        *,
        text_pairs: Sequence[str] | None = None,
        mode: str = "label",
    ) -> None:
        """Keep ``model``'s outputs on ``probe_texts`` as the baseline later drift checks compare with
        (replacing an older baseline). Outputs: labels, (n, C) label distributions or texts."""
        if not isinstance(model, str) or not model:
            raise InvalidInputError("model must be a non-empty str")
        if mode not in ("label", "text"):
            raise InvalidInputError(f"mode must be 'label' or 'text', got {mode!r}")
        texts = _checks.texts_list(probe_texts, "probe_texts")
        outs = outputs.tolist() if isinstance(outputs, np.ndarray) else list(outputs)
        _checks.same_length(len(texts), len(outs), "outputs")
        pairs = None if text_pairs is None else _checks.texts_list(text_pairs, "text_pairs")
        outs = [o.tolist() if isinstance(o, np.ndarray) else o for o in outs]
        outs = [int(o) if isinstance(o, np.integer) else o for o in outs]
        with self._lock:
            self._sync()
            self._store.set_baseline(model, mode, {"texts": texts, "text_pairs": pairs, "outputs": outs})

    def drift_baseline(self, model: str) -> dict[str, Any] | None:
        """``{"mode", "created", "texts", "text_pairs", "outputs"}`` of a model's baseline, or ``None``."""
        with self._lock:
            self._sync()
            found = self._store.baseline(model)
        if found is None:
            return None
        mode, created, probe = found
        return {"mode": mode, "created": created, **probe}

    def record_drift(self, model: str, report: Any) -> datetime:
        """Store a :class:`~taskspace.embedding.drift.DriftReport` for ``model`` with the current UTC time."""
        from taskspace.embedding.drift import DriftReport

        if not isinstance(report, DriftReport):
            raise TypeError(f"report must be a DriftReport, got {type(report).__name__}")
        with self._lock:
            self._sync()
            return self._store.add_drift(model, report.drifted, report.to_dict())

    def drift_history(self, model: str | None = None) -> list[tuple[str, datetime, Any]]:
        """``(model, when, DriftReport)`` of every stored drift check (of ``model``), oldest first."""
        from taskspace.embedding.drift import DriftReport

        with self._lock:
            self._sync()
            rows = self._store.drift_checks(model)
        return [(name, when, DriftReport.from_dict(d)) for name, when, d in rows]

    def duplicates(self, threshold: float = 0.95, *, kind: str | None = None) -> list[tuple[str, str, float]]:
        """Pairs of entries with cosine similarity ≥ ``threshold``, as ``(name_a, name_b, similarity)``.

        Each pair appears once with ``name_a < name_b``; most similar pairs first. Exact (the
        streaming threshold kernel), without ever holding the full similarity matrix.
        """
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.integer, np.floating)):
            raise TypeError(f"threshold must be a number, got {type(threshold).__name__}")
        if not -1.0 <= float(threshold) <= 1.0:
            raise InvalidInputError(f"threshold must be in [-1, 1], got {threshold}")
        _check_kind(kind)
        with self._lock:
            self._sync()
            pos = [i for i in self._positions(kind) if not self._zero[i]]
            if len(pos) < 2:
                return []
            names = [self._names[i] for i in pos]
            out = []
            for block in pairs_above(self._matrix[pos], threshold=float(threshold)):
                for i, j, s in zip(block.i.tolist(), block.j.tolist(), block.scores.tolist(), strict=True):
                    out.append((names[i], names[j], float(s)))
            return sorted(out, key=lambda t: (-t[2], t[0], t[1]))
