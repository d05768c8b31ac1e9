"""SQLite storage of a :class:`~taskspace.space.task_space.TaskSpace`: one row per named task embedding.

Schema (version :data:`SCHEMA_VERSION`)::

    taskspace_schema(version INTEGER)             -- one row; a newer version is refused
    taskspace_space(key TEXT PRIMARY KEY, value)  -- fingerprint, surrogate (config JSON), mode, dim, created
    embeddings(
        id INTEGER PRIMARY KEY,                    -- stable row id (the search index's id)
        name TEXT NOT NULL UNIQUE, kind TEXT, mode TEXT, method TEXT,
        model TEXT, prompt TEXT, dataset TEXT,     -- from meta (see below), NULL when absent
        n INTEGER, created TEXT,                   -- ISO 8601, UTC
        meta TEXT,                                 -- JSON
        vector BLOB)                               -- little-endian float32, dim * 4 bytes

Drift checks (:func:`taskspace.drift`, ``taskspace drift``) add two tables, created on first use
(files without them are still schema version 1)::

    drift_baselines(model TEXT PRIMARY KEY, mode TEXT, created TEXT,
                    probe TEXT)                   -- JSON: {"texts", "text_pairs", "outputs"}
    drift_checks(id INTEGER PRIMARY KEY, model TEXT, created TEXT,  -- ISO 8601, UTC
                 drifted INTEGER, report TEXT)     -- JSON of DriftReport.to_dict()

``model``, ``prompt`` and ``dataset`` are copied from the embedding's ``meta`` keys of those names
when they are strings; a dataset embedding without ``meta["dataset"]`` gets its own name there.

Every change is one transaction. Files are opened in WAL mode with ``synchronous=FULL``: a committed
change survives a crash or power loss, and a crash during a write leaves the previous state, readable.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from taskspace.embedding.task_embedding import TaskEmbedding
from taskspace.errors import InvalidInputError

__all__ = ["SCHEMA_VERSION", "Row", "Store"]

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE taskspace_schema (version INTEGER NOT NULL);
CREATE TABLE taskspace_space (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE embeddings (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL CHECK (kind IN ('dataset', 'model')),
    mode TEXT NOT NULL,
    method TEXT NOT NULL,
    model TEXT,
    prompt TEXT,
    dataset TEXT,
    n INTEGER NOT NULL,
    created TEXT NOT NULL,
    meta TEXT NOT NULL,
    vector BLOB NOT NULL
);
CREATE INDEX embeddings_kind ON embeddings (kind);
"""

_DRIFT_SCHEMA = """
CREATE TABLE IF NOT EXISTS drift_baselines (
    model TEXT PRIMARY KEY, mode TEXT NOT NULL, created TEXT NOT NULL, probe TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS drift_checks (
    id INTEGER PRIMARY KEY, model TEXT NOT NULL, created TEXT NOT NULL, drifted INTEGER NOT NULL,
    report TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS drift_checks_model ON drift_checks (model, created);
"""

_COLUMNS = "id, name, kind, mode, method, model, prompt, dataset, n, created, meta, vector"
_KINDS = ("dataset", "model")
_MODES = ("label", "text")


def _utf8(value: Any, what: str) -> Any:
    """``value`` unchanged if SQLite can store it: a str must encode as UTF-8 (no lone surrogates)."""
    if isinstance(value, str) and not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as e:
            raise InvalidInputError(
                f"{what} {value!r} is not valid Unicode text: it holds a lone surrogate "
                f"({value[e.start]!r} at position {e.start}), which cannot be stored"
            ) from None
    return value


def _storable(value: Any) -> bool:
    """Whether ``value`` could be a stored key (a lookup of anything else finds nothing)."""
    try:
        _utf8(value, "")
    except InvalidInputError:
        return False
    return isinstance(value, str)


