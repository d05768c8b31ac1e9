"""What probing costs: prompt selection from fewer probe texts, fixed prefixes and adaptive probing.

The adaptive run asks the models afresh (no cache: answers read back from a cache would all be
counted as used) and embeds each prompt's MTE from the texts it used. The summary row is the
loosest ``eps`` that selects as well as the full probe set (else the strictest).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from taskspace.evaluation.answers import mte
from taskspace.evaluation.data import EvalData
from taskspace.evaluation.metrics import selection_metrics
from taskspace.evaluation.progress import Log
from taskspace.evaluation.prompt_selection import PromptSelection
from taskspace.evaluation.prompts import prompt_callable
from taskspace.probing.adaptive import Adaptive
from taskspace.probing.runner import probe_sync
from taskspace.search.cosine import similarity

__all__ = ["ADAPTIVE_EPS", "adaptive_probing"]

#: Convergence thresholds tried by the adaptive-probing experiment (strictest first).
ADAPTIVE_EPS: tuple[float, ...] = (0.002, 0.01, 0.03)
_PREFIXES = (250, 500, 1000, 2000)


def _prefix_sweep(data: EvalData, sel: PromptSelection, tasks: Sequence[str]) -> dict[str, float]:
    """Mean selected/oracle when each MTE sees only the first 250, 500, ... probe texts."""
    sur = sel.surrogate
    sweep: dict[str, float] = {}
    for size in sorted({p for p in _PREFIXES if p < len(data.probe)}):
        vals = []
        for name in tasks:
            info = sel.per_task[name]
            res = sel.probed[name].probe_result
            mtes = [
                sur.embed(sur.stats(data.probe[:size], res[p].predictions()[:size], mode="text"), name=p)
                for p in info["prompts"]
            ]
            s = similarity(mtes, [sel.probed[name].dte_text])[:, 0]
            vals.append(selection_metrics(info["accuracy"], s)["selected_over_oracle"])
        sweep[str(size)] = float(np.mean(vals))
    return sweep


def _adaptive_run(
    data: EvalData,
    sel: PromptSelection,
    tasks: Sequence[str],
    *,
    eps: float,
    check_every: int,
    min_texts: int,
) -> dict[str, Any]:
    """Probe every prompt of ``tasks`` adaptively: how many texts each used, and selected/oracle."""
    cfg = Adaptive(sel.surrogate, eps=eps, window=3, check_every=check_every, min_texts=min_texts)
    used: list[int] = []
    vals = []
    for name in tasks:
        info = sel.per_task[name]
        task = data.tasks[name]
        models = sel.probed[name].models
        calls = [
            prompt_callable(models[p], p, task.labels, cache=False, mode="text", batch_size=check_every)
            for p in info["prompts"]
        ]
        res = probe_sync(calls, data.probe, progress=False, adaptive=cfg)
        mtes = [mte(sel.surrogate, res[p], "text", p) for p in info["prompts"]]
        used.extend(res[p].adaptive["texts_used"] for p in info["prompts"])
        s = similarity(mtes, [sel.probed[name].dte_text])[:, 0]
        vals.append(selection_metrics(info["accuracy"], s)["selected_over_oracle"])
    n = len(data.probe)
    return {
        "eps": eps,
        "texts_used_mean": float(np.mean(used)),
        "texts_used_max": int(np.max(used)),
        "fraction_used_mean": float(np.mean(used) / n),
        "selected_over_oracle": float(np.mean(vals)),
    }


def adaptive_probing(
    data: EvalData,
    sel: PromptSelection,
    *,
    tasks: Sequence[str],
    eps_values: Sequence[float],
    log: Log,
) -> dict[str, Any]:
    """Selection quality from fixed probe prefixes, and from adaptive probing on ``tasks``
    (each ``eps`` of ``eps_values``), against the full probe corpus of ``sel``."""
    n = len(data.probe)
    sweep = _prefix_sweep(data, sel, tasks)
    check_every, min_texts = max(50, n // 20), min(n, max(100, n // 10))
    full_vals = [
        selection_metrics(sel.per_task[name]["accuracy"], sel.per_task[name]["scores"]["taskspace"])[
            "selected_over_oracle"
        ]
        for name in tasks
    ]
    full = float(np.mean(full_vals))
    runs = []
    t0 = time.perf_counter()
    for eps in eps_values:
        runs.append(_adaptive_run(data, sel, tasks, eps=eps, check_every=check_every, min_texts=min_texts))
        log(
            f"adaptive eps={eps:g}: {runs[-1]['fraction_used_mean']:.0%} of {n} probe texts on average, "
            f"selected/oracle {runs[-1]['selected_over_oracle']:.3f} (all texts: {full:.3f})"
        )
    no_loss = [r for r in runs if r["selected_over_oracle"] >= full - 1e-9]
    best = min(no_loss, key=lambda r: r["texts_used_mean"]) if no_loss else runs[0]
    return {
        "settings": {"eps": best["eps"], "window": 3, "check_every": check_every, "min_texts": min_texts},
        "tasks": list(tasks),
        "probe_texts_full": n,
        "texts_used_mean": best["texts_used_mean"],
        "texts_used_max": best["texts_used_max"],
        "fraction_used_mean": best["fraction_used_mean"],
        "selected_over_oracle_adaptive": best["selected_over_oracle"],
        "selected_over_oracle_full": full,
        "no_loss": bool(no_loss),
        "by_eps": runs,
        "selected_over_oracle_by_prefix": {**sweep, str(n): full},
        "seconds": time.perf_counter() - t0,
    }
