"""Ask one served LLM every prompt of the experiment, on the probe texts and on each task's test texts.

Prompts are asked one at a time (all probe texts, then all test texts), so consecutive requests share
their template's prefix and the server batches them (up to 16 in flight). Answers go through the
probe layer's SQLite cache (one file per model under the run's cache directory): a killed run
resumes without asking anything already answered, and a free variant (swapped or alternative
verbalizers, see :mod:`taskspace.evaluation.llm_prompts`) is its base prompt's cached answers read
with other verbalizers. One progress line per prompt says what it cost and what is left.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from taskspace.evaluation.llm_prompts import TOP_LOGPROBS, PromptSpec
from taskspace.evaluation.progress import Log
from taskspace.probing.endpoints import OpenAIEndpoint
from taskspace.probing.prompted import Prompted
from taskspace.probing.runner import probe

__all__ = ["Answers", "Inputs", "TaskInputs", "probe_model", "prompted"]


@dataclass(frozen=True)
class TaskInputs:
    """One task's test texts (seeded sample), their second texts and gold labels."""

    texts: list[str]
    pairs: list[str] | None
    gold: list[str]


@dataclass(frozen=True)
class Inputs:
    """Everything asked: the probe texts, their pair texts, and each task's test inputs."""

    probe_texts: list[str]
    probe_pairs: list[str]
    tasks: dict[str, TaskInputs]


@dataclass(frozen=True)
class Answers:
    """One prompt's soft labels (NaN rows: no label read) and what getting them cost."""

    probe: np.ndarray
    test: np.ndarray
    calls: int
    cached: int
    errors: int


def prompted(spec: PromptSpec, base_url: str, model: str) -> Prompted:
    """The probe layer's model for ``spec`` on the server at ``base_url``: one answer token with
    :data:`TOP_LOGPROBS` candidates (the soft label is read there)."""
    kind = "chat" if spec.chat else "completions"
    ep = OpenAIEndpoint(base_url, model, kind=kind, max_concurrency=16, timeout=600.0, max_retries=3)
    params: dict[str, object] = {"max_tokens": 1}
    if spec.chat:
        params.update(logprobs=True, top_logprobs=TOP_LOGPROBS)
    else:
        params["logprobs"] = TOP_LOGPROBS
    return Prompted(ep, spec.template, labels=spec.labels, params=params, name=spec.id)


def _ordered(specs: Sequence[PromptSpec]) -> list[PromptSpec]:
    """Prompts with their own requests first, free variants after (their base is then cached)."""
    return [s for s in specs if s.base is None] + [s for s in specs if s.base is not None]


async def _ask(m: Prompted, spec: PromptSpec, inputs: Inputs, cache: Path) -> Answers:
    pairs = inputs.probe_pairs if m.uses_pairs else None
    on_probe = await probe([m], inputs.probe_texts, text_pairs=pairs, cache=cache, progress=False)
    task = inputs.tasks[spec.task]
    on_test = await probe([m], task.texts, text_pairs=task.pairs, cache=cache, progress=False)
    u1, u2 = on_probe.usage, on_test.usage
    return Answers(
        on_probe[spec.id].probs(),
        on_test[spec.id].probs(),
        calls=u1.calls + u2.calls - u1.cached - u2.cached,
        cached=u1.cached + u2.cached,
        errors=u1.errors + u2.errors,
    )


async def probe_model(
    model: str, base_url: str, specs: Sequence[PromptSpec], inputs: Inputs, cache: Path, log: Log
) -> dict[str, Answers]:
    """Every prompt of ``specs`` on the probe texts and its task's test texts: prompt id -> answers."""
    # Unparseable answers are this experiment's data (counted per prompt below), not warnings.
    quiet = logging.getLogger("taskspace.probing")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        return await _probe_prompts(model, base_url, _ordered(specs), inputs, cache, log)
    finally:
        quiet.setLevel(level)


async def _probe_prompts(
    model: str, base_url: str, todo: list[PromptSpec], inputs: Inputs, cache: Path, log: Log
) -> dict[str, Answers]:
    per_prompt = len(inputs.probe_texts) + max(len(t.texts) for t in inputs.tasks.values())
    out: dict[str, Answers] = {}
    asked, seconds = 0, 0.0
    for k, spec in enumerate(todo, 1):
        t0 = time.perf_counter()
        a = await _ask(prompted(spec, base_url, model), spec, inputs, cache)
        out[spec.id] = a
        asked, seconds = asked + a.calls, seconds + time.perf_counter() - t0
        left = sum(s.base is None for s in todo[k:]) * per_prompt
        eta = f"; at most ~{left * seconds / asked / 60:.0f} min left" if asked else ""
        answered = np.mean(~np.isnan(a.test).any(axis=1))
        log(
            f"{model} [{k}/{len(todo)}] {spec.id}: {a.calls} calls, {a.cached} cached, {a.errors} errors, "
            f"{time.perf_counter() - t0:.1f} s; test answers with a label {answered:.0%}{eta}"
        )
    return out
