"""The search index of a space file: loaded from beside the file, caught up from its change log.

:class:`SpaceIndex` keeps a :class:`~taskspace.search.compact.CompactIndex` (partition 0: datasets,
1: models) in step with the rows of a :class:`~taskspace.space.store.Store`. The index of
``space.sqlite`` is saved in the directory ``space.sqlite.index/`` with the log generation it
reflects. Opening loads it (codes memory-mapped) and applies the log entries after that generation
— time proportional to the changes. A missing, damaged, foreign or too old index (the log was pruned
past its generation) is rebuilt from the rows, with a progress bar, and the reason is logged.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from taskspace import _checks
from taskspace.errors import InvalidInputError
from taskspace.search.compact import CompactIndex
from taskspace.space import changelog
from taskspace.space.store import Store

__all__ = ["SpaceIndex", "StaleIndexError"]

logger = logging.getLogger("taskspace.space")

PARTS = {"dataset": 0, "model": 1}
_BLOCK = 4096
_NO_INDEX = "there is no saved index"


def index_dir(path: Path | None) -> Path | None:
    return None if path is None else path.with_name(path.name + ".index")


class SpaceIndex:
    """The index of one space file, at a known log generation. Not thread-safe (the space locks)."""

    def __init__(
        self, store: Store, dim: int, fingerprint: str, *, scan_max: int, progress: bool = True
    ) -> None:
        self.store = store
        self.dim = dim
        self.fingerprint = fingerprint
        self.scan_max = scan_max
        self.progress = progress
        self.directory = index_dir(store.path)
        self.generation = 0
        self.saved_generation = -1
        self.index = self._new()

    def _new(self) -> CompactIndex:
        return CompactIndex(self.dim, scan_max=self.scan_max)

    # -- opening ---------------------------------------------------------------------------------------
    def open(self) -> None:
        """Load the saved index and catch it up, or rebuild it (and save it) when that is impossible."""
        self.space_id = self.store.settings().get("space_id")
        self._inode = None if self.store.path is None else os.stat(self.store.path).st_ino
        with self.store.read() as db:
            logged = changelog.has_log(db)
        if not logged or self.space_id is None:
            with self.store.transaction() as db:
                changelog.ensure_log(db)
                self.space_id = self.store.settings().get("space_id") or uuid.uuid4().hex
                self.store.set_setting(db, "space_id", self.space_id)
        reason = self._load()
        if reason is None:
            with self.store.read() as db:
                floor = changelog.log_floor(db)
                current = changelog.generation(db)
            if self.generation < floor or self.generation > current:
                reason = f"its generation {self.generation} is outside the change log ({floor}..{current})"
            else:
                self.catch_up()
                return
        self.repair(reason)

    def repair(self, reason: str) -> None:
        """Rebuild from the rows (saying why in the log) and save."""
        if self.directory is not None:
            level = logging.INFO if reason == _NO_INDEX else logging.WARNING
            logger.log(level, "rebuilding the search index of %s: %s", self.store.path, reason)
        self.rebuild()
        if self.directory is not None:
            self.save()

    def _load(self) -> str | None:
        """Load the saved index; the reason it cannot be used, or ``None``."""
        if self.directory is None:
            return "in memory"
        if not self.directory.is_dir():
            return _NO_INDEX
        try:
            index, gen, meta = CompactIndex.load(self.directory, scan_max=self.scan_max)
        except InvalidInputError as e:
            return str(e)
        if meta.get("space_id") != self.space_id:
            return "it belongs to another space file (replaced or copied without its index)"
        if meta.get("fingerprint") != self.fingerprint or index.dim != self.dim:
            return "it was saved for another surrogate"
        self.index, self.generation, self.saved_generation = index, gen, gen
        return None

    def rebuild(self) -> None:
        """Build the index from every row, in one read snapshot of the file."""
        self.index = self._new()
        t0 = time.perf_counter()
        with self.store.read() as db:
            self.generation = changelog.generation(db)
            total = int(db.execute("SELECT COUNT(*) FROM embeddings").fetchone()[0])
            bar = tqdm(total=total, desc="indexing", unit="emb", disable=not self.progress or total < 50_000)
            for ids, kinds, vectors in self.store.blocks(self.dim, _BLOCK):
                self._add(ids, kinds, vectors)
                bar.update(len(ids))
            bar.close()
        if total:
            logger.info("indexed %d embeddings in %.1f s", total, time.perf_counter() - t0)

    def _add(self, ids: list[int], kinds: list[str], vectors: np.ndarray) -> None:
        units = _checks.unit_rows(vectors)
        self.index.add(np.asarray(ids, np.int64), np.array([PARTS[k] for k in kinds], np.uint8), units)

    # -- keeping up ------------------------------------------------------------------------------------
    def catch_up(self, known: dict[int, tuple[str, np.ndarray]] | None = None) -> changelog.Changes | None:
        """Apply the log entries after our generation (``known``: vectors this process just wrote, by
        row id, so they are not read back). Returns the changes, or ``None`` when there were none.

        The whole catch-up happens before the caller releases its lock, so a search sees the state
        before or after it, never between.
        """
        with self.store.read() as db:
            floor = changelog.log_floor(db)
            if self.generation < floor:  # pruned past us: the saved index is newer than we are
                raise StaleIndexError()
            changes = changelog.changes_since(db, self.generation)
            if changes.generation < self.generation:  # the log went backwards: not our history
                raise StaleIndexError()
            if changes.generation == self.generation:
                return None
            missing = [i for i in changes.added.tolist() if known is None or i not in known]
            rows = {r[0]: r for r in self.store.names_of(missing)}
            read = self.store.vectors(missing, self.dim) if missing else np.zeros((0, self.dim), np.float32)
        self.index.remove(changes.removed)
        kinds, vectors = [], []
        fetched = dict(zip(missing, read, strict=True))
        for rowid in changes.added.tolist():
            kind, vec = (
                known[rowid] if known is not None and rowid in known else (rows[rowid][2], fetched[rowid])
            )
            kinds.append(kind)
            vectors.append(vec)
        if vectors:
            self._add(changes.added.tolist(), kinds, np.stack(vectors))
        self.generation = changes.generation
        return changes

    def changed_since_save(self) -> int:
        return self.generation - max(self.saved_generation, 0)

    def save(self) -> None:
        """Save beside the space file, then prune the log up to the saved generation."""
        if self.directory is None or self.store.path is None:
            return
        try:
            if os.stat(self.store.path).st_ino != self._inode:
                return  # the file was replaced under us: this index describes the old one
        except OSError:
            return
        meta: dict[str, Any] = {
            "fingerprint": self.fingerprint,
            "space_id": self.space_id,
        }
        self.index.save(self.directory, generation=self.generation, meta=meta)
        self.saved_generation = self.generation
        with self.store.transaction() as db:
            changelog.prune(db, self.generation)


class StaleIndexError(Exception):
    """The log was pruned past this index's generation: reload the saved index instead."""
