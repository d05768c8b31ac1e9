"""From an LLM's answer to a label: verbalizer scores (FUTE's recipe) and text matching.

A labelled prompt names each label's **verbalizers** — the words the LLM may answer with
(``{"positive": ["positive", "great"], "negative": ["negative", "bad"]}``).

**Soft labels from logprobs** (:func:`soft_label_from_logprobs`). At the first generated token that
holds a letter or digit (leading whitespace and punctuation tokens such as ``"`` or ``**`` are
skipped; when no generated token holds one, the first token is read), the token and its
``top_logprobs`` candidates are normalised (surrounding whitespace and punctuation stripped,
lowercased). A candidate scores for a verbalizer when it equals it, or when it
is a prefix of it of at least two characters that begins verbalizers of that label only (a word the
tokenizer splits, e.g. ``"ent"`` for ``"entailment"``). A label's score is the largest log-probability
among its verbalizers' candidates. A label none of whose verbalizers is among the candidates gets a
**floor**: the largest probability it could have had, ``min(lowest listed probability, 1 - sum of
listed probabilities)`` (at least 1e-12), since a token outside the top-k is no likelier than the
last one listed nor than the mass left over. The soft label is the softmax of the scores over labels
(i.e. the scores' probabilities renormalised over the labels). When no verbalizer is among the
candidates at all, logprobs say nothing about the labels and the answer's text is matched instead.

**Text matching** (:func:`match_label`): the answer, lowercased, is searched for the verbalizers as
whole words; the earliest occurrence wins, and at equal positions the longest verbalizer. An answer
with none is *unparseable*: the probe records it with its text and counts it; it is never dropped
silently.

Example:
    >>> from taskspace.probing.labels import Verbalizers
    >>> v = Verbalizers({"pos": ["positive", "great"], "neg": ["negative"]})
    >>> v.match("The answer is: Negative.")
    'neg'
    >>> import math
    >>> tokens = [[" Positive", math.log(0.7), [[" Positive", math.log(0.7)], ["negative", math.log(0.2)]]]]
    >>> v.soft_label(tokens).round(3).tolist()
    [0.778, 0.222]
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from taskspace.errors import ProbeError

__all__ = ["FLOOR_PROBABILITY", "Verbalizers"]

#: The smallest probability a verbalizer missing from ``top_logprobs`` is given.
FLOOR_PROBABILITY = 1e-12
_STRIP = " \t\r\n\u00a0\"'`*_#.,:;!?()[]{}<>-=/\\|~"
_ALNUM = re.compile(r"\w")


def _norm(token: str) -> str:
    return token.strip().strip(_STRIP).lower()


class Verbalizers:
    """Labels and their verbalizer words, with the two ways of reading an answer as a label.

    Args:
        labels: label -> verbalizer words (a str or a sequence of str); or a sequence of labels,
            each its own verbalizer. Verbalizers are matched case-insensitively and must be
            distinct across labels.
    """

    __slots__ = ("_by_word", "_pattern", "_prefix_owner", "labels", "words")

    def __init__(self, labels: Mapping[str, str | Sequence[str]] | Sequence[str]) -> None:
        if isinstance(labels, str):
            raise TypeError(
                "labels must be a mapping label -> verbalizers or a sequence of labels, not a str"
            )
        items: list[tuple[str, Any]]
        if isinstance(labels, Mapping):
            items = list(labels.items())
        else:
            items = [(x, [x]) for x in labels]
        if len(items) < 2:
            raise ProbeError(f"a labelled prompt needs at least 2 labels, got {len(items)}")
        owner: dict[str, str] = {}
        words: list[tuple[str, tuple[str, ...]]] = []
        for label, verbs in items:
            if not isinstance(label, str) or not label:
                raise ProbeError(f"labels must be non-empty str, got {label!r}")
            if isinstance(verbs, str):
                verbs = [verbs]
            normed = []
            for v in verbs:
                if not isinstance(v, str):
                    raise TypeError(f"verbalizers of {label!r} must be str, got {type(v).__name__}")
                n = v.strip().lower()
                if not n:
                    raise ProbeError(f"label {label!r} has an empty verbalizer")
                if owner.get(n, label) != label:
                    raise ProbeError(f"verbalizer {v!r} belongs to both {owner[n]!r} and {label!r}")
                owner[n] = label
                normed.append(n)
            if not normed:
                raise ProbeError(f"label {label!r} has no verbalizers")
            words.append((label, tuple(dict.fromkeys(normed))))
        self.labels: tuple[str, ...] = tuple(label for label, _ in words)
        if len(set(self.labels)) != len(self.labels):
            raise ProbeError("labels must be distinct")
        self.words = tuple(words)
        self._by_word = owner
        alternation = "|".join(re.escape(w) for w in sorted(owner, key=len, reverse=True))
        self._pattern = re.compile(rf"(?<!\w)(?:{alternation})(?!\w)")
        prefix_owner: dict[str, str | None] = {}
        for w, label in owner.items():
            for k in range(2, len(w)):
                p = w[:k]
                prefix_owner[p] = label if prefix_owner.get(p, label) == label else None
        self._prefix_owner = {p: lab for p, lab in prefix_owner.items() if lab is not None}

    def canonical(self) -> list[list[Any]]:
        """JSON-ready ``[[label, [verbalizers]], ...]`` (part of a prompted model's id)."""
        return [[label, list(ws)] for label, ws in self.words]

    def match(self, text: str) -> str | None:
        """The label whose verbalizer occurs first (as a whole word) in ``text``, or ``None``."""
        m = self._pattern.search(text.lower())
        return None if m is None else self._by_word[m.group(0)]

    def _label_of(self, candidate: str) -> str | None:
        t = _norm(candidate)
        if not t:
            return None
        return self._by_word.get(t) or self._prefix_owner.get(t)

    def soft_label(self, tokens: Sequence[Sequence[Any]] | None) -> np.ndarray | None:
        """Label distribution (float64, in :attr:`labels` order) from generated-token logprobs.

        ``tokens`` is a list of ``[token, logprob, [[candidate, logprob], ...]]`` per generated
        token. Returns ``None`` when there are no logprobs or no verbalizer among the candidates of
        the first token that holds a letter or digit (the first token when none does).
        """
        if not tokens:
            return None
        # When the answer stopped before any word (e.g. max_tokens=1 gave " ("), read the first token.
        wordless = not any(_ALNUM.search(t[0]) for t in tokens)
        for token, logprob, top in tokens:
            if not wordless and not _ALNUM.search(token):
                continue
            candidates: dict[str, float] = {}
            for cand, lp in [*top, [token, logprob]]:
                if lp is None or not math.isfinite(lp):
                    continue
                if cand not in candidates or lp > candidates[cand]:
                    candidates[cand] = float(lp)
            if not candidates:
                return None
            scores = dict.fromkeys(self.labels, -math.inf)
            for cand, lp in candidates.items():
                label = self._label_of(cand)
                if label is not None and lp > scores[label]:
                    scores[label] = lp
            if all(s == -math.inf for s in scores.values()):
                return None
            probs = [math.exp(lp) for lp in candidates.values()]
            floor = max(min(min(probs), 1.0 - sum(probs)), FLOOR_PROBABILITY)
            s = np.array([v if v > -math.inf else math.log(floor) for v in scores.values()])
            e = np.exp(s - s.max())
            return e / e.sum()
        return None
