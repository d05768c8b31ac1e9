"""Zero-shot prompt selection: pick a task's best prompt without its labels, against the baselines.

For each task, every candidate prompt of :mod:`taskspace.evaluation.prompts` is asked on the probe
corpus and on the test split. Ground truth is each prompt's accuracy on the test split; taskspace
predicts with cosine(MTE on the probe corpus, DTE of the train split) in text mode (and in label
mode as ``taskspace_label``); the baselines of :mod:`taskspace.evaluation.baselines` score the
prompts' soft labels on the test inputs (without their labels); ``random`` is the expectation over
seeded random orders. Metrics: :func:`~taskspace.evaluation.metrics.selection_metrics`, averaged
over tasks.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from taskspace.embedding.surrogate import Surrogate
from taskspace.embedding.task_embedding import TaskEmbedding
from taskspace.evaluation.answers import mte, timed_probe
from taskspace.evaluation.baselines import BASELINES, score_prompts
from taskspace.evaluation.data import EvalData, Task
from taskspace.evaluation.metrics import random_selection_metrics, selection_metrics
from taskspace.evaluation.progress import Log
from taskspace.evaluation.prompts import build_prompt_models, prompt_callable, prompt_family
from taskspace.models.prompt_model import PromptModel
from taskspace.probing.result import ProbeResult
from taskspace.search.cosine import similarity

__all__ = ["METHODS", "PromptSelection", "TaskPrompts", "prompt_selection", "selection_table"]

#: Prompt-selection methods in report order.
METHODS: tuple[str, ...] = ("taskspace", "taskspace_label", *BASELINES, "random")


def selection_table(
    per_task: dict[str, dict[str, Any]],
    methods: Sequence[str],
    subset: Callable[[str], bool] = lambda p: True,
) -> dict[str, dict[str, float]]:
    """Mean over tasks of selection_metrics per method, over the prompts ``subset`` keeps."""
    table: dict[str, dict[str, float]] = {}
    for method in methods:
        rows = []
        for info in per_task.values():
            keep = [i for i, p in enumerate(info["prompts"]) if subset(p)]
            acc = np.asarray(info["accuracy"])[keep]
            if method == "random":
                rows.append(random_selection_metrics(acc))
            else:
                rows.append(selection_metrics(acc, np.asarray(info["scores"][method])[keep]))
        table[method] = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
    return table


@dataclass(frozen=True)
class TaskPrompts:
    """One task's candidate prompts, probed: what the adaptive-probing experiment starts from."""

    models: dict[str, PromptModel]
    probe_result: ProbeResult
    dte_text: TaskEmbedding


@dataclass
class _Cost:
    probe_seconds: float = 0.0
    embed_seconds: float = 0.0
    mtes: int = 0
    calls: list[int] = field(default_factory=list)
    cached: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class PromptSelection:
    """The experiment's result (JSON-ready ``result`` and ``cost``) and what it probed."""

    result: dict[str, Any]
    cost: dict[str, Any]
    per_task: dict[str, dict[str, Any]]
    probed: dict[str, TaskPrompts]
    surrogate: Surrogate


def _encode_all(data: EvalData, task_names: Sequence[str], encoder: Any, log: Log) -> tuple[int, float]:
    """Embed every distinct text once up front: the probe texts and the test inputs are shared by
    every prompt, and a slow pretrained encoder must not see a text twice."""
    t0 = time.perf_counter()
    everything = list(
        dict.fromkeys([*data.probe, *(x for n in task_names for x in data.tasks[n].test.texts)])
    )
    for i in range(0, len(everything), 256):
        encoder(everything[i : i + 256])
    encode_s = time.perf_counter() - t0
    log(f"prompt selection: encoder {encoder.name}: {len(everything)} texts in {encode_s:.1f}s")
    return len(everything), encode_s


