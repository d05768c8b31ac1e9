"""Tokenizers rebuilt from a GGUF file's vocabulary, tokenizing as llama.cpp does.

* ``tokenizer.ggml.model = "llama"`` (SentencePiece, e.g. Gemma): text is split on the vocabulary's
  user-defined tokens, spaces become ``▁``, and adjacent symbols are merged greedily by the score of
  the merged piece (highest first, leftmost on ties); characters outside the vocabulary fall back
  to their UTF-8 bytes (``<0xNN>`` tokens).
* ``tokenizer.ggml.model = "gpt2"`` (byte-level BPE, e.g. SmolLM2, Qwen2): the ``tokenizers``
  package's BPE with the file's merges, after a GPT-2 style pre-tokenization (digits split one by one
  where the model's pre-tokenizer says so).

User text is never parsed for special tokens: a prompt cannot inject ``<eos>`` or a chat turn.
"""

from __future__ import annotations

import heapq
import re
from abc import ABC, abstractmethod
from typing import Any

from taskspace.errors import InvalidInputError
from taskspace.models.gguf_file import GGUFFile

__all__ = ["BytePairTokenizer", "SentencePieceTokenizer", "Tokenizer", "tokenizer_from_gguf"]

_NORMAL, _UNKNOWN, _CONTROL, _USER_DEFINED, _UNUSED, _BYTE = 1, 2, 3, 4, 5, 6


class Tokenizer(ABC):
    """What a GGUF model's tokenizer offers: ``encode``, ``decode``, ``token_text`` and ``special``."""

    bos_id: int | None
    eos_id: int | None
    add_bos: bool
    tokens: list[str]
    _ids: dict[str, int]

    @abstractmethod
    def encode(self, text: str) -> list[int]:
        """Token ids of ``text``, never parsing special tokens in it."""

    @abstractmethod
    def decode(self, ids: list[int]) -> str:
        """The text of ``ids`` (control tokens contribute nothing)."""

    def token_text(self, token_id: int) -> str:
        """The text a single token stands for (what an OpenAI-style ``logprobs`` entry shows)."""
        return self.decode([token_id])

    def special(self, text: str) -> int:
        """The id of a control token such as ``<|im_start|>``; an error if the vocabulary lacks it."""
        try:
            return self._ids[text]  # type: ignore[attr-defined]
        except KeyError:
            raise InvalidInputError(f"the model's vocabulary has no token {text!r}") from None


