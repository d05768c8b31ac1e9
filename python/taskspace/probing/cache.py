"""The probe cache: a SQLite file (WAL) with one row per answered request, so a killed run resumes.

Key: sha256 of the canonical JSON (sorted keys, no spaces) of ``{"endpoint", "input", "model",
"params", "prompt"}`` — the endpoint id (``kind:base_url``), the model name, the decoding parameters,
the prompt as sent (message list or string) and the input (``[text, text_pair]``). Headers and API
keys are never part of a key or a row.

Rows are written through with a **group commit**: the first row that arrives while no commit is
pending schedules one for the event loop's next turn, and that commit takes every row that has
arrived by then (one transaction per batch instead of one per row); rows arriving during it go into
the next. So an answer is durable within one commit's time of its arrival, the probe runner's
workers wait for the commit of their answer before they send their next request, and a process
killed at any moment loses at most the requests it had in flight. A cancelled or finished run
flushes everything it received. Errors are stored with their cause in a separate table and are
never served as answers; a row that cannot be read back is skipped (its request is asked again).

Example:
    >>> import tempfile, os
    >>> from taskspace.probing.cache import ProbeCache, request_key
    >>> key, request = request_key("chat:http://127.0.0.1:8000/v1", "m", "hi", {"temperature": 0}, ["hi", None])
    >>> with tempfile.TemporaryDirectory() as d:
    ...     cache = ProbeCache(os.path.join(d, "probe.sqlite"))
    ...     with cache.writer() as w:
    ...         w.put_answer(key, "m", request, {"text": "hello"}, 3, 1, 0.01)
    ...     cache.get_many([key])[key].answer, len(cache)
    ...     cache.close()
    ({'text': 'hello'}, 1)
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from hashlib import sha256
from pathlib import Path
from typing import Any, NamedTuple

from taskspace.errors import ProbeError

__all__ = ["CachedAnswer", "ProbeCache", "request_key"]

SCHEMA_VERSION = "1"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS answers (
    key TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    request TEXT NOT NULL,
    answer TEXT NOT NULL,
    prompt_tokens INTEGER,
    completion_tokens INTEGER,
    latency REAL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS errors (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL,
    model TEXT NOT NULL,
    status INTEGER,
    cause TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    created REAL NOT NULL
);
"""
_dumps = json.JSONEncoder(sort_keys=True, separators=(",", ":"), allow_nan=False).encode
_dumps_value = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode
#: WAL pages (4 KiB) written before the writer checkpoints during a run.
WAL_PAGES = 20000
#: Most keys per SELECT (SQLite's default limit on bound parameters is 32766).
_CHUNK = 900


def request_key(endpoint_id: str, model: str, prompt: Any, params: Any, input: Any) -> tuple[str, str]:
    """(key, canonical JSON) of one request.

    Equivalent to ``json.dumps({"endpoint": ..., "input": ..., "model": ..., "params": ...,
    "prompt": ...}, sort_keys=True, separators=(",", ":"))``, built without re-serialising the parts
    that are the same for every request of a model (see :func:`key_prefix`).
    """
    return request_key_from(key_prefix(endpoint_id, model, params), prompt, input)


def key_prefix(endpoint_id: str, model: str, params: Any) -> tuple[str, str, str]:
    """The parts of a canonical request that do not depend on the input."""
    return _dumps(endpoint_id), _dumps(model), _dumps(params)


def request_key_from(prefix: tuple[str, str, str], prompt: Any, input: Any) -> tuple[str, str]:
    """(key, canonical JSON) of one request, from its model's :func:`key_prefix`."""
    return _key(prefix, _dumps(prompt), _dumps(input))


def prompt_request_key(
    prefix: tuple[str, str, str], prompt_json: str, text: str, text_pair: str | None
) -> tuple[str, str]:
    """(key, canonical JSON) of a prompted model's request whose prompt is already in canonical JSON
    (:meth:`taskspace.Prompted.prompt_json`, the probe's hot path); the input is ``[text, text_pair]``."""
    return _key(prefix, prompt_json, _dumps([text, text_pair]))