def _select_for_task(
    data: EvalData,
    task: Task,
    *,
    encoder: Any,
    sur: Surrogate,
    seed: int,
    cache: Path | None,
    log: Log,
    cost: _Cost,
) -> tuple[dict[str, Any], TaskPrompts]:
    """Probe one task's prompts; their accuracies and every method's scores."""
    models = build_prompt_models(task, encoder, seed=seed)
    prompts = list(models)
    on_probe = [prompt_callable(models[p], p, task.labels, cache=True) for p in prompts]
    res, secs = timed_probe(on_probe, data.probe, pairs=None, cache=cache, progress=log.progress)
    cost.probe_seconds += secs
    on_test = [prompt_callable(models[p], p, task.labels, cache=True) for p in prompts]
    test_res, _ = timed_probe(on_test, task.test.texts, pairs=None, cache=cache, progress=log.progress)
    gold = np.asarray([task.labels.index(y) for y in task.test.labels])
    test_probs = [test_res[p].probs() for p in prompts]
    accuracy = [float((p.argmax(axis=1) == gold).mean()) for p in test_probs]
    dte_text = task.embedding(sur, "text")
    dte_label = task.embedding(sur, "label")
    t1 = time.perf_counter()
    mte_text = [mte(sur, res[p], "text", p) for p in prompts]
    cost.embed_seconds += time.perf_counter() - t1
    mte_label = [mte(sur, res[p], "label", p) for p in prompts]
    cost.mtes += len(prompts)
    cost.calls.extend(res[p].usage.calls for p in prompts)
    cost.cached.extend(res[p].usage.cached for p in prompts)
    scores: dict[str, list[float]] = {
        "taskspace": [float(x) for x in similarity(mte_text, [dte_text])[:, 0]],
        "taskspace_label": [float(x) for x in similarity(mte_label, [dte_label])[:, 0]],
    }
    scores.update({k: v.tolist() for k, v in score_prompts(test_probs).items()})
    best = int(np.argmax(accuracy))
    pick = int(np.argsort(-np.asarray(scores["taskspace"]), kind="stable")[0])
    log(
        f"prompt selection {task.name}: oracle {prompts[best]} {accuracy[best]:.3f}, "
        f"taskspace picks {prompts[pick]} {accuracy[pick]:.3f}"
    )
    info = {"prompts": prompts, "accuracy": accuracy, "scores": scores}
    return info, TaskPrompts(models, res, dte_text)


def prompt_selection(
    data: EvalData,
    task_names: Sequence[str],
    *,
    encoder: Any,
    seed: int,
    features: int,
    cache: Path | None,
    log: Log,
) -> PromptSelection:
    """Run the experiment on ``task_names`` with local prompt models on ``encoder``.

    ``result`` is ``{"table": {method: metrics}, "by_family": {"zero-shot" | "in-context": table},
    "tasks": {task: {"prompts", "accuracy", "scores"}}, "encoder": name}`` for :data:`METHODS`."""
    n_encoded, encode_s = _encode_all(data, task_names, encoder, log)
    sur = Surrogate(seed=seed, features=features)
    cost = _Cost()
    per_task: dict[str, dict[str, Any]] = {}
    probed: dict[str, TaskPrompts] = {}
    for name in task_names:
        per_task[name], probed[name] = _select_for_task(
            data, data.tasks[name], encoder=encoder, sur=sur, seed=seed, cache=cache, log=log, cost=cost
        )
    result = {
        "table": selection_table(per_task, METHODS),
        "by_family": {
            fam: selection_table(per_task, METHODS, lambda p, f=fam: prompt_family(p) == f)
            for fam in ("zero-shot", "in-context")
        },
        "tasks": per_task,
        "encoder": encoder.name,
    }
    cost_out = {
        "mtes": cost.mtes,
        "probe_texts_per_mte": len(data.probe),
        "probe_calls_per_mte": float(np.mean(cost.calls)),
        "probe_calls_cached_per_mte": float(np.mean(cost.cached)),
        "probe_seconds_per_mte": cost.probe_seconds / max(1, cost.mtes),
        "embed_seconds_per_mte": cost.embed_seconds / max(1, cost.mtes),
        "encode_seconds_total": encode_s,
        "encoded_texts": n_encoded,
    }
    return PromptSelection(result, cost_out, per_task, probed, sur)
