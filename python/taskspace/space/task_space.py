"""TaskSpace: the named task embeddings of one surrogate, persistent, searchable.

A :class:`TaskSpace` holds dataset embeddings (DTEs) and model embeddings (MTEs, e.g. one per LLM and
prompt) by name, in one SQLite file (see :mod:`taskspace.space.store`), and answers the questions task
embeddings are for: which models or prompts suit this dataset (:meth:`TaskSpace.select`), what is
near this task (:meth:`TaskSpace.nearest`), which entries are near-duplicates
(:meth:`TaskSpace.duplicates`).

Searching goes through a :class:`~taskspace.space.space_index.SpaceIndex`: int8 codes of every
vector (memory-mapped), a seeded projection to 256 dimensions, and one HNSW graph per kind (so a
``kind`` filter costs nothing). It is saved beside the file (``space.sqlite.index/``) with the
change-log generation it reflects, loaded on open and caught up from the log — the changes of this
process and of any other — in time proportional to the changes. Answers carry exact cosines,
recomputed from the stored float32 vectors. See docs/search.md.
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
from taskspace.space.selection import Selection, check_tolerance, cost_table
from taskspace.space.space_index import PARTS, SpaceIndex, StaleIndexError
from taskspace.space.store import Row, Store

__all__ = ["TaskSpace"]

_KINDS = (None, "dataset", "model")
#: Searches over at most this many candidates score every one of them (int8 codes, then exact).
INDEX_THRESHOLD = 2_048
#: ``duplicates`` checks every pair up to this many candidates, else makes a k-NN graph pass ...
DUPLICATES_EXACT = 20_000
#: ... with this many neighbours per entry.
DUPLICATES_K = 16
#: ``nearest`` recomputes exact cosines for this many candidates beyond k (their code scores may
#: differ from the exact ones by ~1e-4, enough to swap near-ties at the k-th place).
_MARGIN = 8
_BLOCK = 4_096
#: ``close`` saves the index when at least this many changes were made since it was saved.
SAVE_AFTER = 1_000
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
        index_threshold: int = INDEX_THRESHOLD,
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
    def open(cls, path: str | os.PathLike[str], *, index_threshold: int = INDEX_THRESHOLD) -> TaskSpace:
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
        """Open the search index (load and catch up, or rebuild) and read every row's name."""
        self._version = self._store.data_version()
        self._index = SpaceIndex(self._store, self._dim, self.fingerprint, scan_max=self._index_threshold)
        self._index.open()
        self._read_names()
        if len(self._name_of) != len(self._index.index):  # a cheap check that it describes these rows
            self._index.repair(f"it holds {len(self._index.index)} entries, the file {len(self._name_of)}")
            self._read_names()

    def _read_names(self) -> None:
        self._version = self._store.data_version()
        rows = self._store.names()
        self._name_of: dict[int, str] = {rowid: name for rowid, name, _ in rows}
        self._id_of: dict[str, int] = {name: rowid for rowid, name, _ in rows}
        self._mode = self._store.mode()
        self._sorted: dict[str | None, list[str]] = {}  # kind -> names in order (a cache)

    def _sync(self) -> None:
        if self._closed:
            raise InvalidInputError("this TaskSpace is closed")
        if self._store.data_version() != self._version:
            self._catch_up()

    def _catch_up(self, known: dict[int, tuple[str, np.ndarray]] | None = None) -> None:
        """Apply the change log since our generation to the index and the names (ours or another
        process's writes), in time proportional to the changes."""
        self._version = self._store.data_version()
        if self._store.settings().get("space_id") != self._index.space_id:
            self._load()  # the file was replaced by another space: nothing to catch up from
            return
        try:
            changes = self._index.catch_up(known)
        except StaleIndexError:
            self._load()  # the log was pruned past us: load the newer saved index
            return
        if changes is None:
            return
        for rowid in changes.removed.tolist():
            name = self._name_of.pop(rowid, None)
            if name is not None and self._id_of.get(name) == rowid:
                del self._id_of[name]
        for rowid, name, _ in self._store.names_of(changes.added.tolist()):
            self._name_of[rowid] = name
            self._id_of[name] = rowid
        self._mode = self._store.mode() if self._id_of else None
        self._sorted.clear()

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
            return len(self._id_of)

    def __contains__(self, name: object) -> bool:
        with self._lock:
            self._sync()
            return isinstance(name, str) and name in self._id_of

    def __repr__(self) -> str:
        where = "memory" if self.path is None else str(self.path)
        state = "closed" if self._closed else f"{len(self._id_of)} embeddings"
        return f"TaskSpace({where!r}, surrogate={self.fingerprint}, {state})"

    def close(self) -> None:
        """Close the file (idempotent). The data is already on disk: every change was committed."""
        with self._lock:
            if not self._closed:
                try:
                    if self._index.changed_since_save() >= SAVE_AFTER:
                        self._index.save()
                finally:
                    self._closed = True
                    self._store.close()

    def __enter__(self) -> TaskSpace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- changes ------------------------------------------------------------------------------------
    def add(self, embedding: TaskEmbedding, *, replace: bool = False) -> None:
        """Store a named embedding of this space's surrogate (:meth:`add_many` of one).

        A name already present raises :class:`InvalidInputError` unless ``replace=True``. The
        embedding's ``meta`` must be JSON-serialisable; its ``model``, ``prompt`` and ``dataset``
        keys are also kept in columns of their own (see :mod:`taskspace.space.store`).
        """
        if not isinstance(embedding, TaskEmbedding):
            raise TypeError(f"embedding must be a TaskEmbedding, got {type(embedding).__name__}")
        self.add_many([embedding], replace=replace)

    def add_many(self, embeddings: Sequence[TaskEmbedding], *, replace: bool = False) -> None:
        """Store many named embeddings in one transaction: all of them, or none.

        Every embedding is checked before anything is written: a wrong fingerprint or mode
        (:class:`FingerprintMismatchError`), a missing name, a NaN or infinite vector, a name twice in
        the batch, a name already stored without ``replace=True``, or meta that is not JSON
        (:class:`InvalidInputError`) raise, and the file is unchanged. The search index follows in
        time proportional to the batch.

        Example:
            >>> import taskspace as ts
            >>> sur = ts.Surrogate(features=16, dim=32)
            >>> space = ts.TaskSpace(sur)
            >>> space.add_many([sur.dataset_embedding(["a b", "c d"], ["x", "y"], name=f"d{i}") for i in range(3)])
            >>> len(space), space.remove_many(["d0", "d2"]), space.names()
            (3, None, ['d1'])
        """
        batch = self._checked_batch(embeddings)
        with self._lock:
            self._sync()
            known: dict[int, tuple[str, np.ndarray]] = {}
            with self._store.transaction() as db:
                if not replace:
                    self._check_new_names(db, batch)
                else:
                    for e in batch:
                        self._store.delete(db, e.name)
                other = db.execute("SELECT mode FROM embeddings LIMIT 1").fetchone()
                if batch and other is not None and other[0] != batch[0].mode:
                    e = batch[0]
                    raise FingerprintMismatchError(
                        f"{e.kind} embedding {e.name!r} is in {e.mode} mode; "
                        f"this space holds {other[0]}-mode embeddings"
                    )
                for e in batch:
                    known[self._store.insert(db, e)] = (e.kind, e.vector)
            self._catch_up(known)

    def _checked_batch(self, embeddings: Sequence[TaskEmbedding]) -> list[TaskEmbedding]:
        if isinstance(embeddings, TaskEmbedding):
            raise TypeError("add_many takes a sequence of TaskEmbeddings; use add for one")
        batch = list(embeddings)
        seen: set[str] = set()
        for i, e in enumerate(batch):
            if not isinstance(e, TaskEmbedding):
                raise TypeError(f"embeddings[{i}] must be a TaskEmbedding, got {type(e).__name__}")
            if not e.name:
                raise InvalidInputError(f"embeddings[{i}] has no name; a TaskSpace keeps embeddings by name")
            if e.fingerprint != self.fingerprint:
                raise FingerprintMismatchError(
                    f"{e.kind} embedding {e.name!r} comes from surrogate {e.fingerprint}; this space holds "
                    f"embeddings of surrogate {self.fingerprint}"
                )
            if e.vector.shape != (self._dim,) or not np.isfinite(e.vector).all():
                raise InvalidInputError(f"the vector of {e.name!r} is not {self._dim} finite numbers")
            Store.columns(e)  # what SQLite cannot store faithfully (lone surrogates) is refused here
            if e.name in seen:
                raise InvalidInputError(f"{e.name!r} appears twice in the batch")
            seen.add(e.name)
            if e.mode != batch[0].mode:
                raise FingerprintMismatchError(
                    f"the batch mixes {batch[0].mode} and {e.mode} mode embeddings"
                )
        return batch

    def _check_new_names(self, db: Any, batch: list[TaskEmbedding]) -> None:
        """Inside the write transaction: no name of the batch may be stored already."""
        names = [e.name for e in batch]
        for start in range(0, len(names), 500):
            chunk = names[start : start + 500]
            hit = db.execute(
                f"SELECT name FROM embeddings WHERE name IN ({','.join('?' * len(chunk))}) LIMIT 1", chunk
            ).fetchone()
            if hit is not None:
                raise InvalidInputError(
                    f"{hit[0]!r} is already in the space; pass replace=True to replace it"
                )

    def remove(self, name: str) -> None:
        """Delete an embedding by name; :class:`KeyError` if there is none."""
        self.remove_many([name])

    def remove_many(self, names: Sequence[str]) -> None:
        """Delete embeddings by name in one transaction; :class:`KeyError` (nothing deleted) if one
        is missing."""
        if isinstance(names, (str, bytes)):
            raise TypeError("remove_many takes a sequence of names; use remove for one")
        wanted = list(dict.fromkeys(names))
        with self._lock:
            self._sync()
            with self._store.transaction() as db:
                for name in wanted:
                    if not isinstance(name, str) or self._store.delete(db, name) is None:
                        raise KeyError(f"no embedding named {name!r} in the space")
            self._catch_up()

    def save_index(self) -> None:
        """Save the search index beside the space file now (it is also saved on :meth:`close` after
        many changes): reopening then loads it instead of applying the changes since the last save."""
        with self._lock:
            self._sync()
            self._index.save()

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
            return list(self._names_sorted(kind))

    def _names_sorted(self, kind: str | None) -> list[str]:
        """Names of ``kind`` in order (cached until the next change: do not modify)."""
        got = self._sorted.get(kind)
        if got is None:
            if kind is None:
                got = sorted(self._id_of)
            else:
                part = PARTS[kind]
                got = sorted(
                    n for rowid, n in self._name_of.items() if self._index.index.part_of(rowid) == part
                )
            self._sorted[kind] = got
        return got

    def _exact_units(self, names: Sequence[str]) -> np.ndarray:
        """The stored float32 vectors of ``names``, scaled to unit length (zero rows stay zero)."""
        return _checks.unit_rows(self._store.vectors([self._id_of[n] for n in names], self._dim))

    def _query(self, query: Any, what: str) -> tuple[np.ndarray, int | None]:
        """The unit query vector and, for a query by name, its row id."""
        if isinstance(query, str):
            if query not in self._id_of:
                raise KeyError(f"no embedding named {query!r} in the space")
            own = self._id_of[query]
            v = self._store.vectors([own], self._dim)[0]
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

    def nearest(self, name_or_vector: Any, k: int = 5, *, kind: str | None = None) -> list[tuple[str, float]]:
        """The k entries most similar to a stored entry (by name; itself excluded) or to a vector.

        Returns ``(name, cosine similarity)`` pairs, most similar first, at most ``k`` of them
        (fewer when the space holds fewer candidates); ``kind`` restricts the candidates. The
        cosines are exact (recomputed from the stored float32 vectors); which entries are returned
        comes from the search index: exact (int8 codes, then exact cosines) over at most
        ``index_threshold`` candidates, else the HNSW graph and a re-rank (recall@10 ≥ 0.95, see
        docs/search.md).
        """
        k = _checks.positive_int(k, "k")
        _check_kind(kind)
        with self._lock:
            self._sync()
            v, own = self._query(name_or_vector, "the query")
            parts = (0, 1) if kind is None else (PARTS[kind],)
            ids, _ = self._index.index.search(v, k + _MARGIN, parts=parts, exclude=own)
            if ids.shape[0] == 0:
                return []
            units = _checks.unit_rows(self._store.vectors(ids.tolist(), self._dim))
            # float64, then float32: equal vectors get equal cosines whatever their place in the product
            sims = np.clip((units.astype(np.float64) @ v.astype(np.float64)).astype(np.float32), -1.0, 1.0)
            return _ranked([(self._name_of[i], float(s)) for i, s in zip(ids.tolist(), sims, strict=True)])[
                :k
            ]

    def similarity_matrix(self, kind: str | None = None) -> tuple[list[str], np.ndarray]:
        """Names (sorted) and the float32 matrix of their cosine similarities (0 for a degenerate entry)."""
        _check_kind(kind)
        with self._lock:
            self._sync()
            names = list(self._names_sorted(kind))
            if not names:
                return names, np.zeros((0, 0), dtype=np.float32)
            return names, similarity(self._exact_units(names))

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
                names = [n for n in self._names_sorted("model") if self._id_of[n] != own]
            else:
                if isinstance(candidates, (str, bytes)):
                    raise TypeError("candidates must be a sequence of names, not a single str")
                names = list(dict.fromkeys(candidates))
                if not names:
                    raise InvalidInputError("candidates is empty")
                for name in names:
                    if not isinstance(name, str):
                        raise TypeError(f"candidates must be names (str), got {type(name).__name__}")
                    if name not in self._id_of:
                        raise KeyError(f"no embedding named {name!r} in the space")
            sims = np.concatenate(
                [np.zeros(0, np.float32)]
                + [
                    np.clip(self._exact_units(names[s : s + _BLOCK]) @ v, -1.0, 1.0)
                    for s in range(0, len(names), _BLOCK)
                ]
            )
            ranked = _ranked([(n, float(s)) for n, s in zip(names, sims, strict=True)])
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

    def duplicates(
        self, threshold: float = 0.95, *, kind: str | None = None, exact: bool | None = None
    ) -> list[tuple[str, str, float]]:
        """Pairs of entries with cosine similarity ≥ ``threshold``, as ``(name_a, name_b, similarity)``.

        Each pair appears once with ``name_a < name_b``; most similar pairs first; the similarities
        are exact. Up to :data:`DUPLICATES_EXACT` candidates (or with ``exact=True``) every pair is
        checked with the streaming threshold kernel, never holding the full similarity matrix.
        Beyond that (or with ``exact=False``) a k-NN graph pass is made: each entry's
        :data:`DUPLICATES_K` nearest neighbours from the search index (graph walk and int8 re-rank,
        batched) are the candidate pairs, confirmed with exact cosines. What it gives up: a pair is
        missed only when one entry has more than ``DUPLICATES_K`` neighbours above the threshold
        that the other does not see either (a cluster of more than that many near-copies) or when the
        graph misses it (the recall of :meth:`nearest`, ≥ 0.95 per neighbour in our benchmarks).
        """
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.integer, np.floating)):
            raise TypeError(f"threshold must be a number, got {type(threshold).__name__}")
        if not -1.0 <= float(threshold) <= 1.0:
            raise InvalidInputError(f"threshold must be in [-1, 1], got {threshold}")
        _check_kind(kind)
        with self._lock:
            self._sync()
            parts = (0, 1) if kind is None else (PARTS[kind],)
            n = sum(self._index.index.count(p) for p in parts)
            if n < 2:
                return []
            if exact or (exact is None and n <= DUPLICATES_EXACT):
                out = self._duplicates_exact(float(threshold), kind)
            else:
                out = self._duplicates_graph(float(threshold), parts)
            return sorted(out, key=lambda t: (-t[2], t[0], t[1]))

    def _duplicates_exact(self, threshold: float, kind: str | None) -> list[tuple[str, str, float]]:
        index = self._index.index
        names = [n for n in self._names_sorted(kind) if not index.is_zero(self._id_of[n])]
        out = []
        for block in pairs_above(self._exact_units(names), threshold=threshold):
            for i, j, s in zip(block.i.tolist(), block.j.tolist(), block.scores.tolist(), strict=True):
                out.append((names[i], names[j], float(s)))
        return out

    def _duplicates_graph(self, threshold: float, parts: tuple[int, ...]) -> list[tuple[str, str, float]]:
        """Candidate pairs from each entry's graph neighbours (int8 scores), confirmed exactly."""
        index = self._index.index
        labels = {p: np.flatnonzero(index.live & ~index.zero & (index.part == p)) for p in parts}
        cand: set[tuple[int, int]] = set()
        slack = 2e-3  # the int8 scores are within ~1e-4 of the exact cosines: keep a margin
        for p in parts:
            for start in range(0, labels[p].shape[0], _BLOCK):
                block = labels[p][start : start + _BLOCK]
                units = index.codes.take(block).astype(np.float32) * index.scales[block, None]
                for q in parts:
                    if index.count(q) == 0:
                        continue
                    found = index.neighbours(block, DUPLICATES_K + 1, q)
                    a = np.repeat(block, found.shape[1])
                    b = found.reshape(-1)
                    scores = (
                        np.einsum(
                            "ij,ij->i",
                            np.repeat(units, found.shape[1], axis=0),
                            index.codes.take(b).astype(np.float32),
                        )
                        * index.scales[b]
                    )
                    keep = (a != b) & (scores >= threshold - slack)
                    cand.update(
                        zip(np.minimum(a, b)[keep].tolist(), np.maximum(a, b)[keep].tolist(), strict=True)
                    )
        out = []
        pairs = sorted(cand)
        for start in range(0, len(pairs), _BLOCK):
            chunk = pairs[start : start + _BLOCK]
            ia = index.ids[[a for a, _ in chunk]].tolist()
            ib = index.ids[[b for _, b in chunk]].tolist()
            ua = _checks.unit_rows(self._store.vectors(ia, self._dim))
            ub = _checks.unit_rows(self._store.vectors(ib, self._dim))
            sims = np.einsum("ij,ij->i", ua, ub)
            for x, y, sim in zip(ia, ib, sims.tolist(), strict=True):
                if sim >= threshold:
                    na, nb = sorted((self._name_of[x], self._name_of[y]))
                    out.append((na, nb, float(min(sim, 1.0))))
        return out
