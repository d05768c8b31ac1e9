"""What every local prompt-driven model shares: naming, input checks, scoring.

A prompt model is a local classifier whose behaviour is set entirely by its *prompt* (label
descriptions for :class:`~taskspace.models.ZeroShot`, demonstrations for
:class:`~taskspace.models.InContext`) plus an encoder. It follows the probe layer's local-model
protocol (``taskspace.probing.LocalModel``: ``name``, ``predict(texts)``,
``predict_proba(texts) -> (labels, probs)``), which is all the probe runner and the model server
use, and also has ``labels``.
"""

from __future__ import annotations

import hashlib
import json
import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from taskspace import _checks
from taskspace.errors import InvalidInputError
from taskspace.models.encoder import CachedEncoder, Encoder, default_encoder

__all__ = ["PromptModel"]


def check_texts(texts: Any) -> list[str]:
    """A list of str (possibly empty) from a sequence of str; clear errors otherwise."""
    if isinstance(texts, (list, tuple)) and not texts:
        return []
    t = _checks.texts_list(texts, "texts")
    _checks.check_encodable(t, "texts")
    return t


def check_label(label: Any, what: str) -> str:
    if not isinstance(label, str):
        raise TypeError(f"{what} must be str, got {type(label).__name__}")
    if not label.strip():
        raise InvalidInputError(f"{what} is empty")
    return label


def check_temperature(temperature: Any) -> float:
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float, np.integer, np.floating)):
        raise TypeError(f"temperature must be a number, got {type(temperature).__name__}")
    t = float(temperature)
    if not (math.isfinite(t) and t > 0):
        raise InvalidInputError(f"temperature must be a positive finite number, got {temperature!r}")
    return t


def softmax(scores: np.ndarray, temperature: float) -> np.ndarray:
    """Row-wise softmax of ``scores / temperature`` (float64, rows sum to 1)."""
    z = scores / temperature
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


class PromptModel(ABC):
    """Base class of the local prompt-driven models (not used directly).

    Subclasses set :attr:`kind`, call ``__init__`` (labels, encoder), build their prompt content,
    call ``_set_name``, and implement ``_content`` and ``_proba`` (on unit-length encoded inputs).
    """

    kind: ClassVar[str] = "local"

    def __init__(self, *, labels: tuple[str, ...], encoder: Encoder | None) -> None:
        if encoder is None:
            self._encoder: CachedEncoder = default_encoder()
        elif isinstance(encoder, CachedEncoder):
            self._encoder = encoder
        else:
            self._encoder = CachedEncoder(encoder)
        self._labels = labels
        self._name = ""

    def _set_name(self, name: str | None) -> None:
        """Called by subclasses once their prompt content is set."""
        if name is None:
            name = self._default_name()
        if not isinstance(name, str):
            raise TypeError(f"name must be str, got {type(name).__name__}")
        if not name.strip():
            raise InvalidInputError("name is empty")
        self._name = name

    # -- identity --------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        """The model's name: given, or ``"<kind>-<12 hex digits>"`` from a sha256 of :attr:`prompt`.

        The default name changes whenever anything that changes the answers changes (prompt,
        labels, parameters, encoder name), so it is safe as a cache key.
        """
        return self._name

    @property
    def labels(self) -> tuple[str, ...]:
        """The label names, in the column order of :meth:`predict_proba`."""
        return self._labels

    @property
    def encoder(self) -> CachedEncoder:
        """The (cached) encoder the model compares texts with."""
        return self._encoder

    @property
    def prompt(self) -> dict[str, Any]:
        """Everything that determines the answers, as JSON-compatible data."""
        return {"kind": self.kind, "encoder": self._encoder.name, **self._content()}

    @abstractmethod
    def _content(self) -> dict[str, Any]:
        """The prompt's content (what the subclass's answers depend on)."""

    def _default_name(self) -> str:
        canonical = json.dumps(self.prompt, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return f"{self.kind}-{hashlib.sha256(canonical.encode()).hexdigest()[:12]}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self._name!r}, labels={self._labels!r})"

    # -- answers ---------------------------------------------------------------------------------
    def predict_proba(self, texts: Sequence[str]) -> tuple[list[str], np.ndarray]:
        """Label probabilities: ``(labels, probs)`` with ``probs`` float64 of shape (n, C), rows
        summing to 1, columns in the order of ``labels`` (equal to :attr:`labels`)."""
        t = check_texts(texts)
        if not t:
            return list(self._labels), np.zeros((0, len(self._labels)))
        probs = self._proba(self._encode(t))
        probs /= probs.sum(axis=1, keepdims=True)
        return list(self._labels), probs

    def predict(self, texts: Sequence[str]) -> list[str]:
        """The most probable label of each text (ties go to the label listed first)."""
        labels, probs = self.predict_proba(texts)
        return [labels[j] for j in probs.argmax(axis=1)] if len(probs) else []

    def _encode(self, texts: list[str]) -> np.ndarray:
        return _checks.unit_rows(self._encoder(texts), dtype=np.float64)

    @abstractmethod
    def _proba(self, x: np.ndarray) -> np.ndarray:
        """Unnormalised label scores (n, C) of encoded, unit-norm inputs."""
