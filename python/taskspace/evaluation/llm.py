"""Zero-shot prompt selection on real LLMs: the experiment harness behind ``taskspace evaluate --llm``.

Real LLMs (Gemma 3 270M base and SmolLM2-135M-Instruct, GGUF files from PyPI) are served by
``taskspace serve-models``, one process and one thread per model
(:mod:`taskspace.evaluation.llm_serving`), and probed through taskspace's probe layer with the
prompts of :mod:`taskspace.evaluation.llm_prompts` (:mod:`taskspace.evaluation.llm_probing`; every
answer is cached, so a re-run asks nothing twice). For every model and task, each candidate prompt's
true accuracy on a seeded sample of the task's test split is compared with the ranking of taskspace
(text and label mode) and of MI, GE, LE, MDL, ZPS and random (:mod:`taskspace.evaluation.llm_scoring`):
selected / oracle, Spearman rho and NDCG@3 with bootstrap intervals over test texts and over
prompts, on the development half, the final half and both halves of the prompt pool (the split is
fixed in :mod:`~taskspace.evaluation.llm_prompts`), at each method's natural budget and at equal
budgets of LLM answers per prompt.

**Probe texts**: the first ``n_probe`` texts of the library's default probe set
(:func:`taskspace.probe_set`, 2,520 texts written for taskspace, category-balanced in any prefix,
none taken from a dataset). It is what a user of the library probes with; the shared probe corpus
beside the data holds rows from the same sources as some tasks (AG News leftovers, ...), which
would favour taskspace for a reason a user does not have.

Example:
    >>> from taskspace.evaluation.llm import MAX_CHARS, default_cache_dir
    >>> MAX_CHARS, default_cache_dir().name
    (400, 'taskspace-llm-eval')
"""

from __future__ import annotations

import asyncio
import os
import time
import zlib
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np

from taskspace._checks import positive_int
from taskspace.embedding.surrogate import Surrogate
from taskspace.evaluation.data import EvalData, load_data
from taskspace.evaluation.llm_probing import Answers, Inputs, TaskInputs, probe_model
from taskspace.evaluation.llm_prompts import KINDS, TASKS, WORDINGS, PromptSpec, prompt_pool, split
from taskspace.evaluation.llm_scoring import HALVES, METHODS, TaskCase, summarize, task_case
from taskspace.evaluation.llm_serving import MODELS, served, unavailable_reason
from taskspace.evaluation.progress import Log
from taskspace.probing.texts import pair_probe, probe_set

__all__ = ["MAX_CHARS", "default_cache_dir", "format_table", "run"]

#: Inputs are cut to this many characters (at a word boundary) before they reach the LLM.
MAX_CHARS = 400


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/taskspace-llm-eval`` (``~/.cache/taskspace-llm-eval``): the probe caches."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "taskspace-llm-eval"


def _clip(text: str, limit: int = MAX_CHARS) -> str:
    """``text`` cut to ``limit`` characters at a word boundary (long inputs cost seconds per call)."""
    if len(text) <= limit:
        return text
    cut = text[:limit]
    space = cut.rfind(" ")
    return cut[:space] if space > limit // 2 else cut


def _sample(data: EvalData, task: str, n: int, seed: int) -> TaskInputs:
    """A seeded random sample of ``n`` test rows (all when fewer), in random order: the first B
    rows are a random subset too (what the baselines read at budget B)."""
    test = data.tasks[task].test
    rng = np.random.default_rng([seed, zlib.crc32(task.encode())])
    idx = rng.permutation(len(test.texts))[:n]
    pairs = None if test.pairs is None else [_clip(test.pairs[i]) for i in idx]
    return TaskInputs([_clip(test.texts[i]) for i in idx], pairs, [test.labels[i] for i in idx])


def _check(
    models: Sequence[str], tasks: Sequence[str], prompts_per_task: int, n_probe: int, n_test: int
) -> None:
    for m in models:
        reason = unavailable_reason(m)
        if reason is not None:
            raise (ValueError if m not in MODELS else ImportError)(f"model {m}: {reason}")
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        raise ValueError(f"unknown tasks {unknown}; expected some of {list(TASKS)}")
    if len(tasks) < 2:
        raise ValueError(f"need at least 2 tasks, got {len(tasks)}")
    positive_int(prompts_per_task, "prompts_per_task", minimum=2, error=ValueError)
    if prompts_per_task > len(KINDS):
        raise ValueError(f"prompts_per_task must be at most {len(KINDS)}, got {prompts_per_task}")
    positive_int(n_probe, "n_probe", minimum=10, error=ValueError)
    positive_int(n_test, "n_test", minimum=10, error=ValueError)


