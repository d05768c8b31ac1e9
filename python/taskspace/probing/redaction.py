"""Keeping secrets (API keys, header values) out of everything a probe run stores, logs or raises.

A server may echo what it received: the ``Authorization`` header in an answer's text, a token in a
401 body, cut anywhere. So a secret is not only replaced whole: every piece of it of
:data:`WINDOW` characters or more is replaced (a text holding any 16-character window of the key
loses the whole stretch the windows cover), and this happens *before* a text is cut to a snippet,
stored in the cache, logged or put in a message.

Example:
    >>> from taskspace.probing.redaction import Redactor
    >>> r = Redactor(["sk-0123456789abcdefghijklmnop"])
    >>> r("echo: Bearer sk-0123456789abcdefghij (cut)")
    'echo: Bearer *** (cut)'
    >>> r("a short piece sk-0123 is kept")
    'a short piece sk-0123 is kept'
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

__all__ = ["WINDOW", "Redactor"]

#: Pieces of a secret this long or longer are redacted wherever they appear.
WINDOW = 16
_escape = json.encoder.encode_basestring_ascii  # type: ignore[attr-defined]


class Redactor:
    """Replaces secrets, and every :data:`WINDOW`-character piece of a longer one, with ``***``.

    Args:
        secrets: the strings to keep out (shorter than 4 characters: ignored, they would redact
            everything; shorter than :data:`WINDOW`: replaced only whole).
    """

    __slots__ = ("_json_pieces", "_pieces")

    def __init__(self, secrets: Iterable[str]) -> None:
        pieces: set[str] = set()
        for s in secrets:
            if len(s) < 4:
                continue
            if len(s) <= WINDOW:
                pieces.add(s)
            else:
                pieces.update(s[i : i + WINDOW] for i in range(len(s) - WINDOW + 1))
        self._pieces = tuple(sorted(pieces))
        # the same pieces as they appear inside JSON text (ensure_ascii escapes)
        self._json_pieces = tuple(sorted({_escape(p)[1:-1] for p in pieces}))

    def __bool__(self) -> bool:
        return bool(self._pieces)

    def __call__(self, text: str) -> str:
        """``text`` with every stretch covered by a secret's pieces replaced by ``***``."""
        if not self._pieces or not any(p in text for p in self._pieces):
            return text
        spans: list[tuple[int, int]] = []
        for p in self._pieces:
            start = text.find(p)
            while start >= 0:
                spans.append((start, start + len(p)))
                start = text.find(p, start + 1)
        spans.sort()
        out: list[str] = []
        pos = 0
        end = -1
        for a, b in spans:
            if a > end:
                if end >= 0:
                    out.append("***")
                out.append(text[pos:a])
                end = b
            else:
                end = max(end, b)
            pos = end
        out.append("***")
        out.append(text[pos:])
        return "".join(out)

    def in_json(self, dumped: str) -> bool:
        """Whether JSON text (as ``json.dumps`` with ``ensure_ascii`` writes it) may hold a secret."""
        return any(p in dumped for p in self._json_pieces)

    def value(self, obj: Any) -> Any:
        """``obj`` (JSON-like: dicts, lists, strings, numbers) with every string redacted."""
        if isinstance(obj, str):
            return self(obj)
        if isinstance(obj, list):
            return [self.value(x) for x in obj]
        if isinstance(obj, dict):
            return {self(k): self.value(v) for k, v in obj.items()}
        return obj
