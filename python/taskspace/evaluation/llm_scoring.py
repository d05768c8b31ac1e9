"""Scoring the real-LLM experiment: accuracies, every method's scores at each budget, metrics with
bootstrap confidence intervals over test texts and over prompts, on the development, final and both
halves of each prompt pool.

* **Accuracy** of a prompt: argmax of its soft label on the task's test texts; a text whose answer
  holds no label word (no verbalizer among the top candidates, a NaN row) counts as wrong — that is
  what the prompt gives a user.
* **taskspace**: cosine(MTE from the prompt's answers on the first ``B`` probe texts, DTE of the
  task's train split), text mode (``taskspace``: outputs are the argmax label names, so the wording of
  the verbalizers matters) and label mode (``taskspace_label``: soft rows, blind to label names).
  Probe texts without a label are left out of the MTE.
* **MI, GE, LE, MDL, ZPS** (:mod:`taskspace.evaluation.baselines`): the prompts' soft labels on the
  first ``B`` test texts (their labels unused); a row without a label is the probe's floor reading,
  uniform.
* **random**: the exact expectation over a uniformly random ranking (selected/oracle =
  mean/max accuracy, Spearman 0, NDCG@3 = mean gain x the discounts' sum / the ideal).

Budgets: ``"natural"`` gives each method its usual input (taskspace all probe texts, baselines all
test texts); ``"equal@B"`` gives both B answers per prompt (taskspace the first B probe texts,
baselines the first B test texts), so no method reads more LLM answers than another.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from taskspace.embedding.surrogate import Surrogate
from taskspace.embedding.task_embedding import TaskEmbedding
from taskspace.errors import InvalidInputError
from taskspace.evaluation.baselines import BASELINES, score_prompts
from taskspace.evaluation.metrics import METRIC_KEYS, selection_metrics

__all__ = ["HALVES", "METHODS", "TaskCase", "random_metrics", "summarize", "task_case"]

#: Methods in report order.
METHODS: tuple[str, ...] = ("taskspace", "taskspace_label", *BASELINES, "random")
#: Halves of each prompt pool the metrics are reported on.
HALVES: tuple[str, ...] = ("dev", "final", "all")


@dataclass(frozen=True)
class TaskCase:
    """One model on one task: prompts, their half, right/wrong per test text, soft labels on the
    test texts (no-label rows uniform), and taskspace's scores per budget (fixed: no test text used)."""

    ids: list[str]
    half: list[str]
    correct: np.ndarray  # (k, n_test) float 0/1
    test_probs: np.ndarray  # (k, n_test, C)
    taskspace: dict[str, dict[str, np.ndarray]]  # budget -> method -> (k,)
    baseline_rows: dict[str, int]  # budget -> first rows of the test texts the baselines read


def _cosine(
    sur: Surrogate,
    probe: tuple[list[str], list[str] | None],
    p: np.ndarray,
    mode: str,
    labels: Sequence[str],
    dte: TaskEmbedding,
) -> float:
    """cosine(MTE from the probe texts that got a label, DTE); 0 when none did (no behaviour seen)."""
    ok = np.flatnonzero(~np.isnan(p).any(axis=1))
    if ok.size == 0:
        return 0.0
    t = [probe[0][i] for i in ok]
    tp = None if probe[1] is None else [probe[1][i] for i in ok]
    outputs: Any = p[ok] if mode == "label" else [labels[j] for j in np.argmax(p[ok], axis=1)]
    # A prompt giving every probe text the same answer has the zero MTE (cosine 0): its right score.
    mte = sur.embed(sur.stats(t, outputs, text_pairs=tp, mode=mode), kind="model")  # type: ignore[arg-type]
    return float(mte.similarity(dte))


def task_case(
    ids: list[str],
    half: list[str],
    answers: dict[str, Any],
    gold: Sequence[str],
    labels: Sequence[str],
    dte: dict[str, TaskEmbedding],
    probe: tuple[list[str], list[str] | None],
    budgets: dict[str, tuple[int, int]],
    sur: Surrogate,
) -> TaskCase:
    """Build a :class:`TaskCase`; ``budgets`` maps a budget name to (probe texts, test texts) read."""
    col = {lab: j for j, lab in enumerate(labels)}
    g = np.array([col[y] for y in gold])
    test = np.stack([answers[i].test for i in ids])  # (k, n, C)
    missing = np.isnan(test).any(axis=2)
    correct = np.where(missing, 0.0, (np.nan_to_num(test, nan=-1).argmax(axis=2) == g).astype(float))
    probs = np.where(missing[:, :, None], 1.0 / len(labels), test)
    ts: dict[str, dict[str, np.ndarray]] = {}
    for name, (n_probe, _) in budgets.items():
        cut = (probe[0][:n_probe], None if probe[1] is None else probe[1][:n_probe])
        ts[name] = {
            method: np.array(
                [_cosine(sur, cut, answers[i].probe[:n_probe], mode, labels, dte[mode]) for i in ids]
            )
            for method, mode in (("taskspace", "text"), ("taskspace_label", "label"))
        }
    return TaskCase(ids, half, correct, probs, ts, {b: n for b, (_, n) in budgets.items()})


