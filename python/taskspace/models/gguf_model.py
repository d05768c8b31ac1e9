"""A GGUF language model served locally: prompts in, next-token log-probabilities and greedy text out.

:class:`GGUFModel` is what ``taskspace serve-models`` runs for a ``[models.NAME] gguf = "PATH"``
table. It computes exactly what an OpenAI-compatible server reports for a greedy completion with
``logprobs``: the chosen tokens, their log-probabilities and the ``top_logprobs`` most likely tokens at
each position — found with a partial sort (``argpartition``) of the log-softmax, never a sort of the
whole vocabulary.

Cost: a batch of prompts is one forward pass (their first answer token comes from one set of matrix
products), and the longest token prefix the batch shares with the previous one is computed once and
reused (requests of one prompt template share their instruction). A prompt that wants more than
one answer token is then continued alone: its suffix is run once more to build its own KV cache
(the batched pass keeps only the last logits), then each further token is a one-token step. For classification, where the probe reads the first answer token, ask for
``max_tokens: 1``.

Example:
    >>> from taskspace.errors import InvalidInputError
    >>> from taskspace.models.gguf_model import GGUFModel
    >>> try:
    ...     GGUFModel("no-such-file.gguf")
    ... except InvalidInputError as e:
    ...     print(e)
    GGUF model file 'no-such-file.gguf' does not exist
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from taskspace._checks import positive_int
from taskspace.errors import InvalidInputError
from taskspace.models.gguf_file import open_gguf
from taskspace.models.tokenization import tokenizer_from_gguf
from taskspace.models.transformer import KVCache, Transformer

__all__ = ["Completion", "GGUFModel", "TokenLogprob"]

#: Most ``top_logprobs`` reported per position (OpenAI's own limit is 20).
MAX_TOP_LOGPROBS = 20
#: Shortest shared prefix worth keeping a cache for (tokens).
_MIN_PREFIX = 4


@dataclass(frozen=True)
class TokenLogprob:
    """One answer token: its text, its log-probability and the most likely alternatives."""

    token: str
    logprob: float
    top: list[tuple[str, float]]


@dataclass
class Completion:
    """A greedy completion of one prompt."""

    text: str
    tokens: list[TokenLogprob] = field(default_factory=list)
    prompt_tokens: int = 0
    finish_reason: str = "length"
    ids: list[int] = field(default_factory=list)

    @property
    def completion_tokens(self) -> int:
        return len(self.tokens)


@contextmanager
def _blas_threads(n: int) -> Iterator[None]:
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # without threadpoolctl, BLAS uses what OPENBLAS_NUM_THREADS says
        yield
        return
    with threadpool_limits(limits=n, user_api="blas"):
        yield


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    x = logits.astype(np.float64)
    m = x.max()
    return x - (m + np.log(np.exp(x - m).sum()))


class GGUFModel:
    """A GGUF model file (llama, gemma3 or qwen2 architecture) loaded into memory.

    Args:
        path: the ``.gguf`` file.
        n_threads: BLAS threads for its matrix products (default 1: on a shared 2-core machine one
            thread per model is fastest for short prompts).
        n_ctx: the longest prompt + answer accepted, in tokens.
        name: how the server names it (default: the file name without ``.gguf``).
    """

    def __init__(
        self, path: str | os.PathLike[str], *, n_threads: int = 1, n_ctx: int = 2048, name: str | None = None
    ) -> None:
        self.n_threads = positive_int(n_threads, "n_threads")
        self.n_ctx = positive_int(n_ctx, "n_ctx", minimum=8)
        self.file = open_gguf(path)
        self.name = name or self.file.path.name.removesuffix(".gguf")
        self.tokenizer = tokenizer_from_gguf(self.file)
        self.chat_template = str(self.file.metadata.get("tokenizer.chat_template") or "")
        with _blas_threads(self.n_threads):
            self.transformer = Transformer(self.file)
        self._cache: KVCache | None = None
        self._lock = threading.Lock()  # one forward pass at a time; the cache is shared state

    def __repr__(self) -> str:
        return f"GGUFModel({self.name!r}, {self.file.architecture}, n_threads={self.n_threads})"

    # -- prompts -----------------------------------------------------------------------------------

    def completion_prompt(self, text: str) -> list[int]:
        """Token ids of a plain completion prompt (with the model's BOS token when it uses one)."""
        bos = [self.tokenizer.bos_id] if self.tokenizer.add_bos and self.tokenizer.bos_id is not None else []
        return bos + self.tokenizer.encode(text)

    def chat_prompt(self, messages: Sequence[Mapping[str, str]]) -> list[int]:
        """Token ids of a chat in the model's own turn format (ChatML or Gemma's turns), ending where
        the assistant's answer starts. A model whose file has no chat template is refused."""
        tok = self.tokenizer
        if "<|im_start|>" in self.chat_template:
            start, end = tok.special("<|im_start|>"), tok.special("<|im_end|>")
            out: list[int] = []
            if messages and messages[0].get("role") != "system" and "You are" in self.chat_template:
                # the template's default system turn (SmolLM2's and Qwen's add one)
                default = self.chat_template.split("<|im_start|>system\n", 1)[-1].split("<|im_end|>", 1)[0]
                out += [start, *tok.encode("system\n" + default), end, *tok.encode("\n")]
            for m in messages:
                out += [start, *tok.encode(f"{m['role']}\n{m['content']}"), end, *tok.encode("\n")]
            return [*out, start, *tok.encode("assistant\n")]
        if "<start_of_turn>" in self.chat_template:
            start, end = tok.special("<start_of_turn>"), tok.special("<end_of_turn>")
            out = [tok.bos_id] if tok.bos_id is not None else []
            system = "".join(m["content"] + "\n\n" for m in messages if m.get("role") == "system")
            for m in (m for m in messages if m.get("role") != "system"):
                role = "model" if m["role"] == "assistant" else "user"
                content, system = system + m["content"], ""
                out += [start, *tok.encode(f"{role}\n{content}"), end, *tok.encode("\n")]
            return [*out, start, *tok.encode("model\n")]
        raise InvalidInputError(
            f"model {self.name!r} has no chat template (a base model): use the completions endpoint"
        )

    # -- answers -----------------------------------------------------------------------------------

    def complete(
        self, prompts: Sequence[list[int]], *, max_tokens: int = 1, top_logprobs: int = 0
    ) -> list[Completion]:
        """Greedy completions of token prompts, ``max_tokens`` each (fewer at the end-of-text token)."""
        if not prompts or any(not p for p in prompts):
            raise InvalidInputError("every prompt needs at least one token")
        max_tokens = positive_int(max_tokens, "max_tokens")
        top = min(max(int(top_logprobs), 0), MAX_TOP_LOGPROBS)
        longest = max(len(p) for p in prompts)
        if longest + max_tokens > self.n_ctx:
            raise InvalidInputError(
                f"a prompt of {longest} tokens plus {max_tokens} answer tokens exceeds n_ctx={self.n_ctx}"
            )
        with self._lock, _blas_threads(self.n_threads):
            past = self._shared_prefix(prompts)
            start = 0 if past is None else past.length
            first = self.transformer.last_logits([list(p[start:]) for p in prompts], past)
            out = [self._start(p, row, top) for p, row in zip(prompts, first, strict=True)]
            for p, c in zip(prompts, out, strict=True):
                self._continue(p, c, past, max_tokens, top)
        return out

    def _shared_prefix(self, prompts: Sequence[list[int]]) -> KVCache | None:
        """The KV cache of the longest token prefix every prompt shares (at most all but the last
        token of the shortest), starting from what the previous call left in the cache."""
        first = prompts[0]
        n = _common_length(prompts, min(len(p) for p in prompts) - 1)
        if n < _MIN_PREFIX:
            return None
        base = self._cache
        if base is not None:
            same = _common_length([list(base.tokens), first], min(n, base.length))
            base = base.truncate(same) if same >= _MIN_PREFIX else None
        if base is None or base.length < n:
            base = self.transformer.prefix(list(first[:n]), base)
        self._cache = base
        return base

    def _token(self, logprobs: np.ndarray, top: int) -> tuple[int, TokenLogprob]:
        chosen = int(np.argmax(logprobs))
        alternatives: list[tuple[str, float]] = []
        if top:
            idx = np.argpartition(logprobs, -top)[-top:]
            idx = idx[np.argsort(-logprobs[idx], kind="stable")]
            alternatives = [(self.tokenizer.token_text(int(i)), float(logprobs[i])) for i in idx]
        return chosen, TokenLogprob(self.tokenizer.token_text(chosen), float(logprobs[chosen]), alternatives)

    def _start(self, prompt: list[int], logits: np.ndarray, top: int) -> Completion:
        chosen, entry = self._token(_log_softmax(logits), top)
        if chosen == self.tokenizer.eos_id:
            return Completion(text="", prompt_tokens=len(prompt), finish_reason="stop")
        return Completion(text="", tokens=[entry], prompt_tokens=len(prompt), ids=[chosen])

    def _continue(
        self, prompt: list[int], c: Completion, past: KVCache | None, max_tokens: int, top: int
    ) -> None:
        """Greedy answer tokens after the first, one step each, until ``max_tokens`` or the end."""
        cache = past
        while c.finish_reason != "stop" and len(c.ids) < max_tokens:
            logits, cache = self.transformer.extend(list(prompt) + c.ids, cache)
            chosen, entry = self._token(_log_softmax(logits), top)
            if chosen == self.tokenizer.eos_id:
                c.finish_reason = "stop"
                break
            c.ids.append(chosen)
            c.tokens.append(entry)
        c.text = self.tokenizer.decode(c.ids)


def _common_length(seqs: Sequence[Sequence[int]], limit: int) -> int:
    """How many leading tokens all ``seqs`` share (at most ``limit``)."""
    first = seqs[0]
    n = 0
    while n < limit and all(s[n] == first[n] for s in seqs):
        n += 1
    return n