class SentencePieceTokenizer(Tokenizer):
    def __init__(
        self, tokens: list[str], scores: list[float], types: list[int], meta: dict[str, Any]
    ) -> None:
        self.tokens = tokens
        self._ids = {t: i for i, t in enumerate(tokens)}
        self._scores = scores
        self._types = types
        self.bos_id = meta.get("tokenizer.ggml.bos_token_id")
        self.eos_id = meta.get("tokenizer.ggml.eos_token_id")
        self.add_bos = bool(meta.get("tokenizer.ggml.add_bos_token", True))
        self._space_prefix = bool(meta.get("tokenizer.ggml.add_space_prefix", True))
        user = sorted(
            (t for t, k in zip(tokens, types, strict=True) if k == _USER_DEFINED), key=len, reverse=True
        )
        self._user_split = re.compile("(" + "|".join(re.escape(t) for t in user) + ")") if user else None
        self._byte_ids = [self._ids.get(f"<0x{b:02X}>") for b in range(256)]

    def encode(self, text: str) -> list[int]:
        if self._space_prefix and text and not text.startswith(" "):
            text = " " + text
        parts = self._user_split.split(text) if self._user_split else [text]
        out: list[int] = []
        for i, part in enumerate(parts):
            if not part:
                continue
            if i % 2 == 1:  # a user-defined token, matched whole
                out.append(self._ids[part])
            else:
                out.extend(self._merge(part.replace(" ", "\u2581")))
        return out

    def _merge(self, text: str) -> list[int]:
        sym = list(text)  # one symbol per character; merged symbols grow, emptied ones become ""
        nxt = [*list(range(1, len(sym))), -1]
        prv = list(range(-1, len(sym) - 1))
        heap: list[tuple[float, int, int, int]] = []

        def push(left: int, right: int) -> None:
            if left < 0 or right < 0:
                return
            piece = sym[left] + sym[right]
            tid = self._ids.get(piece)
            if tid is not None:
                heapq.heappush(heap, (-self._scores[tid], left, right, len(piece)))

        for i in range(1, len(sym)):
            push(i - 1, i)
        while heap:
            _, left, right, size = heapq.heappop(heap)
            if not sym[left] or not sym[right] or len(sym[left]) + len(sym[right]) != size:
                continue  # outdated: one side was merged elsewhere since
            sym[left] += sym[right]
            sym[right] = ""
            nxt[left] = nxt[right]
            if nxt[right] >= 0:
                prv[nxt[right]] = left
            push(prv[left], left)
            push(left, nxt[left])
        out: list[int] = []
        for s in sym:
            if not s:
                continue
            tid = self._ids.get(s)
            if tid is not None:
                out.append(tid)
            else:
                out.extend(b for b in (self._byte_ids[x] for x in s.encode("utf-8")) if b is not None)
        return out

    def decode(self, ids: list[int]) -> str:
        raw = bytearray()
        for i in ids:
            t = self.tokens[i]
            if self._types[i] == _BYTE:
                raw.append(int(t[3:5], 16))
            elif self._types[i] != _CONTROL:
                raw.extend(t.replace("\u2581", " ").encode("utf-8"))
        return raw.decode("utf-8", errors="replace")


class BytePairTokenizer(Tokenizer):
    def __init__(self, tokens: list[str], merges: list[str], types: list[int], meta: dict[str, Any]) -> None:
        try:
            from tokenizers import Tokenizer as HFTokenizer
            from tokenizers import decoders, models, pre_tokenizers
        except ImportError:
            raise ImportError("GGUF models need the optional runtime: pip install 'taskspace[llm]'") from None
        self.tokens = tokens
        self._ids = {t: i for i, t in enumerate(tokens)}
        pairs = [tuple(m.split(" ", 1)) for m in merges]
        tok = HFTokenizer(models.BPE(vocab=self._ids, merges=pairs, fuse_unk=False))
        steps = [pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)]
        if meta.get("tokenizer.ggml.pre") in ("smollm", "qwen2"):
            steps.insert(0, pre_tokenizers.Digits(individual_digits=True))
        tok.pre_tokenizer = pre_tokenizers.Sequence(steps)
        tok.decoder = decoders.ByteLevel()
        self._tok = tok
        self.bos_id = meta.get("tokenizer.ggml.bos_token_id")
        self.eos_id = meta.get("tokenizer.ggml.eos_token_id")
        self.add_bos = bool(meta.get("tokenizer.ggml.add_bos_token", False))

    def encode(self, text: str) -> list[int]:
        return list(self._tok.encode(text, add_special_tokens=False).ids)

    def decode(self, ids: list[int]) -> str:
        return str(self._tok.decode(list(ids), skip_special_tokens=False))


def tokenizer_from_gguf(model: GGUFFile) -> Tokenizer:
    """The tokenizer the GGUF file describes."""
    kind = model.metadata.get("tokenizer.ggml.model")
    tokens = model.array("tokenizer.ggml.tokens")
    types = model.array("tokenizer.ggml.token_type") or [_NORMAL] * len(tokens)
    if not tokens:
        raise InvalidInputError(f"{model.path}: the file holds no vocabulary")
    if kind == "llama":
        scores = model.array("tokenizer.ggml.scores") or [0.0] * len(tokens)
        return SentencePieceTokenizer(tokens, scores, types, model.metadata)
    if kind == "gpt2":
        return BytePairTokenizer(tokens, model.array("tokenizer.ggml.merges"), types, model.metadata)
    raise InvalidInputError(f"{model.path}: tokenizer {kind!r} is not supported (supported: llama, gpt2)")
