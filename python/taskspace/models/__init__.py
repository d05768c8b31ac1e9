"""Local prompt-driven models: classifiers whose answers are set by a prompt, usable offline.

* :class:`ZeroShot` — the prompt is a hypothesis template and descriptions per label; an input gets
  the label whose filled-in description is nearest in an encoder's space.
* :class:`InContext` — the prompt is a list of demonstrations (text, label); an input gets the
  weighted vote of its nearest demonstrations.

Both have ``name``, ``labels``, ``predict(texts)`` and ``predict_proba(texts) -> (labels, probs)``,
so :func:`taskspace.probe` can use them directly, and :mod:`taskspace.models.server` serves them
over an OpenAI-compatible HTTP API (``taskspace serve-models CONFIG``). The encoder is pluggable;
the default is a hashed n-gram encoder (see :mod:`taskspace.models.encoder` for what that means
for quality).

Example:
    >>> from taskspace.models import InContext, ZeroShot
    >>> zs = ZeroShot("This text is about {}.", {"sport": "football, a match, the team", "money": "banks, prices"})
    >>> zs.predict(["the team won the match", "banks raised prices"])
    ['sport', 'money']
    >>> icl = InContext([("the team won", "sport"), ("prices fell", "money")], k=1)
    >>> icl.predict(["the team lost", "prices rose"])
    ['sport', 'money']
"""

from __future__ import annotations

from taskspace.models.encoder import CachedEncoder, Encoder, HashedNgramEncoder
from taskspace.models.in_context import InContext
from taskspace.models.prompt_model import PromptModel
from taskspace.models.zero_shot import ZeroShot

__all__ = [
    "CachedEncoder",
    "Encoder",
    "HashedNgramEncoder",
    "InContext",
    "PromptModel",
    "ZeroShot",
]
