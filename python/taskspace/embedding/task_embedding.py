"""TaskEmbedding: a task's vector together with where it came from."""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from taskspace._checks import finite_f32
from taskspace.errors import DegenerateTaskWarning, FingerprintMismatchError, InvalidInputError

__all__ = ["TaskEmbedding", "warn_if_degenerate"]

Kind = Literal["dataset", "model"]
_FORMAT = "taskspace.TaskEmbedding/1"


@dataclass(frozen=True, eq=False)
class TaskEmbedding:
    """A task embedding: a unit-norm float32 vector (or the zero vector for a degenerate task).

    Attributes:
        vector: float32 array of shape ``(dim,)``, read-only.
        fingerprint: the fingerprint of the surrogate that made it.
        mode: ``"label"`` or ``"text"``; only embeddings of the same fingerprint and mode compare.
        method: the surrogate's estimator, ``"operator"`` or ``"fisher"``.
        name: a user-chosen name (``""`` when not given).
        kind: ``"dataset"`` (a DTE, from labelled data) or ``"model"`` (an MTE, from a model's outputs).
        n: the number of (input, output) pairs it was computed from.
        meta: free-form JSON-serialisable metadata.

    Example:
        >>> import taskspace as ts
        >>> sur = ts.Surrogate(features=32, dim=64)
        >>> e = sur.dataset_embedding(["good", "bad", "fine", "awful"], ["pos", "neg", "pos", "neg"], name="toy")
        >>> e.kind, e.n, e.vector.shape
        ('dataset', 4, (64,))
        >>> ts.TaskEmbedding.from_dict(e.to_dict()) == e
        True
    """

    vector: np.ndarray
    fingerprint: str
    mode: str
    method: str
    name: str = ""
    kind: Kind = "dataset"
    n: int = 0
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        try:
            raw = np.asarray(self.vector)
        except ValueError as e:  # ragged
            raise InvalidInputError(f"vector must be a 1-D array of numbers: {e}") from None
        if raw.dtype == object or not (
            np.issubdtype(raw.dtype, np.floating) or np.issubdtype(raw.dtype, np.integer)
        ):
            raise InvalidInputError(f"vector must hold numbers, got dtype {raw.dtype}")
        if raw.ndim == 1 and raw.size:
            finite_f32(raw, "vector")
        v = np.array(raw, dtype=np.float32, copy=True)
        if v.ndim != 1 or v.size == 0:
            raise InvalidInputError(f"vector must be a non-empty 1-D array, got shape {v.shape}")
        if not np.all(np.isfinite(v)):
            raise InvalidInputError("vector contains NaN or infinity")
        if self.kind not in ("dataset", "model"):
            raise InvalidInputError(f"kind must be 'dataset' or 'model', got {self.kind!r}")
        if self.mode not in ("label", "text"):
            raise InvalidInputError(f"mode must be 'label' or 'text', got {self.mode!r}")
        if isinstance(self.n, bool) or not isinstance(self.n, (int, np.integer)) or self.n < 0:
            raise InvalidInputError(f"n must be a non-negative int, got {self.n!r}")
        if not isinstance(self.meta, Mapping):
            raise InvalidInputError(f"meta must be a mapping, got {type(self.meta).__name__}")
        for attr in ("fingerprint", "method", "name"):
            if not isinstance(getattr(self, attr), str):
                raise InvalidInputError(f"{attr} must be str, got {type(getattr(self, attr)).__name__}")
        v.flags.writeable = False
        object.__setattr__(self, "vector", v)
        object.__setattr__(self, "meta", dict(self.meta))

    @property
    def dim(self) -> int:
        """Length of the vector."""
        return int(self.vector.shape[0])

    @property
    def space(self) -> tuple[str, str]:
        """``(fingerprint, mode)``: embeddings are comparable exactly when these are equal."""
        return (self.fingerprint, self.mode)

    @property
    def degenerate(self) -> bool:
        """True for the zero vector of a task that carries no information (one label, identical
        outputs, or inputs without features): its similarity with anything is 0."""
        return not bool(np.any(self.vector))

    def check_comparable(self, other: TaskEmbedding) -> None:
        """Raise :class:`FingerprintMismatchError` unless ``other`` lives in the same space."""
        if self.fingerprint != other.fingerprint:
            raise FingerprintMismatchError(
                f"cannot compare {self._label()} (surrogate {self.fingerprint}) with "
                f"{other._label()} (surrogate {other.fingerprint}): embed both with the same Surrogate"
            )
        if self.mode != other.mode:
            raise FingerprintMismatchError(
                f"cannot compare {self._label()} ({self.mode} mode) with {other._label()} ({other.mode} mode)"
            )

    def similarity(self, other: TaskEmbedding) -> float:
        """Cosine similarity with another embedding of the same space (0 if either is degenerate)."""
        self.check_comparable(other)
        a = self.vector.astype(np.float64)
        b = other.vector.astype(np.float64)
        na, nb = np.linalg.norm(a), np.linalg.norm(b)
        if na == 0 or nb == 0:
            return 0.0
        return float(np.clip(a @ b / (na * nb), -1.0, 1.0))

    def _label(self) -> str:
        return f"{self.kind} embedding {self.name!r}" if self.name else f"{self.kind} embedding"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TaskEmbedding):
            return NotImplemented
        return (
            self.fingerprint == other.fingerprint
            and self.mode == other.mode
            and self.method == other.method
            and self.name == other.name
            and self.kind == other.kind
            and self.n == other.n
            and dict(self.meta) == dict(other.meta)
            and np.array_equal(self.vector, other.vector)
        )

    __hash__ = None  # type: ignore[assignment]  # mutable-looking payload: not hashable

    def __repr__(self) -> str:
        return (
            f"TaskEmbedding(name={self.name!r}, kind={self.kind!r}, mode={self.mode!r}, "
            f"method={self.method!r}, n={self.n}, dim={self.dim}, fingerprint={self.fingerprint!r})"
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict; floats are written exactly (float32 -> float -> float32 is lossless)."""
        return {
            "format": _FORMAT,
            "name": self.name,
            "kind": self.kind,
            "mode": self.mode,
            "method": self.method,
            "n": self.n,
            "fingerprint": self.fingerprint,
            "meta": dict(self.meta),
            "vector": [float(x) for x in self.vector],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TaskEmbedding:
        """Inverse of :meth:`to_dict`."""
        if not isinstance(d, Mapping) or d.get("format") != _FORMAT:
            raise InvalidInputError(f"not a taskspace embedding (expected format {_FORMAT!r})")
        missing = [k for k in ("vector", "fingerprint", "mode", "method", "name", "kind", "n") if k not in d]
        if missing:
            raise InvalidInputError(f"embedding dict is missing the field(s) {missing}")
        if not isinstance(d["vector"], (list, tuple, np.ndarray)):
            raise InvalidInputError(f"vector must be a list of numbers, got {type(d['vector']).__name__}")
        return cls(
            vector=d["vector"],
            fingerprint=d["fingerprint"],
            mode=d["mode"],
            method=d["method"],
            name=d["name"],
            kind=d["kind"],
            n=d["n"],
            meta=d.get("meta", {}),
        )

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the embedding as JSON; the file is replaced atomically (never left half-written)."""
        path = Path(path)
        data = json.dumps(self.to_dict(), separators=(",", ":"))
        fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent or ".")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> TaskEmbedding:
        """Read an embedding written by :meth:`save`."""
        try:
            d = json.loads(Path(path).read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise InvalidInputError(f"{path}: not a taskspace embedding file ({e})") from None
        return cls.from_dict(d)


def warn_if_degenerate(embedding: TaskEmbedding, *, stacklevel: int = 2) -> TaskEmbedding:
    """Warn (:class:`DegenerateTaskWarning`) when ``embedding`` is degenerate; return it.

    Only the entry points a user calls directly warn (``Surrogate.dataset_embedding`` and
    ``model_embedding``, the Ray backend's); everything inside the package reads
    :attr:`TaskEmbedding.degenerate` instead, so no code needs to catch warnings.
    """
    if embedding.degenerate:
        warnings.warn(
            f"{embedding.kind} {embedding.name!r} carries no information (a single label, identical "
            "outputs, or inputs without features); its embedding is the zero vector",
            DegenerateTaskWarning,
            stacklevel=stacklevel + 1,
        )
    return embedding
