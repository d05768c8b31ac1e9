"""The model server's side for language models (:class:`~taskspace.models.gguf_model.GGUFModel`):
OpenAI-shaped greedy completions with real token log-probabilities.

Concurrent requests for one model are batched: the batcher takes every request waiting when the model
becomes free (up to :data:`MAX_LM_BATCH` prompts with the same ``max_tokens`` and ``top_logprobs``,
waiting up to :data:`BATCH_WINDOW` for as many as the previous batch held) and
answers them with one :meth:`GGUFModel.complete` call in a worker thread, so the event loop keeps
accepting requests meanwhile and the batch shares one forward pass and its common prompt prefix.

What a request may set: ``max_tokens`` (default 16; ``max_completion_tokens`` for chat), ``logprobs``
and ``top_logprobs`` (at most 20), ``stop`` (a string or a list: the text is cut before the first
one). Decoding is greedy whatever ``temperature`` says; ``n`` copies the choice.
"""

from __future__ import annotations

import asyncio
import functools
from collections import deque
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from typing import Any

from taskspace.models.gguf_model import Completion, GGUFModel, TokenLogprob

__all__ = [
    "DEFAULT_MAX_TOKENS",
    "MAX_LM_BATCH",
    "LMBatcher",
    "chat_logprobs",
    "completion_logprobs",
    "cut_at_stop",
]

#: Most prompts answered in one forward pass.
MAX_LM_BATCH = 16
#: Longest wait for a batch to fill up again (seconds): a few percent of one forward pass.
BATCH_WINDOW = 0.005
#: Answer tokens when a request does not say (OpenAI's completions default).
DEFAULT_MAX_TOKENS = 16

_Job = tuple[list[int], int, int, "asyncio.Future[Completion]"]


class LMBatcher:
    """Queues one language model's requests and answers them in batches, one batch at a time."""

    def __init__(self, model: GGUFModel, executor: ThreadPoolExecutor) -> None:
        self.model = model
        self._executor = executor
        self._pending: deque[_Job] = deque()
        self._task: asyncio.Task[None] | None = None

    async def complete(self, prompt: list[int], max_tokens: int, top_logprobs: int) -> Completion:
        fut: asyncio.Future[Completion] = asyncio.get_running_loop().create_future()
        self._pending.append((prompt, max_tokens, top_logprobs, fut))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._drain())
        return await fut

    def _next_batch(self) -> list[_Job]:
        first = self._pending.popleft()
        batch, rest = [first], deque[_Job]()
        while self._pending and len(batch) < MAX_LM_BATCH:
            job = self._pending.popleft()
            (batch if job[1:3] == first[1:3] else rest).append(job)
        self._pending.extendleft(reversed(rest))
        return batch

    async def _gather(self, last: int) -> None:
        """After a batch of ``last`` prompts, its clients send their next requests within a few
        milliseconds of their answers: wait up to :data:`BATCH_WINDOW` for as many to arrive, so the
        next forward pass is as wide as the last one instead of one prompt wide."""
        deadline = asyncio.get_running_loop().time() + BATCH_WINDOW
        while len(self._pending) < min(last, MAX_LM_BATCH) and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.0005)

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        last = 1
        while self._pending:
            await self._gather(last)
            batch = self._next_batch()
            last = len(batch)
            prompts = [job[0] for job in batch]
            _, max_tokens, top, _ = batch[0]
            try:
                call = functools.partial(
                    self.model.complete, prompts, max_tokens=max_tokens, top_logprobs=top
                )
                answers = await loop.run_in_executor(self._executor, call)
            except Exception as e:
                for job in batch:
                    if not job[3].done():
                        job[3].set_exception(e)
                continue
            for job, answer in zip(batch, answers, strict=True):
                if not job[3].done():
                    job[3].set_result(answer)

    async def close(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task
        for job in self._pending:
            job[3].cancel()
        self._pending.clear()


def cut_at_stop(c: Completion, stop: Sequence[str]) -> tuple[str, list[TokenLogprob], str]:
    """The answer text cut before the first stop string, the tokens that remain, and the finish reason."""
    cut = min((i for i in (c.text.find(s) for s in stop if s) if i >= 0), default=-1)
    if cut < 0:
        return c.text, c.tokens, c.finish_reason
    kept, length = [], 0
    for t in c.tokens:
        if length >= cut:
            break
        kept.append(t)
        length += len(t.token)
    return c.text[:cut], kept, "stop"


def _bytes(token: str) -> list[int]:
    return list(token.encode("utf-8"))


def chat_logprobs(tokens: list[TokenLogprob]) -> dict[str, Any]:
    """``choices[i].logprobs`` of a chat completion."""
    content = [
        {
            "token": t.token,
            "logprob": t.logprob,
            "bytes": _bytes(t.token),
            "top_logprobs": [{"token": a, "logprob": lp, "bytes": _bytes(a)} for a, lp in t.top],
        }
        for t in tokens
    ]
    return {"content": content, "refusal": None}


def completion_logprobs(tokens: list[TokenLogprob]) -> dict[str, Any]:
    """``choices[i].logprobs`` of a (legacy) completion."""
    offsets, at = [], 0
    for t in tokens:
        offsets.append(at)
        at += len(t.token)
    return {
        "tokens": [t.token for t in tokens],
        "token_logprobs": [t.logprob for t in tokens],
        "top_logprobs": [dict(t.top) for t in tokens],
        "text_offset": offsets,
    }