def _inputs(
    data_dir: str | os.PathLike[str], tasks: list[str], n_probe: int, n_test: int, seed: int
) -> tuple[EvalData, Inputs]:
    data = load_data(data_dir, tasks=tasks, n_probe=10)
    for t in tasks:
        if list(data.tasks[t].labels) != list(WORDINGS[t].labels):
            raise ValueError(
                f"task {t}: labels {list(data.tasks[t].labels)} are not {list(WORDINGS[t].labels)}"
            )
    probe_texts = [_clip(t) for t in probe_set(n=n_probe)]
    tests = {t: _sample(data, t, n_test, seed) for t in tasks}
    return data, Inputs(probe_texts, pair_probe(probe_texts), tests)


def _specs(model: str, tasks: list[str], prompts_per_task: int) -> dict[str, list[PromptSpec]]:
    chat = MODELS[model].chat
    return {t: [s for s in prompt_pool(t)[:prompts_per_task] if chat or not s.chat] for t in tasks}


def _probe_all(
    models: list[str],
    specs: dict[str, dict[str, list[PromptSpec]]],
    inputs: Inputs,
    cache_dir: Path,
    ports: Mapping[str, int],
    log: Log,
) -> dict[str, dict[str, Answers]]:
    """Start every model's server, then probe all models at once (one core each)."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        urls = {}
        for m in models:
            urls[m] = stack.enter_context(served(m, port=ports.get(m)))
            log(f"{m}: serving at {urls[m]}")

        async def everything() -> list[dict[str, Answers]]:
            jobs = [
                probe_model(
                    m,
                    urls[m],
                    [s for t in specs[m].values() for s in t],
                    inputs,
                    cache_dir / f"{m}.sqlite",
                    log,
                )
                for m in models
            ]
            return list(await asyncio.gather(*jobs))

        return dict(zip(models, asyncio.run(everything()), strict=True))


def _budgets(n_probe: int, n_test: int, equal: Sequence[int]) -> dict[str, tuple[int, int]]:
    """Budget name -> (probe texts taskspace reads, test texts the baselines read), per prompt."""
    out = {"natural": (n_probe, n_test)}
    for b in sorted({min(int(b), n_probe, n_test) for b in equal}):
        out[f"equal@{b}"] = (b, b)
    return out


def _model_results(
    model: str,
    specs: dict[str, list[PromptSpec]],
    answers: dict[str, Answers],
    data: EvalData,
    inputs: Inputs,
    budgets: dict[str, tuple[int, int]],
    sur: Surrogate,
    resamples: int,
    seed: int,
) -> dict[str, Any]:
    cases: dict[str, TaskCase] = {}
    per_task: dict[str, Any] = {}
    for t, task_specs in specs.items():
        ids = [s.id for s in task_specs]
        dev = set(split(t)[0])
        half = ["dev" if i in dev else "final" for i in ids]
        task = data.tasks[t]
        dte = {mode: task.embedding(sur, mode) for mode in ("text", "label")}
        probe = (inputs.probe_texts, inputs.probe_pairs if task.is_pair else None)
        n_test = len(inputs.tasks[t].texts)
        bud = {b: (p, min(n, n_test)) for b, (p, n) in budgets.items()}
        cases[t] = task_case(ids, half, answers, inputs.tasks[t].gold, task.labels, dte, probe, bud, sur)
        per_task[t] = _task_info(cases[t], answers, n_test)
    results = {
        b: {h: summarize(cases, b, h, resamples=resamples, seed=seed) for h in HALVES} for b in budgets
    }
    return {"results": results, "tasks": per_task, "calls": _calls(answers, budgets, specs)}


def _task_info(case: TaskCase, answers: dict[str, Answers], n_test: int) -> dict[str, Any]:
    return {
        "prompts": case.ids,
        "half": case.half,
        "n_test": n_test,
        "accuracy": case.correct.mean(axis=1).tolist(),
        "answered_test": [float(np.mean(~np.isnan(answers[i].test).any(axis=1))) for i in case.ids],
        "answered_probe": [float(np.mean(~np.isnan(answers[i].probe).any(axis=1))) for i in case.ids],
        "taskspace_scores": {b: {m: v.tolist() for m, v in s.items()} for b, s in case.taskspace.items()},
    }


def _calls(
    answers: dict[str, Answers], budgets: dict[str, tuple[int, int]], specs: dict[str, list[PromptSpec]]
) -> dict[str, Any]:
    """What was asked, and the LLM answers each method reads per prompt at each budget."""
    per_prompt = {
        b: {m: (0 if m == "random" else p if m.startswith("taskspace") else n) for m in METHODS}
        for b, (p, n) in budgets.items()
    }
    return {
        "new_calls": sum(a.calls for a in answers.values()),
        "cached": sum(a.cached for a in answers.values()),
        "errors": sum(a.errors for a in answers.values()),
        "prompts": sum(len(s) for s in specs.values()),
        "prompts_with_own_requests": sum(s.base is None for v in specs.values() for s in v),
        "answers_per_prompt": per_prompt,
    }


def run(
    data_dir: str | os.PathLike[str],
    *,
    models: Sequence[str] = tuple(MODELS),
    tasks: Sequence[str] | None = None,
    prompts_per_task: int = len(KINDS),
    n_probe: int = 1000,
    n_test: int = 300,
    equal_budgets: Sequence[int] = (100, 300),
    cache_dir: str | os.PathLike[str] | None = None,
    ports: Mapping[str, int] | None = None,
    resamples: int = 1000,
    seed: int = 0,
    progress: bool = True,
) -> dict[str, Any]:
    """Run the real-LLM prompt-selection experiment; returns JSON-ready results.

    Args:
        data_dir: the evaluation data (``tasks/<task>/{train,test}.jsonl``, ``families.json``, ...).
        models: names in :data:`~taskspace.evaluation.llm_serving.MODELS` (default both).
        tasks: names in :data:`~taskspace.evaluation.llm_prompts.TASKS` (default all eight, >= 2).
        prompts_per_task: the first this many prompts of each pool (2..12; chat prompts are
            skipped for a model without a chat template).
        n_probe: probe texts per MTE (the first of :func:`taskspace.probe_set`), >= 10.
        n_test: test texts per task (a seeded sample; all when a split has fewer), >= 10.
        equal_budgets: answers per prompt at which every method is also compared (capped at
            ``n_probe`` and ``n_test``).
        cache_dir: the probe caches (default :func:`default_cache_dir`), one SQLite file per model.
        ports: model -> port (default: each model's fixed port; cache keys hold the URL).
        resamples: bootstrap replicates per interval (0: no intervals).
        seed: seeds the test sample, the surrogate and the bootstrap.
        progress: progress lines on stderr.

    Returns:
        ``{"config", "split", "models": {model: {"results": {budget: {half: {method: {metric:
        {"mean", "ci_texts", "ci_prompts"}}}}}, "tasks": {...}, "calls": {...}}}, "seconds"}``.

    Raises:
        ValueError: unknown models or tasks, or sizes out of range. ImportError: a model's packages
            are missing.
    """
    tasks = list(TASKS) if tasks is None else list(tasks)
    models = list(models)
    _check(models, tasks, prompts_per_task, n_probe, n_test)
    log, t0 = Log(progress), time.perf_counter()
    data, inputs = _inputs(data_dir, tasks, n_probe, n_test, seed)
    specs = {m: _specs(m, tasks, prompts_per_task) for m in models}
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    answers = _probe_all(models, specs, inputs, cache, ports or {}, log)
    t1 = time.perf_counter()
    budgets = _budgets(n_probe, n_test, equal_budgets)
    sur = Surrogate(seed=seed)
    out = {
        m: _model_results(m, specs[m], answers[m], data, inputs, budgets, sur, resamples, seed)
        for m in models
    }
    config = {
        "models": models,
        "tasks": tasks,
        "prompts_per_task": prompts_per_task,
        "n_probe": n_probe,
        "n_test": {t: len(inputs.tasks[t].texts) for t in tasks},
        "budgets": budgets,
        "seed": seed,
        "resamples": resamples,
        "max_chars": MAX_CHARS,
        "probe_set": "taskspace.probe_set() v1",
        "surrogate": sur.config,
    }
    seconds = {"probe": t1 - t0, "score": time.perf_counter() - t1}
    log(f"done: probing {seconds['probe']:.0f} s, scoring {seconds['score']:.0f} s")
    return {"config": config, "split": {t: split(t) for t in tasks}, "models": out, "seconds": seconds}


def _cell(r: Mapping[str, Any], key: str = "ci_texts") -> str:
    ci = r.get(key)
    return f"{r['mean']:.3f}" + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "")


def format_table(results: Mapping[str, Any]) -> str:
    """Markdown tables: per model and budget, each method's answers per prompt, selected / oracle on
    the development and final halves, and on both halves selected / oracle (interval over texts,
    over prompts), Spearman rho and NDCG@3 (interval over texts)."""
    lines = []
    for model, res in results["models"].items():
        for budget, halves in res["results"].items():
            lines += [
                f"**{model}, budget {budget}**",
                "",
                "| method | answers/prompt | sel/oracle dev | sel/oracle final | sel/oracle both [texts] | "
                "[prompts] | Spearman both | NDCG@3 both |",
                "|---|---|---|---|---|---|---|---|",
            ]
            per_prompt = res["calls"]["answers_per_prompt"][budget]
            for m in METHODS:
                a = halves["all"][m]
                ci_p = a["selected_over_oracle"].get("ci_prompts")
                lines.append(
                    f"| {m} | {per_prompt[m]} | {halves['dev'][m]['selected_over_oracle']['mean']:.3f} | "
                    f"{halves['final'][m]['selected_over_oracle']['mean']:.3f} | "
                    f"{_cell(a['selected_over_oracle'])} | "
                    f"{'' if not ci_p else f'[{ci_p[0]:.2f}, {ci_p[1]:.2f}]'} | "
                    f"{_cell(a['spearman'])} | {_cell(a['ndcg3'])} |"
                )
            lines.append("")
    return "\n".join(lines)