class Row(NamedTuple):
    """One stored embedding with its metadata."""

    id: int
    name: str
    kind: str
    mode: str
    method: str
    model: str | None
    prompt: str | None
    dataset: str | None
    n: int
    created: datetime
    meta: dict[str, Any]
    vector: np.ndarray

    def embedding(self, fingerprint: str) -> TaskEmbedding:
        return TaskEmbedding(
            vector=self.vector,
            fingerprint=fingerprint,
            mode=self.mode,
            method=self.method,
            name=self.name,
            kind=self.kind,  # type: ignore[arg-type]
            n=self.n,
            meta=self.meta,
        )


class Store:
    """The SQLite file (or an in-memory database for ``path=None``) of one task space.

    Opening checks that the file is a taskspace store of a known schema version before writing
    anything to it: an SQLite file of another application, a file that is not SQLite at all, or a
    truncated one raises :class:`InvalidInputError` and is left untouched. A new or empty file gets
    the schema.

    Example:
        >>> import taskspace as ts
        >>> from taskspace.space.store import Store
        >>> sur = ts.Surrogate(features=16, dim=32)
        >>> e = sur.dataset_embedding(["good", "bad"], ["pos", "neg"], name="toy", meta={"dataset": "toy-v1"})
        >>> store = Store(None)  # in memory
        >>> with store.transaction() as db:
        ...     rowid = store.insert(db, e)
        >>> row = store.get("toy", dim=32)
        >>> row.kind, row.dataset, row.embedding(sur.fingerprint) == e
        ('dataset', 'toy-v1', True)
        >>> store.close()
    """

    def __init__(self, path: str | os.PathLike[str] | None) -> None:
        self.path = None if path is None else Path(path)
        where = ":memory:" if self.path is None else str(self.path)
        try:
            self._db = sqlite3.connect(where, isolation_level=None, check_same_thread=False, timeout=30.0)
        except sqlite3.Error as e:
            raise InvalidInputError(f"{where}: cannot open ({e})") from None
        try:
            self._open()
        except BaseException:
            self._db.close()
            raise

    def _tables(self) -> set[str]:
        return {r[0] for r in self._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}

    def _open(self) -> None:
        try:
            if not self._tables():
                self._db.execute("PRAGMA journal_mode = WAL")
                with self.transaction():
                    if not self._tables():  # another process may have created it meanwhile
                        self._create()
            tables = self._tables()
            if "taskspace_schema" not in tables or "embeddings" not in tables:
                raise InvalidInputError(
                    f"{self.path}: an SQLite database that is not a taskspace space "
                    f"(tables: {', '.join(sorted(tables))})"
                )
            rows = self._db.execute("SELECT version FROM taskspace_schema").fetchall()
            if len(rows) != 1 or not isinstance(rows[0][0], int):
                raise InvalidInputError(f"{self.path}: damaged taskspace schema table")
            if rows[0][0] > SCHEMA_VERSION:
                raise InvalidInputError(
                    f"{self.path} has schema version {rows[0][0]}, written by a newer taskspace "
                    f"(this one reads up to {SCHEMA_VERSION})"
                )
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = FULL")
        except sqlite3.DatabaseError as e:
            raise InvalidInputError(f"{self.path}: not a readable taskspace space file ({e})") from None

    def _create(self) -> None:
        for statement in _SCHEMA.split(";"):
            if statement.strip():
                self._db.execute(statement)
        self._db.execute("INSERT INTO taskspace_schema (version) VALUES (?)", (SCHEMA_VERSION,))

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT, rolled back on any exception."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """One consistent read snapshot (BEGIN ... COMMIT) while other connections may write."""
        self._db.execute("BEGIN")
        try:
            yield self._db
        finally:
            self._db.execute("COMMIT")

    def close(self) -> None:
        self._db.close()

    def data_version(self) -> int:
        """Changes whenever another connection commits to the file (SQLite's ``PRAGMA data_version``)."""
        return int(self._db.execute("PRAGMA data_version").fetchone()[0])

    # -- the space's own settings ---------------------------------------------------------------------
    def settings(self) -> dict[str, str]:
        return dict(self._db.execute("SELECT key, value FROM taskspace_space").fetchall())

    def set_setting(self, db: sqlite3.Connection, key: str, value: str) -> None:
        db.execute("INSERT OR REPLACE INTO taskspace_space (key, value) VALUES (?, ?)", (key, value))

    # -- rows -----------------------------------------------------------------------------------------
    @staticmethod
    def columns(e: TaskEmbedding) -> tuple[Any, ...]:
        """The stored columns of ``e`` but ``created``: name, kind, mode, method, model, prompt,
        dataset, n, meta (JSON), vector (bytes). Raises :class:`InvalidInputError` for what cannot be
        stored faithfully: text with a lone surrogate, meta that is not JSON, a non-finite vector."""
        meta = dict(e.meta)
        try:
            meta_json = json.dumps(meta, sort_keys=True, allow_nan=False)
        except (TypeError, ValueError, RecursionError) as err:
            raise InvalidInputError(f"meta of {e.name!r} is not JSON-serialisable: {err}") from None

        def text(key: str) -> str | None:
            value = meta.get(key)
            return value if isinstance(value, str) else None

        _utf8(e.name, "the name")
        texts = {
            "kind": e.kind,
            "mode": e.mode,
            "method": e.method,
            'meta["model"]': text("model"),
            'meta["prompt"]': text("prompt"),
            'meta["dataset"]': text("dataset") or (e.name if e.kind == "dataset" else None),
        }
        for what, value in texts.items():
            _utf8(value, f"the {what} of {e.name!r}")
        vector = np.asarray(e.vector, dtype="<f4")
        if vector.ndim != 1 or not np.isfinite(vector).all():
            raise InvalidInputError(f"the vector of {e.name!r} must be one row of finite numbers")
        return (e.name, *texts.values(), int(e.n), meta_json, vector.tobytes())

    def insert(self, db: sqlite3.Connection, e: TaskEmbedding) -> int:
        """Insert ``e`` (inside ``transaction()``); returns its row id. Checked as :meth:`columns`."""
        *head, meta_json, vector = self.columns(e)
        created = datetime.now(timezone.utc).isoformat(timespec="microseconds")
        cur = db.execute(
            "INSERT INTO embeddings (name, kind, mode, method, model, prompt, dataset, n, created, meta, "
            "vector) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (*head, created, meta_json, vector),
        )
        assert cur.lastrowid is not None
        return int(cur.lastrowid)

    def delete(self, db: sqlite3.Connection, name: str) -> int | None:
        """Delete by name (inside ``transaction()``); returns the deleted row id, if any."""
        if not _storable(name):
            return None
        row = db.execute("SELECT id FROM embeddings WHERE name = ?", (name,)).fetchone()
        if row is None:
            return None
        db.execute("DELETE FROM embeddings WHERE id = ?", (row[0],))
        return int(row[0])

    def get(self, name: str, dim: int) -> Row | None:
        if not _storable(name):
            return None
        row = self._db.execute(f"SELECT {_COLUMNS} FROM embeddings WHERE name = ?", (name,)).fetchone()
        return None if row is None else self._row(row, dim)

    def mode(self) -> str | None:
        """The mode of the stored embeddings (one per space), ``None`` when there are none."""
        row = self._db.execute("SELECT mode FROM embeddings LIMIT 1").fetchone()
        return None if row is None else str(row[0])

    def names(self) -> list[tuple[int, str, str]]:
        """``(id, name, kind)`` of every row, by id, without reading the vectors."""
        return self._named(self._db.execute("SELECT id, name, kind FROM embeddings ORDER BY id").fetchall())

    def _named(self, rows: list[tuple[int, str, str]]) -> list[tuple[int, str, str]]:
        for rowid, name, kind in rows:
            if not isinstance(name, str) or not name or kind not in _KINDS:
                raise InvalidInputError(
                    f"{self.path}: row {rowid} has no valid name or kind ({name!r}, {kind!r}): the file is damaged"
                )
        return rows

    def names_of(self, ids: list[int]) -> list[tuple[int, str, str]]:
        """``(id, name, kind)`` of the rows ``ids`` that exist."""
        out: list[tuple[int, str, str]] = []
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            out += self._db.execute(f"SELECT id, name, kind FROM embeddings WHERE id IN ({marks})", chunk)
        return self._named(out)

    def vectors(self, ids: list[int], dim: int) -> np.ndarray:
        """The float32 vectors of rows ``ids`` (in that order, repeats allowed); :class:`KeyError` for
        a missing id."""
        unique = list(dict.fromkeys(ids))
        found: dict[int, np.ndarray] = {}
        for start in range(0, len(unique), 500):
            chunk = unique[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for rowid, name, blob in self._db.execute(
                f"SELECT id, name, vector FROM embeddings WHERE id IN ({marks})", chunk
            ):
                found[rowid] = self._vector(rowid, name, blob, dim)
        if len(found) != len(unique):
            raise KeyError(f"rows {sorted(set(unique) - set(found))[:5]} are not in the space")
        if not ids:
            return np.zeros((0, dim), dtype=np.float32)
        return np.stack([found[i] for i in ids]).astype(np.float32)

    def blocks(self, dim: int, block: int = 4096) -> Iterator[tuple[list[int], list[str], np.ndarray]]:
        """``(ids, kinds, float32 vectors)`` of every row, by id, ``block`` rows at a time."""
        cur = self._db.execute("SELECT id, kind, name, vector FROM embeddings ORDER BY id")
        while rows := cur.fetchmany(block):
            for rowid, _, name, blob in rows:
                self._vector(rowid, name, blob, dim)
            vecs = np.frombuffer(b"".join(r[3] for r in rows), dtype="<f4").reshape(len(rows), dim)
            yield [r[0] for r in rows], [r[1] for r in rows], vecs.astype(np.float32)

    # -- drift baselines and checks ---------------------------------------------------------------------
    def _drift_tables(self, db: sqlite3.Connection) -> None:
        for statement in _DRIFT_SCHEMA.split(";"):
            if statement.strip():
                db.execute(statement)

    def set_baseline(self, model: str, mode: str, probe: dict[str, Any]) -> datetime:
        """Store (or replace) a model's drift baseline: its probe texts and outputs then."""
        _utf8(model, "the model name")
        _utf8(mode, "the mode")
        created = datetime.now(timezone.utc)
        try:
            payload = json.dumps(probe, allow_nan=False, separators=(",", ":"))
        except (TypeError, ValueError) as err:
            raise InvalidInputError(f"the baseline of {model!r} is not JSON-serialisable: {err}") from None
        with self.transaction() as db:
            self._drift_tables(db)
            db.execute(
                "INSERT OR REPLACE INTO drift_baselines (model, mode, created, probe) VALUES (?, ?, ?, ?)",
                (model, mode, created.isoformat(timespec="microseconds"), payload),
            )
        return created

    def baseline(self, model: str) -> tuple[str, datetime, dict[str, Any]] | None:
        """``(mode, created, probe)`` of a model's drift baseline, or ``None``."""
        if "drift_baselines" not in self._tables() or not _storable(model):
            return None
        row = self._db.execute(
            "SELECT mode, created, probe FROM drift_baselines WHERE model = ?", (model,)
        ).fetchone()
        if row is None:
            return None
        try:
            return row[0], datetime.fromisoformat(row[1]), json.loads(row[2])
        except (TypeError, ValueError) as e:
            raise InvalidInputError(f"{self.path}: damaged drift baseline for {model!r} ({e})") from None

    def add_drift(self, model: str, drifted: bool, report: dict[str, Any]) -> datetime:
        """Append one drift check of ``model`` with the current UTC time; returns that time."""
        _utf8(model, "the model name")
        created = datetime.now(timezone.utc)
        with self.transaction() as db:
            self._drift_tables(db)
            db.execute(
                "INSERT INTO drift_checks (model, created, drifted, report) VALUES (?, ?, ?, ?)",
                (
                    model,
                    created.isoformat(timespec="microseconds"),
                    int(drifted),
                    json.dumps(report, allow_nan=False),
                ),
            )
        return created

    def drift_checks(self, model: str | None = None) -> list[tuple[str, datetime, dict[str, Any]]]:
        """``(model, created, report)`` of the stored drift checks (of one model), oldest first."""
        if "drift_checks" not in self._tables() or (model is not None and not _storable(model)):
            return []
        sql = "SELECT model, created, report FROM drift_checks"
        args: tuple[Any, ...] = ()
        if model is not None:
            sql += " WHERE model = ?"
            args = (model,)
        out = []
        for name, created, report in self._db.execute(sql + " ORDER BY created, id", args):
            try:
                out.append((name, datetime.fromisoformat(created), json.loads(report)))
            except (TypeError, ValueError) as e:
                raise InvalidInputError(f"{self.path}: damaged drift check of {name!r} ({e})") from None
        return out

    def _vector(self, rowid: int, name: Any, blob: Any, dim: int) -> np.ndarray:
        """A stored vector, checked: the right length and finite, or :class:`InvalidInputError`
        naming the row (a NaN vector would otherwise rank first everywhere)."""
        where = f"{self.path}: row {rowid} ({name!r})"
        if not isinstance(blob, bytes) or len(blob) != 4 * dim:
            raise InvalidInputError(
                f"{where}: its vector has {len(blob) if isinstance(blob, bytes) else 'no'} "
                f"bytes, expected {4 * dim} (dim {dim}): the file is damaged"
            )
        vector = np.frombuffer(blob, dtype="<f4")
        finite = np.isfinite(vector)
        if not finite.all():
            bad = np.flatnonzero(~finite)
            raise InvalidInputError(
                f"{where}: its vector holds {bad.size} non-finite value(s) (first {vector[bad[0]]} at "
                f"index {int(bad[0])}): the file is damaged"
            )
        return vector

    def _row(self, r: tuple[Any, ...], dim: int) -> Row:
        """A stored row, checked: a damaged or forged file raises :class:`InvalidInputError` naming the
        row, rather than giving wrong answers later (a NaN vector would rank first everywhere)."""
        rowid, name, kind, mode, method, model, prompt, dataset, n, created, meta, blob = r
        where = f"{self.path}: row {rowid} ({name!r})"
        if not isinstance(name, str) or not name:
            raise InvalidInputError(f"{where} has no valid name: the file is damaged")
        if kind not in _KINDS or mode not in _MODES or not isinstance(method, str):
            raise InvalidInputError(
                f"{where} has kind {kind!r}, mode {mode!r}, method {method!r}: the file is damaged"
            )
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise InvalidInputError(f"{where} has n = {n!r}, not a count: the file is damaged")
        first = self.mode()
        if mode != first:
            raise InvalidInputError(
                f"{where} is in {mode} mode, earlier rows in {first} mode; a space holds one mode: "
                "the file is damaged"
            )
        if not all(v is None or isinstance(v, str) for v in (model, prompt, dataset)):
            raise InvalidInputError(
                f"{where} has a model, prompt or dataset that is not text: the file is damaged"
            )
        vector = self._vector(rowid, name, blob, dim)
        try:
            meta_obj = json.loads(meta)
            stamp = datetime.fromisoformat(created)
        except (TypeError, ValueError, RecursionError) as e:
            raise InvalidInputError(f"{where}: damaged metadata ({e})") from None
        if not isinstance(meta_obj, dict):
            raise InvalidInputError(f"{where}: its meta is not a JSON object: the file is damaged")
        return Row(
            id=int(rowid),
            name=name,
            kind=kind,
            mode=mode,
            method=method,
            model=model,
            prompt=prompt,
            dataset=dataset,
            n=n,
            created=stamp,
            meta=meta_obj,
            vector=vector,
        )
