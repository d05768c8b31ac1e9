"""The surrogate: a fixed, deterministic map from (input, output) pairs to task embeddings.

See ``rust/surrogate.rs`` for the exact math. In short: inputs are featurized (hashed word and
character n-grams) and projected by a frozen, seeded sparse random projection to ``features`` dims;
outputs become one-hot / soft label rows (``label`` mode) or are encoded like inputs (``text``
mode); additive statistics (n, Σf, Σy, FᵀF, FᵀY, YᵀY) are collected; a ridge head is fitted in
closed form and read out (``operator`` or ``fisher`` estimator) to a ``dim``-long unit vector.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import numpy as np

from taskspace import _checks, _core
from taskspace.embedding.task_embedding import Kind, TaskEmbedding, warn_if_degenerate
from taskspace.errors import FingerprintMismatchError, InvalidInputError

__all__ = ["SparseFeatures", "Surrogate", "TaskStats"]

Mode = Literal["label", "text"]
Method = Literal["operator", "fisher"]


class SparseFeatures(NamedTuple):
    """Hashed features of n texts in CSR form (``scipy.sparse.csr_matrix((values, indices, indptr))``)."""

    indptr: np.ndarray
    indices: np.ndarray
    values: np.ndarray
    n_features: int


#: Largest pair count statistics can hold (the core counts in 64 bits).
_MAX_PAIRS = 2**64 - 1


def _stats_array(value: Any, name: str, ndim: int) -> np.ndarray:
    """``value`` as a float64 array of ``ndim`` dimensions (no copy when it already is one)."""
    if isinstance(value, np.ndarray) and value.dtype == np.float64:
        arr = value
    else:
        try:
            arr = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError) as e:
            raise TypeError(f"{name} must be a numeric array: {e}") from None
    if arr.ndim != ndim:
        raise InvalidInputError(f"{name} must be {ndim}-D, got shape {arr.shape}")
    return arr


@dataclass(frozen=True, eq=False)
class TaskStats:
    """Additive sufficient statistics of a set of pairs under one surrogate and mode.

    Statistics of disjoint shards merge by addition (``a + b`` or ``a.merge(b)``), and the embedding
    of merged statistics equals the embedding of all the pairs at once (up to float rounding). In
    label mode, statistics with different label sets are aligned by label name before adding.

    Example:
        >>> import taskspace as ts
        >>> sur = ts.Surrogate(features=32, dim=64)
        >>> a = sur.stats(["good", "bad"], ["pos", "neg"])
        >>> b = sur.stats(["fine", "awful", "meh"], ["pos", "neg", "neutral"])
        >>> (a + b).n, (a + b).labels
        (5, ('neg', 'neutral', 'pos'))
    """

    fingerprint: str
    mode: str
    labels: tuple[str, ...] | None
    n: int
    sum_f: np.ndarray
    sum_y: np.ndarray
    ff: np.ndarray
    fy: np.ndarray
    yy: np.ndarray

    def __post_init__(self) -> None:
        # Cheap checks only (drift builds thousands of these): types, ranges and shapes, so that a
        # malformed TaskStats fails here, naming the field, not deep in the core. Finiteness is
        # checked by the core when the statistics are embedded.
        if not isinstance(self.fingerprint, str):
            raise TypeError(f"fingerprint must be str, got {type(self.fingerprint).__name__}")
        if self.mode not in ("label", "text"):
            raise InvalidInputError(f"mode must be 'label' or 'text', got {self.mode!r}")
        if self.labels is not None:
            if isinstance(self.labels, (str, bytes)) or not isinstance(self.labels, Sequence):
                raise TypeError(f"labels must be a sequence of str or None, got {type(self.labels).__name__}")
            if not all(isinstance(x, str) for x in self.labels):
                raise TypeError("labels must be a sequence of str")
            object.__setattr__(self, "labels", tuple(self.labels))
        if isinstance(self.n, bool) or not isinstance(self.n, (int, np.integer)):
            raise TypeError(f"n must be an int, got {type(self.n).__name__}")
        if not 0 <= self.n <= _MAX_PAIRS:
            raise InvalidInputError(f"n must be in 0..{_MAX_PAIRS} (a count of pairs), got {self.n}")
        object.__setattr__(self, "n", int(self.n))
        sum_f = _stats_array(self.sum_f, "sum_f", 1)
        sum_y = _stats_array(self.sum_y, "sum_y", 1)
        h, c = sum_f.shape[0], sum_y.shape[0]
        if not 1 <= h <= _core.MAX_FEATURES:
            raise InvalidInputError(f"sum_f must hold 1..{_core.MAX_FEATURES} values, got {h}")
        if c > max(_core.MAX_LABELS, _core.MAX_FEATURES):
            raise InvalidInputError(f"sum_y holds {c} values, more outputs than the surrogate supports")
        if self.labels is not None and len(self.labels) != c:
            raise InvalidInputError(f"labels has {len(self.labels)} names but sum_y has {c} values")
        fields = {"sum_f": sum_f, "sum_y": sum_y}
        for name, shape in (("ff", (h, h)), ("fy", (h, c)), ("yy", (c, c))):
            fields[name] = _stats_array(getattr(self, name), name, 2)
            if fields[name].shape != shape:
                raise InvalidInputError(f"{name} must have shape {shape}, got {fields[name].shape}")
        for name, arr in fields.items():
            object.__setattr__(self, name, arr)

    @property
    def features(self) -> int:
        return int(self.sum_f.shape[0])

    @property
    def n_outputs(self) -> int:
        """c: label columns in label mode, ``features`` in text mode."""
        return int(self.sum_y.shape[0])

    def merge(self, other: TaskStats) -> TaskStats:
        """Statistics of the union of both sets of pairs."""
        if not isinstance(other, TaskStats):
            raise TypeError(f"can only merge TaskStats, got {type(other).__name__}")
        if (self.fingerprint, self.mode) != (other.fingerprint, other.mode):
            raise FingerprintMismatchError(
                f"cannot merge statistics of surrogate {self.fingerprint} ({self.mode} mode) with "
                f"{other.fingerprint} ({other.mode} mode)"
            )
        a, b = self, other
        if self.labels != other.labels:
            if self.labels is None or other.labels is None:
                raise InvalidInputError(
                    "cannot merge statistics of named labels with statistics of unnamed soft labels"
                )
            names = tuple(sorted(set(self.labels) | set(other.labels)))
            a, b = self._aligned(names), other._aligned(names)
        elif a.n_outputs != b.n_outputs:
            raise InvalidInputError(f"cannot merge statistics with {a.n_outputs} and {b.n_outputs} outputs")
        return TaskStats(
            fingerprint=a.fingerprint,
            mode=a.mode,
            labels=a.labels,
            n=a.n + b.n,
            sum_f=a.sum_f + b.sum_f,
            sum_y=a.sum_y + b.sum_y,
            ff=a.ff + b.ff,
            fy=a.fy + b.fy,
            yy=a.yy + b.yy,
        )

    __add__ = merge

    def _aligned(self, names: tuple[str, ...]) -> TaskStats:
        assert self.labels is not None
        pos = np.array([names.index(x) for x in self.labels], dtype=np.intp)
        c = len(names)
        sum_y = np.zeros(c)
        sum_y[pos] = self.sum_y
        fy = np.zeros((self.features, c))
        fy[:, pos] = self.fy
        yy = np.zeros((c, c))
        yy[np.ix_(pos, pos)] = self.yy
        return TaskStats(self.fingerprint, self.mode, names, self.n, self.sum_f, sum_y, self.ff, fy, yy)


class Surrogate:
    """A frozen surrogate configuration: every DTE and MTE made by equal surrogates share one space.

    Args:
        features: h, the frozen encoder's output size (the surrogate's "hidden size").
        dim: length of the task embeddings. Label-mode embeddings need a few thousand dims to keep
            the read-out's noise below the differences between related tasks (see the README).
        seed: seeds the encoder projection and the read-out.
        method: ``"operator"`` (ridge head = embedding, TuPaTE-like) or ``"fisher"`` (diagonal
            Fisher information of the head, TaskEmb-like).
        hash_bits: the featurizer hashes n-grams into 2**hash_bits buckets.
        ridge: ridge strength relative to the mean feature variance.

    Example:
        >>> import taskspace as ts
        >>> sur = ts.Surrogate(features=64, dim=256, seed=0)
        >>> texts = ["a great film", "a dull film", "loved it", "hated it"]
        >>> d = sur.dataset_embedding(texts, ["pos", "neg", "pos", "neg"], name="toy")
        >>> m = sur.model_embedding(texts, ["yes", "no", "yes", "no"], name="model")
        >>> round(d.similarity(m), 4)  # same partition of the inputs, other label names
        1.0
    """

    __slots__ = ("_core", "_dim", "_features", "_fingerprint", "_hash_bits", "_method", "_ridge", "_seed")

    def __init__(
        self,
        *,
        features: int = 256,
        dim: int = 4096,
        seed: int = 0,
        method: Method = "operator",
        hash_bits: int = 20,
        ridge: float = 1.0,
    ) -> None:
        for name, value in (("features", features), ("dim", dim), ("seed", seed), ("hash_bits", hash_bits)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise TypeError(f"{name} must be an int, got {type(value).__name__}")
        if not 1 <= features <= _core.MAX_FEATURES:
            raise InvalidInputError(f"features must be in 1..{_core.MAX_FEATURES}, got {features}")
        if not 1 <= dim <= _core.MAX_DIM:
            raise InvalidInputError(f"dim must be in 1..{_core.MAX_DIM}, got {dim}")
        if not 1 <= hash_bits <= 30:
            raise InvalidInputError(f"hash_bits must be in 1..30, got {hash_bits}")
        if not 0 <= seed < 2**64:
            raise InvalidInputError(f"seed must be in 0..2**64-1, got {seed}")
        if method not in ("operator", "fisher"):
            raise InvalidInputError(f"method must be 'operator' or 'fisher', got {method!r}")
        if isinstance(ridge, bool) or not isinstance(ridge, (int, float, np.floating, np.integer)):
            raise TypeError(f"ridge must be a number, got {type(ridge).__name__}")
        self._features = int(features)
        self._dim = int(dim)
        self._seed = int(seed)
        self._method: Method = method
        self._hash_bits = int(hash_bits)
        self._ridge = float(ridge)
        self._core = _core.SurrogateCore(
            features=self._features,
            dim=self._dim,
            seed=self._seed,
            hash_bits=self._hash_bits,
            ridge=self._ridge,
            method=self._method,
        )
        canonical = json.dumps(self.config, sort_keys=True, separators=(",", ":"))
        self._fingerprint = hashlib.sha256(canonical.encode()).hexdigest()[:16]

    # -- configuration -------------------------------------------------------------------------
    @property
    def features(self) -> int:
        return self._features

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def seed(self) -> int:
        return self._seed

    @property
    def method(self) -> Method:
        return self._method

    @property
    def hash_bits(self) -> int:
        return self._hash_bits

    @property
    def ridge(self) -> float:
        return self._ridge

    @property
    def version(self) -> int:
        """The surrogate algorithm's version (bumped whenever any embedding's numbers change)."""
        return int(_core.SURROGATE_VERSION)

    @property
    def config(self) -> dict[str, Any]:
        """Everything the embeddings depend on; ``Surrogate(**config)`` minus ``version`` rebuilds it."""
        return {
            "version": self.version,
            "features": self._features,
            "dim": self._dim,
            "seed": self._seed,
            "method": self._method,
            "hash_bits": self._hash_bits,
            "ridge": self._ridge,
        }

    @property
    def fingerprint(self) -> str:
        """16 hex digits of sha256 over the canonical JSON of :attr:`config`."""
        return self._fingerprint

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Surrogate:
        """Rebuild a surrogate from :attr:`config`; refuses a config of another algorithm version."""
        cfg = dict(config)
        version = cfg.pop("version", _core.SURROGATE_VERSION)
        if version != _core.SURROGATE_VERSION:
            raise InvalidInputError(
                f"config is for surrogate version {version}; this taskspace implements {_core.SURROGATE_VERSION}"
            )
        return cls(**cfg)

    def __repr__(self) -> str:
        return (
            f"Surrogate(features={self._features}, dim={self._dim}, seed={self._seed}, method={self._method!r}, "
            f"hash_bits={self._hash_bits}, ridge={self._ridge})  # fingerprint {self._fingerprint}"
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Surrogate) and other._fingerprint == self._fingerprint

    def __hash__(self) -> int:
        return hash(self._fingerprint)

    def __reduce__(self) -> tuple[Any, ...]:
        return (Surrogate.from_config, (self.config,))

    # -- encoder ---------------------------------------------------------------------------------
    def featurize(
        self, texts: Sequence[str], *, text_pairs: Sequence[str] | None = None, n_threads: int | None = None
    ) -> SparseFeatures:
        """Hashed n-gram features (before the projection) as CSR arrays; mostly for inspection.

        Example:
            >>> import taskspace as ts
            >>> sp = ts.Surrogate().featurize(["hello world"])
            >>> sp.indptr.tolist()[0], sp.n_features
            (0, 1048576)
        """
        t, p = self._texts(texts, text_pairs)
        indptr, indices, values = _core.featurize(
            t, p, _core.NS_TEXT, self._hash_bits, _checks.n_threads(n_threads)
        )
        return SparseFeatures(indptr, indices, values, 1 << self._hash_bits)

    def encode(
        self, texts: Sequence[str], *, text_pairs: Sequence[str] | None = None, n_threads: int | None = None
    ) -> np.ndarray:
        """The frozen encoder f: texts (or text pairs) -> float32 array (n, features) of unit rows.

        An empty text has no features and encodes to the zero row.

        Example:
            >>> import taskspace as ts
            >>> ts.Surrogate(features=16).encode(["a text", ""]).shape
            (2, 16)
        """
        t, p = self._texts(texts, text_pairs)
        return self._encode(t, p, _core.NS_TEXT, _checks.n_threads(n_threads))

    def encode_outputs(self, outputs: Sequence[str], *, n_threads: int | None = None) -> np.ndarray:
        """The output encoder of text mode: output texts -> float32 array (n, features), exactly as
        :meth:`stats` encodes ``outputs`` with ``mode="text"`` (outputs hash into a namespace of their
        own, so an output never collides with an input of the same wording).

        Example:
            >>> import taskspace as ts
            >>> ts.Surrogate(features=16).encode_outputs(["yes", "no"]).shape
            (2, 16)
        """
        t = _checks.texts_list(outputs, "outputs")
        _checks.check_encodable(t, "outputs")
        return self._encode(t, None, _core.NS_OUTPUT, _checks.n_threads(n_threads))

    def _encode(self, texts: list[str], pairs: list[str] | None, namespace: int, threads: int) -> np.ndarray:
        flat = self._core.encode(texts, pairs, namespace, threads)
        return flat.reshape(len(texts), self._features)

    def _texts(self, texts: Any, text_pairs: Any) -> tuple[list[str], list[str] | None]:
        t = _checks.texts_list(texts, "texts")
        _checks.check_encodable(t, "texts")
        p = None
        if text_pairs is not None:
            p = _checks.texts_list(text_pairs, "text_pairs")
            _checks.same_length(len(t), len(p), "text_pairs")
            _checks.check_encodable(p, "text_pairs")
        return t, p

    # -- statistics and embeddings ---------------------------------------------------------------
    def stats(
        self,
        texts: Sequence[str],
        outputs: Any,
        *,
        text_pairs: Sequence[str] | None = None,
        mode: Mode = "label",
        n_threads: int | None = None,
    ) -> TaskStats:
        """Additive statistics of the pairs (texts[i], outputs[i]).

        Args:
            texts: the inputs (str); ``text_pairs`` gives second texts for pair tasks (e.g. NLI).
            outputs: label mode: a sequence of labels (str or int) or an (n, C) array of label
                distributions (rows sum to 1); text mode: a sequence of output texts.
            mode: ``"label"`` (only how outputs partition the inputs matters) or ``"text"`` (the
                wording of outputs matters).
        """
        if mode not in ("label", "text"):
            raise InvalidInputError(f"mode must be 'label' or 'text', got {mode!r}")
        threads = _checks.n_threads(n_threads)
        t, p = self._texts(texts, text_pairs)
        labels: tuple[str, ...] | None
        if mode == "label":
            if _checks.is_soft(outputs):
                y = _checks.soft_labels(outputs, len(t))
                labels = None
            else:
                y, labels = _checks.hard_labels(outputs, len(t))
        else:
            if _checks.is_soft(outputs):
                raise TypeError(
                    "text mode needs output texts (a sequence of str), not an array of label scores"
                )
            out_texts = _checks.texts_list(outputs, "outputs")
            _checks.same_length(len(t), len(out_texts), "outputs")
            _checks.check_encodable(out_texts, "outputs")
            y = self._encode(out_texts, None, _core.NS_OUTPUT, threads)
            labels = None
        f = self._encode(t, p, _core.NS_TEXT, threads)
        return self._stats(f, y, mode, labels, threads)

    def encoded_stats(
        self,
        f: np.ndarray,
        y: np.ndarray,
        *,
        mode: Mode = "label",
        labels: tuple[str, ...] | None = None,
        n_threads: int | None = None,
    ) -> TaskStats:
        """Additive statistics of pairs already encoded: :meth:`stats` after its encoding step.

        ``f`` is the (n, features) array :meth:`encode` gives for the inputs; ``y`` the (n, C)
        outputs: one-hot labels or label distributions (label mode), or :meth:`encode_outputs`
        rows (text mode). ``labels`` names the columns of one-hot labels, if they have names.
        For code that encodes once and computes statistics of many output sets (drift).

        Example:
            >>> import numpy as np, taskspace as ts
            >>> sur = ts.Surrogate(features=16, dim=32)
            >>> texts, labels = ["good", "bad", "fine", "awful"], ["+", "-", "+", "-"]
            >>> one_hot = np.array([[1, 0], [0, 1], [1, 0], [0, 1]], dtype=np.float32)
            >>> s = sur.encoded_stats(sur.encode(texts), one_hot, labels=("+", "-"))
            >>> sur.embed(s) == sur.embed(sur.stats(texts, labels))
            True
        """
        if mode not in ("label", "text"):
            raise InvalidInputError(f"mode must be 'label' or 'text', got {mode!r}")
        f = np.ascontiguousarray(f, dtype=np.float32)
        y = np.ascontiguousarray(y, dtype=np.float32)
        if f.ndim != 2 or f.shape[1] != self._features:
            raise InvalidInputError(f"f must have shape (n, {self._features}), got {f.shape}")
        if y.ndim != 2 or y.shape[0] != f.shape[0] or y.shape[1] < 1:
            raise InvalidInputError(f"y must have shape ({f.shape[0]}, C) with C >= 1, got {y.shape}")
        if not (np.isfinite(f).all() and np.isfinite(y).all()):
            raise InvalidInputError("f and y must be finite")
        return self._stats(f, y, mode, labels, _checks.n_threads(n_threads))

    def _stats(
        self, f: np.ndarray, y: np.ndarray, mode: str, labels: tuple[str, ...] | None, threads: int
    ) -> TaskStats:
        n, (sum_f, sum_y, ff, fy, yy) = self._core.stats(f, y, threads)
        h, c = self._features, y.shape[1]
        return TaskStats(
            fingerprint=self._fingerprint,
            mode=mode,
            labels=labels,
            n=int(n),
            sum_f=sum_f,
            sum_y=sum_y,
            ff=ff.reshape(h, h),
            fy=fy.reshape(h, c),
            yy=yy.reshape(c, c),
        )

    def embed(
        self, stats: TaskStats, *, name: str = "", kind: Kind = "dataset", meta: dict[str, Any] | None = None
    ) -> TaskEmbedding:
        """The task embedding of (possibly merged) statistics.

        A task that carries no information (one label, identical outputs, or inputs without any
        features) gets the zero vector; its :attr:`TaskEmbedding.degenerate` is true. This building
        block does not warn; :meth:`dataset_embedding` and :meth:`model_embedding` do.
        """
        self._check_stats(stats)
        if kind not in ("dataset", "model"):
            raise InvalidInputError(f"kind must be 'dataset' or 'model', got {kind!r}")
        if not isinstance(name, str):
            raise TypeError(f"name must be str, got {type(name).__name__}")
        vector = self._vector(stats)
        return TaskEmbedding(
            vector=vector,
            fingerprint=self._fingerprint,
            mode=stats.mode,
            method=self._method,
            name=name,
            kind=kind,
            n=stats.n,
            meta=meta or {},
        )

    def embedding_vector(self, stats: TaskStats) -> np.ndarray:
        """The vector :meth:`embed` would give (float32; the zero vector for a degenerate task),
        without a :class:`TaskEmbedding` around it: for code that embeds many resamples (drift)."""
        self._check_stats(stats)
        return self._vector(stats)

    def _check_stats(self, stats: Any) -> None:
        if not isinstance(stats, TaskStats):
            raise TypeError(f"stats must be TaskStats, got {type(stats).__name__}")
        if stats.fingerprint != self._fingerprint:
            raise FingerprintMismatchError(
                f"statistics were made by surrogate {stats.fingerprint}, not by this one ({self._fingerprint})"
            )

    def _vector(self, stats: TaskStats) -> np.ndarray:
        return self._core.embed(
            stats.n,
            np.ascontiguousarray(stats.sum_f, dtype=np.float64),
            np.ascontiguousarray(stats.sum_y, dtype=np.float64),
            np.ascontiguousarray(stats.ff, dtype=np.float64).ravel(),
            np.ascontiguousarray(stats.fy, dtype=np.float64).ravel(),
            np.ascontiguousarray(stats.yy, dtype=np.float64).ravel(),
            stats.mode,
        )

    def dataset_embedding(
        self,
        texts: Sequence[str],
        labels: Any,
        text_pairs: Sequence[str] | None = None,
        *,
        mode: Mode = "label",
        name: str = "",
        meta: dict[str, Any] | None = None,
        n_threads: int | None = None,
    ) -> TaskEmbedding:
        """DTE: the embedding of a labelled dataset.

        Example:
            >>> import taskspace as ts
            >>> sur = ts.Surrogate(features=32, dim=128)
            >>> d = sur.dataset_embedding(["great", "awful", "superb", "bad"], ["+", "-", "+", "-"], name="toy")
            >>> d.kind, d.mode, d.vector.dtype.name
            ('dataset', 'label', 'float32')
        """
        s = self.stats(texts, labels, text_pairs=text_pairs, mode=mode, n_threads=n_threads)
        return warn_if_degenerate(self.embed(s, name=name, kind="dataset", meta=meta))

    def model_embedding(
        self,
        probe_texts: Sequence[str],
        outputs: Any,
        text_pairs: Sequence[str] | None = None,
        *,
        mode: Mode = "label",
        name: str = "",
        meta: dict[str, Any] | None = None,
        n_threads: int | None = None,
    ) -> TaskEmbedding:
        """MTE: the embedding of a model from its outputs on probe texts.

        ``outputs`` are the model's answers: labels, an (n, C) array of label probabilities, or
        (``mode="text"``) free texts.

        Example:
            >>> import taskspace as ts
            >>> import numpy as np
            >>> sur = ts.Surrogate(features=32, dim=128)
            >>> probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.7, 0.3], [0.1, 0.9]])
            >>> m = sur.model_embedding(["great", "awful", "superb", "bad"], probs, name="clf")
            >>> m.kind, m.n
            ('model', 4)
        """
        s = self.stats(probe_texts, outputs, text_pairs=text_pairs, mode=mode, n_threads=n_threads)
        return warn_if_degenerate(self.embed(s, name=name, kind="model", meta=meta))
