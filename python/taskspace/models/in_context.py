"""In-context classification by nearest demonstrations: the prompt is a list of (text, label) examples."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from taskspace import _checks
from taskspace.errors import InvalidInputError
from taskspace.models.encoder import Encoder
from taskspace.models.prompt_model import PromptModel, check_label, check_temperature

__all__ = ["InContext"]


class InContext(PromptModel):
    """An in-context classifier whose prompt is a list of demonstrations (text, label).

    An input's answer is the similarity-weighted vote of its ``k`` nearest demonstrations (cosine
    in the encoder's space; ties between equally near demonstrations go to the one listed first).
    Neighbour i gets weight ``exp((cos_i - cos_max) / temperature)``, the votes are normalised, and
    ``smoothing`` mixes in the uniform distribution so that no label gets probability 0:
    ``p = (1 - smoothing) * votes + smoothing / C``. An input that the encoder maps to the zero
    vector (for instance the empty string) is near to nothing and gets the demonstrations' label
    frequencies (smoothed the same way).

    Args:
        demonstrations: the prompt: a non-empty sequence of ``(text, label)`` pairs or of mappings
            with ``"text"`` and ``"label"`` keys.
        k: how many nearest demonstrations vote (>= 1; more than there are means all of them).
        labels: the label set and the column order of :meth:`predict_proba`; default: the labels
            of the demonstrations in order of first appearance. A label may have no demonstration;
            a demonstration's label must be one of them. At least two labels.
        encoder: any callable texts -> ``(n, d)`` vectors; default: the shared built-in hashed
            n-gram encoder (:func:`~taskspace.models.encoder.default_encoder`).
        name: the model's name; default ``"in-context-<12 hex digits of sha256(prompt)>"``.
        temperature: how sharply nearer neighbours outweigh farther ones (> 0).
        smoothing: weight of the uniform distribution mixed into every answer, in [0, 1).

    Example:
        >>> from taskspace.models import InContext
        >>> demos = [("what a lovely day", "happy"), ("I am so glad", "happy"),
        ...          ("this is awful", "sad"), ("I feel so low today", "sad")]
        >>> icl = InContext(demos, k=2)
        >>> icl.labels
        ('happy', 'sad')
        >>> icl.predict(["such a lovely surprise", "awful news again"])
        ['happy', 'sad']
        >>> relabelled = InContext([(t, {"happy": "sad", "sad": "happy"}[y]) for t, y in demos], k=2)
        >>> relabelled.predict(["such a lovely surprise", "awful news again"])
        ['sad', 'happy']
    """

    kind = "in-context"

    def __init__(
        self,
        demonstrations: Sequence[tuple[str, str]] | Sequence[Mapping[str, str]],
        *,
        k: int = 5,
        labels: Sequence[str] | None = None,
        encoder: Encoder | None = None,
        name: str | None = None,
        temperature: float = 0.1,
        smoothing: float = 0.01,
    ) -> None:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
            raise TypeError(f"k must be an int, got {type(k).__name__}")
        if k <= 0:
            raise InvalidInputError(f"k must be >= 1, got {k}")
        if isinstance(smoothing, bool) or not isinstance(smoothing, (int, float, np.integer, np.floating)):
            raise TypeError(f"smoothing must be a number, got {type(smoothing).__name__}")
        if not 0.0 <= float(smoothing) < 1.0:
            raise InvalidInputError(f"smoothing must be in [0, 1), got {smoothing!r}")
        texts, demo_labels = _demonstrations(demonstrations)
        if labels is None:
            label_set = tuple(dict.fromkeys(demo_labels))
        else:
            if isinstance(labels, (str, bytes)) or not isinstance(labels, Sequence):
                raise TypeError(f"labels must be a sequence of str, got {type(labels).__name__}")
            label_set = tuple(check_label(lab, f"labels[{i}]") for i, lab in enumerate(labels))
            if len(set(label_set)) != len(label_set):
                raise InvalidInputError(f"labels has duplicates: {list(labels)!r}")
            known = set(label_set)
            for i, lab in enumerate(demo_labels):
                if lab not in known:
                    raise InvalidInputError(
                        f"demonstration {i} has label {lab!r}, which is not in labels {list(label_set)!r}"
                    )
        if len(label_set) < 2:
            raise InvalidInputError(
                f"an in-context model needs at least two labels, got {list(label_set)!r} "
                "(pass labels=[...] to name labels without demonstrations)"
            )
        self._texts = tuple(texts)
        self._demo_labels = tuple(demo_labels)
        self._k = int(k)
        self._temperature = check_temperature(temperature)
        self._smoothing = float(smoothing)
        super().__init__(labels=label_set, encoder=encoder)

        column = {lab: j for j, lab in enumerate(label_set)}
        self._y = np.zeros((len(texts), len(label_set)))
        self._y[np.arange(len(texts)), [column[lab] for lab in demo_labels]] = 1.0
        self._prior = self._y.mean(axis=0)
        self._vectors = _checks.unit_rows(self.encoder(list(texts)), dtype=np.float64)
        if not self._vectors.any():
            raise InvalidInputError(
                "every demonstration encodes to the zero vector (no words the encoder knows)"
            )
        self._set_name(name)

    @property
    def demonstrations(self) -> list[tuple[str, str]]:
        return list(zip(self._texts, self._demo_labels, strict=True))

    @property
    def k(self) -> int:
        """The number of voting neighbours as given (capped at the number of demonstrations when used)."""
        return self._k

    @property
    def temperature(self) -> float:
        return self._temperature

    @property
    def smoothing(self) -> float:
        return self._smoothing

    def _content(self) -> dict[str, Any]:
        return {
            "demonstrations": [[t, y] for t, y in zip(self._texts, self._demo_labels, strict=True)],
            "labels": list(self.labels),
            "k": self._k,
            "temperature": self._temperature,
            "smoothing": self._smoothing,
        }

    def _proba(self, x: np.ndarray) -> np.ndarray:
        n_demo = len(self._texts)
        k = min(self._k, n_demo)
        sims = x @ self._vectors.T  # (n, n_demo)
        # A stable sort keeps equally near demonstrations in prompt order.
        order = np.argsort(-sims, axis=1, kind="stable")[:, :k]
        near = np.take_along_axis(sims, order, axis=1)
        w = np.exp((near - near[:, :1]) / self._temperature)
        votes = np.einsum("nk,nkc->nc", w, self._y[order]) / w.sum(axis=1, keepdims=True)
        blank = ~x.any(axis=1)
        votes[blank] = self._prior
        c = len(self.labels)
        return (1.0 - self._smoothing) * votes + self._smoothing / c


def _demonstrations(demonstrations: Any) -> tuple[list[str], list[str]]:
    if isinstance(demonstrations, (str, bytes, Mapping)) or not isinstance(demonstrations, Sequence):
        raise TypeError(
            "demonstrations must be a sequence of (text, label) pairs or of {'text': ..., 'label': ...} "
            f"mappings, got {type(demonstrations).__name__}"
        )
    if not demonstrations:
        raise InvalidInputError("demonstrations is empty")
    texts: list[str] = []
    labels: list[str] = []
    for i, demo in enumerate(demonstrations):
        if isinstance(demo, Mapping):
            missing = {"text", "label"} - set(demo)
            if missing:
                raise InvalidInputError(f"demonstration {i} lacks {sorted(missing)!r}")
            text, label = demo["text"], demo["label"]
        elif isinstance(demo, Sequence) and not isinstance(demo, (str, bytes)) and len(demo) == 2:
            text, label = demo
        else:
            raise TypeError(
                f"demonstration {i} must be a (text, label) pair or a mapping with 'text' and 'label', got {demo!r}"
            )
        if not isinstance(text, str):
            raise TypeError(f"the text of demonstration {i} must be str, got {type(text).__name__}")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as e:
            raise InvalidInputError(
                f"the text of demonstration {i} is not valid Unicode: {e.reason}"
            ) from None
        texts.append(text)
        labels.append(check_label(label, f"the label of demonstration {i}"))
    return texts, labels
