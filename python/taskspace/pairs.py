"""Second texts for probing pair models (NLI, paraphrase, stance) with an unpaired probe set."""

from __future__ import annotations

from collections.abc import Sequence

from taskspace import inputs

__all__ = ["pair_probe"]


def _head(text: str, fraction: float) -> str:
    words = text.split()
    return " ".join(words[: max(1, round(len(words) * fraction))])


def pair_probe(texts: Sequence[str], *, offset: int = 7) -> list[str]:
    """A deterministic ``text_pairs`` list for probing pair models with single probe texts.

    Even positions get the first half of their own text (a related, shorter second text, as a
    hypothesis or paraphrase would be); odd positions get the first third of another probe text
    (``offset`` places on, an unrelated second text). A pair model then sees both related and
    unrelated pairs, so its answers vary the way they do on real pair data. In our evaluation this
    mix identified NLI, paraphrase and stance models from their MTEs, where pairing each text with
    its unrelated neighbour did not.

    Example:
        >>> import taskspace as ts
        >>> ts.pair_probe(["one two three four", "five six seven", "eight nine"], offset=1)
        ['one two', 'eight', 'eight']
    """
    t = inputs.texts_list(texts, "texts")
    n = len(t)
    return [_head(t[i], 0.5) if i % 2 == 0 else _head(t[(i + offset) % n], 0.35) for i in range(n)]
