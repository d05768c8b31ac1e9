"""The change log of a space file: every row added or removed, numbered, so that a search index can
be brought up to date in time proportional to the changes since it was saved.

Two SQLite triggers on ``embeddings`` append to ``embedding_changes(seq, op, row)`` (``op`` = 1 for
an insert, -1 for a delete) inside the writer's own transaction, so every committed change — by
this process, another one, or an older taskspace that knows nothing of the log — is in it, and a
rolled-back one is not. ``seq`` is an ``AUTOINCREMENT`` key, never reused; the **generation** of the
file is the last ``seq`` handed out. Entries up to the generation of the saved index are pruned when
it is saved; ``log_floor`` (in ``taskspace_space``) records the highest pruned ``seq``: an index
older than that cannot be caught up and is reloaded or rebuilt.
"""

from __future__ import annotations

import sqlite3
from typing import NamedTuple

import numpy as np

__all__ = ["Changes", "changes_since", "ensure_log", "generation", "log_floor", "prune"]

_LOG = (
    "CREATE TABLE IF NOT EXISTS embedding_changes ("
    "seq INTEGER PRIMARY KEY AUTOINCREMENT, op INTEGER NOT NULL, row INTEGER NOT NULL)",
    "CREATE TRIGGER IF NOT EXISTS embeddings_logged_insert AFTER INSERT ON embeddings "
    "BEGIN INSERT INTO embedding_changes (op, row) VALUES (1, NEW.id); END",
    "CREATE TRIGGER IF NOT EXISTS embeddings_logged_delete AFTER DELETE ON embeddings "
    "BEGIN INSERT INTO embedding_changes (op, row) VALUES (-1, OLD.id); END",
    "CREATE TRIGGER IF NOT EXISTS embeddings_logged_update AFTER UPDATE OF id, vector, kind ON embeddings "
    "BEGIN INSERT INTO embedding_changes (op, row) VALUES (-1, OLD.id); "
    "INSERT INTO embedding_changes (op, row) VALUES (1, NEW.id); END",
)


class Changes(NamedTuple):
    """The net effect of the log entries after a generation: rows gone, rows (re)added."""

    removed: np.ndarray  # int64 row ids to drop from an index (present before, changed or deleted)
    added: np.ndarray  # int64 row ids present now that the index must (re)read
    generation: int


def has_log(db: sqlite3.Connection) -> bool:
    return db.execute("SELECT 1 FROM sqlite_master WHERE name = 'embedding_changes'").fetchone() is not None


def ensure_log(db: sqlite3.Connection) -> bool:
    """Create the log and its triggers (inside a write transaction); ``True`` when they were new."""
    if has_log(db):
        return False
    for statement in _LOG:
        db.execute(statement)
    return True


def generation(db: sqlite3.Connection) -> int:
    """The last change number handed out (0 for a file without changes since the log began)."""
    row = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'embedding_changes'").fetchone()
    return 0 if row is None else int(row[0])


def log_floor(db: sqlite3.Connection) -> int:
    """The highest pruned change number: an index older than this cannot be caught up."""
    row = db.execute("SELECT value FROM taskspace_space WHERE key = 'log_floor'").fetchone()
    return 0 if row is None else int(row[0])


def changes_since(db: sqlite3.Connection, since: int) -> Changes:
    """Net changes after ``since`` (call inside one read snapshot); rows added then deleted cancel out."""
    gen = generation(db)
    entries = db.execute(
        "SELECT op, row FROM embedding_changes WHERE seq > ? AND seq <= ? ORDER BY seq", (since, gen)
    ).fetchall()
    present = {
        r[0]
        for r in db.execute(
            "SELECT id FROM embeddings WHERE id IN (SELECT row FROM embedding_changes WHERE seq > ?)",
            (since,),
        )
    }
    touched = list(dict.fromkeys(row for _, row in entries))
    # Every touched row is dropped (if the index has it) and every one still present is read again.
    removed = np.array(touched, dtype=np.int64)
    added = np.array([r for r in touched if r in present], dtype=np.int64)
    return Changes(removed, added, gen)


def prune(db: sqlite3.Connection, upto: int) -> None:
    """Drop log entries ``<= upto`` (inside a write transaction) and raise ``log_floor`` to it."""
    if upto <= log_floor(db):
        return
    db.execute("DELETE FROM embedding_changes WHERE seq <= ?", (upto,))
    db.execute("INSERT OR REPLACE INTO taskspace_space (key, value) VALUES ('log_floor', ?)", (str(upto),))