def random_metrics(acc: np.ndarray) -> dict[str, float]:
    """:func:`~taskspace.evaluation.metrics.selection_metrics` of a uniformly random ranking, in
    expectation (exact, not sampled)."""
    if acc.max() <= 0:  # every accuracy 0: nothing to select
        return dict.fromkeys(METRIC_KEYS, float("nan"))
    gain = acc - acc.min()
    k = min(3, acc.size)
    discount = 1.0 / np.log2(np.arange(2, k + 2))
    ideal = float(np.sort(gain)[::-1][:k] @ discount)
    ndcg = float(gain.mean() * discount.sum() / ideal) if ideal > 0 else 1.0
    return {"selected_over_oracle": float(acc.mean() / acc.max()), "spearman": 0.0, "ndcg3": ndcg}


def _metrics(acc: np.ndarray, scores: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    out = {}
    for m in METHODS:
        try:
            out[m] = random_metrics(acc) if m == "random" else selection_metrics(acc, scores[m])
        except InvalidInputError:  # every accuracy 0: nothing to select
            out[m] = dict.fromkeys(METRIC_KEYS, float("nan"))
    return out


def _case_metrics(
    case: TaskCase, budget: str, keep: np.ndarray, texts: np.ndarray | None
) -> dict[str, dict[str, float]]:
    """Metrics of ``case`` on the prompts ``keep`` (indices, repeats allowed) and the test texts
    ``texts`` (indices; ``None``: all, unresampled)."""
    if keep.size == 0:  # no prompt of this half (a tiny run)
        return {m: dict.fromkeys(METRIC_KEYS, float("nan")) for m in METHODS}
    n_rows = case.baseline_rows[budget]
    cols = np.arange(case.correct.shape[1]) if texts is None else texts
    rows = np.arange(n_rows) if texts is None else texts[texts < n_rows]
    if rows.size == 0:
        rows = np.arange(n_rows)
    acc = case.correct[keep][:, cols].mean(axis=1)
    scores = {m: s[keep] for m, s in case.taskspace[budget].items()}
    scores.update(score_prompts(case.test_probs[keep][:, rows]))
    return _metrics(acc, scores)


def _nanmean(values: list[float]) -> float:
    v = np.asarray(values, dtype=float)
    v = v[~np.isnan(v)]
    return float(v.mean()) if v.size else float("nan")


def _mean(rows: list[dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    """Mean over tasks (tasks where a metric is undefined left out)."""
    return {m: {k: _nanmean([r[m][k] for r in rows]) for k in METRIC_KEYS} for m in METHODS}


def _halves(case: TaskCase, half: str) -> np.ndarray:
    return np.array([i for i, h in enumerate(case.half) if half == "all" or h == half], dtype=np.intp)


def summarize(
    cases: dict[str, TaskCase], budget: str, half: str, *, resamples: int, seed: int
) -> dict[str, dict[str, dict[str, Any]]]:
    """Mean over tasks of each method's metrics, with 95% percentile intervals from ``resamples``
    bootstrap replicates over test texts (prompts fixed) and over prompts (texts fixed); each
    replicate resamples within every task. -> ``{method: {metric: {"mean", "ci_texts",
    "ci_prompts"}}}``."""
    rng = np.random.default_rng([seed, len(budget), len(half)])
    keep = {t: _halves(c, half) for t, c in cases.items()}
    point = _mean([_case_metrics(c, budget, keep[t], None) for t, c in cases.items()])
    draws: dict[str, Callable[[str, TaskCase], dict[str, dict[str, float]]]] = {
        "ci_texts": lambda t, c: _case_metrics(
            c, budget, keep[t], rng.integers(0, c.correct.shape[1], c.correct.shape[1])
        ),
        "ci_prompts": lambda t, c: _case_metrics(
            c, budget, keep[t][rng.integers(0, keep[t].size, keep[t].size)], None
        ),
    }
    out: dict[str, dict[str, dict[str, Any]]] = {
        m: {k: {"mean": point[m][k]} for k in METRIC_KEYS} for m in METHODS
    }
    for name, draw in draws.items():
        reps = [_mean([draw(t, c) for t, c in cases.items()]) for _ in range(resamples)]
        for m in METHODS:
            for k in METRIC_KEYS:
                vals = np.array([r[m][k] for r in reps])
                vals = vals[~np.isnan(vals)]
                out[m][k][name] = np.percentile(vals, [2.5, 97.5]).tolist() if vals.size else None
    return out
