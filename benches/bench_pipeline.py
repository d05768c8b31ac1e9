"""The whole ``taskspace demo`` pipeline and each stage of ``taskspace evaluate``, timed.

Not part of the test suite; run explicitly::

    python -m pytest benches/bench_pipeline.py -q --benchmark-json=/tmp/bench_pipeline.json
    python -m pytest benches/bench_pipeline.py -q --benchmark-disable      # CI smoke run (small)

Groups (each taskspace stage next to a named baseline doing the same job in the same run, so a
regression shows as a changed ratio as well as a changed time):

* ``demo``: ``taskspace demo --out TMP --quiet`` end to end (local model server on 127.0.0.1, HTTP
  probing, embedding, ranking, HTML report). Baseline ``probe-only``: the same number of probe
  texts through the same local models, called directly (no HTTP, no embedding, no report).
* ``evaluate-quick``: ``taskspace.evaluation.suite.run(quick=True)`` with a warm probe cache (what a re-run
  costs; the smoke run times one cold run instead); each stage's seconds are in ``extra_info``.
* ``select-prompts``: scoring 18 prompts of one task — taskspace (18 text-mode MTEs on the probe
  texts + cosine with the DTE) against the baselines (``score_prompts`` on the same soft labels).
* ``task-similarity``: 20 DTEs + all-pairs cosine against the TextEmb-like baseline (TF-IDF fit +
  mean vector per task + cosine).

The evaluate groups need ../shared/data (they skip, saying so, without it). Under
``--benchmark-disable`` every size shrinks (demo: 100 probe texts; 100 probe texts per MTE).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import taskspace as ts
from taskspace.cli import main

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _smoke(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("benchmark_disable"))


def _need_data() -> None:
    if not (DATA / "tasks").is_dir():
        pytest.skip(f"evaluation data not found at {DATA} (../shared/data beside the checkout)")
    pytest.importorskip("sklearn")


# -- demo --------------------------------------------------------------------------------------
def test_demo_taskspace(benchmark, request, tmp_path: Path) -> None:
    n = "100" if _smoke(request) else "1000"
    benchmark.group = "demo"
    benchmark.extra_info.update(impl="taskspace", probe_texts=int(n))
    counter = iter(range(10**6))

    def once() -> int:
        return main(["demo", "--out", str(tmp_path / f"demo{next(counter)}"), "--quiet", "--probe-texts", n])

    code = benchmark.pedantic(once, rounds=1 if _smoke(request) else 3, iterations=1)
    assert code == 0


def test_demo_probe_only(benchmark, request) -> None:
    """Baseline: the demo's local models answering the same probe texts directly."""
    from taskspace.models import InContext, ZeroShot

    n = 100 if _smoke(request) else 1000
    benchmark.group = "demo"
    benchmark.extra_info.update(impl="probe-only", probe_texts=n)
    texts = ts.probe_set(n=n)
    desc = {"positive": "great, I loved it", "negative": "awful, I hated it"}
    models = [ZeroShot(t, desc) for t in ("This review is {}.", "{}", "It was {}.")]
    models.append(InContext([("a great film", "positive"), ("an awful film", "negative")], k=1))

    def once() -> int:
        return sum(len(m.predict_proba(texts)[1]) for m in models)

    assert benchmark.pedantic(once, rounds=1 if _smoke(request) else 3, iterations=1) == 4 * n


# -- evaluate ----------------------------------------------------------------------------------
def test_evaluate_quick_taskspace(benchmark, request, tmp_path: Path) -> None:
    _need_data()
    from taskspace.evaluation import suite

    benchmark.group = "evaluate-quick"
    cache = tmp_path / "cache"
    n_probe = 100 if _smoke(request) else None
    if not _smoke(request):  # time a re-run: warm the probe cache first
        suite.run(DATA, quick=True, progress=False, cache_dir=cache, n_probe=n_probe)
    results = benchmark.pedantic(
        lambda: suite.run(DATA, quick=True, progress=False, cache_dir=cache, n_probe=n_probe),
        rounds=1 if _smoke(request) else 2,
        iterations=1,
    )
    benchmark.extra_info.update(impl="taskspace", stages=results["cost"]["seconds"])
    assert json.dumps(results)


@pytest.fixture(scope="module")
def prompt_outputs(request):
    _need_data()
    from taskspace.evaluation.data import load_data
    from taskspace.evaluation.prompts import build_prompt_models
    from taskspace.models import CachedEncoder, HashedNgramEncoder

    n = 100 if _smoke(request) else 2000
    data = load_data(DATA, tasks=["sst2_movie_sentiment", "cr_product_sentiment"], n_probe=n)
    task = data.tasks["sst2_movie_sentiment"]
    models = build_prompt_models(task, CachedEncoder(HashedNgramEncoder()))
    probs = [m.predict_proba(data.probe)[1] for m in models.values()]
    preds = [[task.labels[j] for j in p.argmax(axis=1)] for p in probs]
    return data, task, probs, preds


def test_select_prompts_taskspace(benchmark, prompt_outputs) -> None:
    data, task, _, preds = prompt_outputs
    sur = ts.Surrogate()
    dte = sur.dataset_embedding(task.train.texts, task.train.labels, mode="text")
    benchmark.group = "select-prompts"
    benchmark.extra_info.update(impl="taskspace", prompts=len(preds), probe_texts=len(data.probe))

    def once() -> np.ndarray:
        # The silent building blocks: a prompt that answers one label everywhere is a real candidate.
        mtes = [sur.embed(sur.stats(data.probe, p, mode="text"), kind="model") for p in preds]
        return ts.similarity(mtes, [dte])[:, 0]

    assert benchmark(once).shape == (len(preds),)


def test_select_prompts_baselines(benchmark, prompt_outputs) -> None:
    from taskspace.evaluation.baselines import score_prompts

    _, _, probs, _ = prompt_outputs
    benchmark.group = "select-prompts"
    benchmark.extra_info.update(impl="baselines", prompts=len(probs))
    assert benchmark(lambda: score_prompts(probs))["MI"].shape == (len(probs),)


@pytest.fixture(scope="module")
def all_tasks(request):
    _need_data()
    from taskspace.evaluation.data import load_data

    cap = 200 if _smoke(request) else None
    return load_data(DATA, n_probe=10, max_train=cap)


def test_task_similarity_taskspace(benchmark, all_tasks) -> None:
    sur = ts.Surrogate()
    benchmark.group = "task-similarity"
    benchmark.extra_info.update(impl="taskspace", tasks=len(all_tasks.tasks))

    def once() -> np.ndarray:
        dtes = [
            sur.dataset_embedding(t.train.texts, t.train.labels, t.train.pairs)
            for t in all_tasks.tasks.values()
        ]
        return ts.similarity(dtes)

    assert benchmark.pedantic(once, rounds=3, iterations=1).shape == (len(all_tasks.tasks),) * 2


def test_task_similarity_textemb(benchmark, all_tasks) -> None:
    from sklearn.feature_extraction.text import TfidfVectorizer

    benchmark.group = "task-similarity"
    benchmark.extra_info.update(impl="textemb", tasks=len(all_tasks.tasks))
    docs = [t.train.texts for t in all_tasks.tasks.values()]

    def once() -> np.ndarray:
        vec = TfidfVectorizer(sublinear_tf=True, min_df=2).fit([x for d in docs for x in d])
        means = np.stack([np.asarray(vec.transform(d).mean(axis=0)).ravel() for d in docs])
        return ts.similarity(means.astype(np.float32))

    assert benchmark.pedantic(once, rounds=3, iterations=1).shape == (len(docs),) * 2
