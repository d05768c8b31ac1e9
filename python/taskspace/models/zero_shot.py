"""Zero-shot classification by label descriptions: the prompt is a hypothesis template plus words per label."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from taskspace import _checks
from taskspace.errors import InvalidInputError
from taskspace.models.encoder import Encoder
from taskspace.models.prompt_model import PromptModel, check_label, check_temperature, softmax

__all__ = ["ZeroShot"]


class ZeroShot(PromptModel):
    """A zero-shot classifier whose prompt is a hypothesis template and one description per label.

    Each label's descriptions are put into the template (``template.replace("{}", description)``)
    and encoded; the label's prototype is the mean of its hypotheses' unit vectors, scaled to unit
    length. An input's score for a label is the cosine between the input's vector and the
    prototype, and the probabilities are ``softmax(cosines / temperature)``. With the default
    hashed n-gram encoder cosines between sentences are small (about 0 to 0.4), hence the small
    default temperature (0.05): a cosine lead of 0.05 makes a label e ≈ 2.7 times as likely.
    An input that the encoder maps to the zero vector (for instance the empty string) gets the
    uniform distribution.

    Change the template or the descriptions and the answers change: that is the point — each prompt
    is a different model with its own task embedding.

    Args:
        template: the hypothesis, with ``{}`` (exactly once) where a description goes.
        label_descriptions: label -> description, or label -> list of descriptions (at least two
            labels, in the column order of :meth:`predict_proba`).
        encoder: any callable texts -> ``(n, d)`` vectors; default: the shared built-in hashed
            n-gram encoder (:func:`~taskspace.models.encoder.default_encoder`), which matches words and word
            pieces rather than meanings.
        name: the model's name; default ``"zero-shot-<12 hex digits of sha256(prompt)>"``.
        temperature: softmax temperature applied to the cosines (> 0).

    Example:
        >>> from taskspace.models import ZeroShot
        >>> zs = ZeroShot("This review is {}.", {"positive": "great, loved it", "negative": "awful, hated it"})
        >>> zs.labels
        ('positive', 'negative')
        >>> zs.predict(["I loved it, a great phone", "awful battery, I hated it"])
        ['positive', 'negative']
        >>> labels, probs = zs.predict_proba(["great"])
        >>> labels, probs.shape, bool(abs(probs.sum() - 1) < 1e-12)
        (['positive', 'negative'], (1, 2), True)
        >>> swapped = ZeroShot("This review is {}.", {"positive": "awful, hated it", "negative": "great, loved it"})
        >>> swapped.predict(["I loved it, a great phone"])
        ['negative']
        >>> zs.name != swapped.name
        True
    """

    kind = "zero-shot"

    def __init__(
        self,
        template: str,
        label_descriptions: Mapping[str, str | Sequence[str]],
        *,
        encoder: Encoder | None = None,
        name: str | None = None,
        temperature: float = 0.05,
    ) -> None:
        if not isinstance(template, str):
            raise TypeError(f"template must be str, got {type(template).__name__}")
        if template.count("{}") != 1:
            raise InvalidInputError(
                f"template must contain '{{}}' exactly once (where a label description goes), got {template!r}"
            )
        if not isinstance(label_descriptions, Mapping):
            raise TypeError(
                "label_descriptions must be a mapping label -> description(s), "
                f"got {type(label_descriptions).__name__}"
            )
        if len(label_descriptions) < 2:
            raise InvalidInputError(
                f"label_descriptions needs at least two labels, got {len(label_descriptions)}"
            )
        descriptions: dict[str, tuple[str, ...]] = {}
        owner: dict[str, str] = {}
        for label, value in label_descriptions.items():
            check_label(label, "a label in label_descriptions")
            items = _descriptions(label, value)
            for d in items:
                key = " ".join(d.lower().split())
                if key in owner and owner[key] != label:
                    raise InvalidInputError(
                        f"description {d!r} is given for both labels {owner[key]!r} and {label!r}"
                    )
                owner[key] = label
            descriptions[label] = items
        self._template = template
        self._descriptions = descriptions
        self._temperature = check_temperature(temperature)
        super().__init__(labels=tuple(descriptions), encoder=encoder)

        hypotheses = [template.replace("{}", d) for items in descriptions.values() for d in items]
        vecs = _checks.unit_rows(self.encoder(hypotheses), dtype=np.float64)
        protos, start = [], 0
        for label, items in descriptions.items():
            proto = vecs[start : start + len(items)].mean(axis=0)
            start += len(items)
            norm = float(np.linalg.norm(proto))
            if norm == 0.0:
                raise InvalidInputError(
                    f"the hypotheses of label {label!r} encode to the zero vector (no words the encoder "
                    "knows); give descriptions with words in them"
                )
            protos.append(proto / norm)
        self._prototypes = np.stack(protos)
        self._set_name(name)

    @property
    def template(self) -> str:
        return self._template

    @property
    def label_descriptions(self) -> dict[str, tuple[str, ...]]:
        """label -> its descriptions (a copy)."""
        return dict(self._descriptions)

    @property
    def temperature(self) -> float:
        return self._temperature

    def hypotheses(self) -> dict[str, list[str]]:
        """label -> the filled-in templates the model compares inputs with.

        Example:
            >>> from taskspace.models import ZeroShot
            >>> ZeroShot("It is about {}.", {"sport": ["football", "tennis"], "money": "banks"}).hypotheses()
            {'sport': ['It is about football.', 'It is about tennis.'], 'money': ['It is about banks.']}
        """
        return {
            lab: [self._template.replace("{}", d) for d in items] for lab, items in self._descriptions.items()
        }

    def _content(self) -> dict[str, Any]:
        return {
            "template": self._template,
            "label_descriptions": [[lab, list(items)] for lab, items in self._descriptions.items()],
            "temperature": self._temperature,
        }

    def _proba(self, x: np.ndarray) -> np.ndarray:
        return softmax(x @ self._prototypes.T, self._temperature)


def _descriptions(label: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        items: list[Any] = [value]
    elif isinstance(value, Sequence) and not isinstance(value, (bytes, bytearray)):
        items = list(value)
        if not items:
            raise InvalidInputError(f"label {label!r} has an empty list of descriptions")
    else:
        raise TypeError(
            f"the description(s) of label {label!r} must be a str or a list of str, got {type(value).__name__}"
        )
    for i, d in enumerate(items):
        if not isinstance(d, str):
            raise TypeError(f"description {i} of label {label!r} must be str, got {type(d).__name__}")
        if not d.strip():
            raise InvalidInputError(f"description {i} of label {label!r} is empty")
    return tuple(items)