def _key(prefix: tuple[str, str, str], prompt_json: str, input_json: str) -> tuple[str, str]:
    """The one place a cache key is made: sha256 of the canonical JSON, keys in sorted order."""
    e, m, p = prefix
    canonical = f'{{"endpoint":{e},"input":{input_json},"model":{m},"params":{p},"prompt":{prompt_json}}}'
    return sha256(canonical.encode()).hexdigest(), canonical


def callable_key_prefix(cache_id: str) -> tuple[str, str, str]:
    """The :func:`key_prefix` of a :class:`~taskspace.CallableModel` cached under ``cache_id``
    (its requests have no prompt: the input alone identifies them)."""
    return key_prefix(f"callable:{cache_id}", cache_id, {})


class CachedAnswer(NamedTuple):
    answer: Any
    prompt_tokens: int | None
    completion_tokens: int | None
    latency: float | None


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(str(path), timeout=30.0, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout=30000")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


class ProbeCache:
    """A probe cache file; :func:`taskspace.probe` opens one from the path given as ``cache=``.

    Args:
        path: the SQLite file (created with its parent directories when absent).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = _connect(self.path)
            self._conn.executescript(_SCHEMA)
            row = self._conn.execute("SELECT value FROM meta WHERE name='schema'").fetchone()
            if row is None:
                self._conn.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (SCHEMA_VERSION,))
            elif row[0] != SCHEMA_VERSION:
                raise ProbeError(
                    f"{self.path} is a probe cache of format {row[0]}; this taskspace uses {SCHEMA_VERSION}"
                )
        except sqlite3.DatabaseError as e:
            raise ProbeError(f"cannot use {self.path} as a probe cache: {e}") from None

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> ProbeCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __len__(self) -> int:
        """Number of answers stored."""
        return int(self._conn.execute("SELECT COUNT(*) FROM answers").fetchone()[0])

    def __repr__(self) -> str:
        return f"ProbeCache({str(self.path)!r})"

    def get_many(self, keys: Iterable[str]) -> dict[str, CachedAnswer]:
        """The stored answers among ``keys``."""
        keys = list(keys)
        out: dict[str, CachedAnswer] = {}
        for i in range(0, len(keys), _CHUNK):
            chunk = keys[i : i + _CHUNK]
            marks = ",".join("?" * len(chunk))
            rows = self._conn.execute(
                "SELECT key, answer, prompt_tokens, completion_tokens, latency FROM answers "
                f"WHERE key IN ({marks})",
                chunk,
            )
            for key, answer, pt, ct, lat in rows:
                try:
                    out[key] = CachedAnswer(json.loads(answer), pt, ct, lat)
                except (ValueError, RecursionError, TypeError):  # a damaged row: ask again
                    continue
        return out

    def errors(self) -> list[dict[str, Any]]:
        """Recorded request errors (oldest first): key, model, status, cause, attempts, created."""
        rows = self._conn.execute(
            "SELECT key, model, status, cause, attempts, created FROM errors ORDER BY id"
        ).fetchall()
        names = ("key", "model", "status", "cause", "attempts", "created")
        return [dict(zip(names, r, strict=True)) for r in rows]

    def requests(self, model: str | None = None) -> list[dict[str, Any]]:
        """The stored requests (canonical JSON, decoded) of one model name or of all."""
        if model is None:
            rows = self._conn.execute("SELECT request FROM answers")
        else:
            rows = self._conn.execute("SELECT request FROM answers WHERE model = ?", (model,))
        return [json.loads(r[0]) for r in rows]

    @contextmanager
    def writer(self) -> Iterator[CacheWriter]:
        """A :class:`CacheWriter` for the duration of the ``with`` block (committed at its end)."""
        w = CacheWriter(self.path)
        try:
            yield w
        finally:
            w.close()


class CacheWriter:
    """Writes answer and error rows to the cache, committing them in groups.

    In a running event loop (the probe runner), the first row put while no commit is pending
    schedules one with ``call_soon``: it runs on the loop's next turn and commits every row put by
    then, so rows are durable within one commit's time, many per transaction, by the loop's own
    thread (a writer thread would cost more in GIL hand-offs, since every SQLite step releases
    the GIL, than the writes themselves). :meth:`synced` waits for that commit. ``linger`` > 0
    instead delays each commit by that many seconds (the behaviour before the group commit, kept
    for comparison in ``benches/bench_probe.py``). Outside an event loop, rows are committed by
    :meth:`flush` and :meth:`close`. A commit that fails is retried at the next one; :meth:`close`
    raises :class:`ProbeError` if the rows still cannot be written.
    """

    def __init__(self, path: Path, *, linger: float = 0.0) -> None:
        self._conn = _connect(path)
        # Checkpoints (copying the WAL into the database, with an fsync) would block the event loop
        # for milliseconds each 4 MB; let the WAL grow to 80 MB instead and checkpoint on close.
        self._conn.execute(f"PRAGMA wal_autocheckpoint={WAL_PAGES}")
        self.linger = float(linger)
        self._answers: list[tuple[Any, ...]] = []
        self._errors: list[tuple[Any, ...]] = []
        self._pending: asyncio.Handle | None = None
        self._waiters: list[asyncio.Future[None]] = []
        self._failure: str | None = None
        try:
            self._loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            self._loop = None

    def put_answer(
        self,
        key: str,
        model: str,
        request: str,
        answer: Any,
        prompt_tokens: int | None,
        completion_tokens: int | None,
        latency: float | None,
    ) -> None:
        """Queue an answer row (``answer`` must be JSON without NaN: ``ValueError`` otherwise)."""
        self.put_answer_json(
            key, model, request, _dumps_value(answer), prompt_tokens, completion_tokens, latency
        )

    def put_answer_json(
        self,
        key: str,
        model: str,
        request: str,
        answer_json: str,
        prompt_tokens: int | None,
        completion_tokens: int | None,
        latency: float | None,
    ) -> None:
        """Queue an answer row whose answer is already serialised (and validated) JSON."""
        row = (key, model, request, answer_json, prompt_tokens, completion_tokens, latency, time.time())
        self._answers.append(row)
        self._schedule()

    def put_error(self, key: str, model: str, status: int | None, cause: str, attempts: int) -> None:
        # a cause quoting a server's text may hold lone surrogates, which SQLite cannot store
        cause = cause.encode("utf-8", errors="replace").decode("utf-8")
        self._errors.append((key, model, status, cause, attempts, time.time()))
        self._schedule()

    def _schedule(self) -> None:
        if self._pending is None and self._loop is not None:
            if self.linger > 0:
                self._pending = self._loop.call_later(self.linger, self._commit_soon)
            else:
                self._pending = self._loop.call_soon(self._commit_soon)

    def _commit_soon(self) -> None:
        self._pending = None
        waiters, self._waiters = self._waiters, []
        try:
            self.flush()
        except ProbeError as e:  # keep the rows; the next commit (or close) tries again
            self._failure = str(e)
        finally:
            for w in waiters:
                if not w.done():
                    w.set_result(None)

    async def synced(self) -> None:
        """Wait for the commit of every row put so far (at once without a loop, rows or group
        commit; a commit that failed releases its waiters too, its rows are tried again later)."""
        if self._loop is None or self.linger > 0 or self._pending is None:
            return
        w = self._loop.create_future()
        self._waiters.append(w)
        await w

    def flush(self) -> None:
        """Commit every row put so far."""
        answers, errors = self._answers, self._errors
        if not answers and not errors:
            return
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                if answers:
                    conn.executemany("INSERT OR REPLACE INTO answers VALUES (?,?,?,?,?,?,?,?)", answers)
                if errors:
                    conn.executemany(
                        "INSERT INTO errors (key, model, status, cause, attempts, created) VALUES (?,?,?,?,?,?)",
                        errors,
                    )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as e:
            raise ProbeError(f"writing the probe cache failed: {e}") from None
        self._answers, self._errors = [], []
        self._failure = None

    def close(self) -> None:
        """Commit what is left and close the connection; raise :class:`ProbeError` if that fails."""
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None
        waiters, self._waiters = self._waiters, []
        try:
            self.flush()
        finally:
            for w in waiters:
                if not w.done():
                    w.set_result(None)
            try:
                self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
            except sqlite3.Error:  # another process is writing: its own checkpoints will do
                pass
            self._conn.close()
