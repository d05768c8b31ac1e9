"""Drift check: taskspace.embedding.drift against recomputing every embedding from scratch per bootstrap round.

Not part of the test suite; run explicitly::

    python -m pytest benches/bench_drift.py -q --benchmark-json=/tmp/bench_drift.json
    python benches/ratios.py /tmp/bench_drift.json

Workload (group ``drift-2000``): 2,000 texts of the built-in probe set, the soft label outputs of
two local zero-shot models (one label description differs), ``ts.Surrogate()`` defaults
(features=256, dim=4096), 200 bootstrap rounds. Each round needs four embeddings: the baseline and
the current run on a resample of the texts, and the two halves of the pooled answers (the noise
floor).

* ``taskspace``: ``ts.drift(...)``: the features are encoded once, group statistics are summed once,
  each round re-weights them (see ``taskspace/embedding/drift.py``). Includes the point estimates.
* ``naive``: the same resamples computed the obvious way: per round, ``Surrogate.model_embedding``
  on the resampled texts and outputs, four times (featurize, encode, statistics, embedding), then
  the two cosines.

Both at one thread (``n_threads=1`` for the Rust core, BLAS limited by ``threadpoolctl``). The
naive method takes about a minute per call, so it is timed once; taskspace seven times (after
one warm-up call).
``--benchmark-disable`` (the CI smoke run) uses 200 texts and 20 rounds.
"""

from __future__ import annotations

import numpy as np
import pytest
import taskspace as ts
from taskspace.models import ZeroShot
from threadpoolctl import threadpool_limits

SENTIMENT = {"positive": ["great, good, loved it", "happy"], "negative": ["bad, awful, hated it", "sad"]}
CHANGED = dict(SENTIMENT, negative=["a question, what, how, why?", "sad"])


@pytest.fixture(scope="module")
def sizes(request: pytest.FixtureRequest) -> tuple[int, int]:
    """(probe texts, bootstrap rounds): small in the smoke run."""
    return (200, 20) if request.config.getoption("benchmark_disable") else (2000, 200)


@pytest.fixture(scope="module")
def workload(sizes: tuple[int, int]) -> tuple[list[str], np.ndarray, np.ndarray]:
    texts = ts.probe_set(n=sizes[0])
    then = ZeroShot("This text is {}.", SENTIMENT).predict_proba(texts)[1]
    now = ZeroShot("This text is {}.", CHANGED).predict_proba(texts)[1]
    return texts, then, now


def _naive(sur: ts.Surrogate, texts: list[str], then: np.ndarray, now: np.ndarray, n_boot: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    n = len(texts)
    out = np.empty((n_boot, 2))
    for r in range(n_boot):
        idx = rng.integers(0, n, n)
        swap = rng.integers(0, 2, n)[:, None].astype(bool)
        t = [texts[i] for i in idx]
        a, b = then[idx], now[idx]
        runs = (a, b, np.where(swap, b, a), np.where(swap, a, b))
        e = [sur.model_embedding(t, y, n_threads=1) for y in runs]
        out[r] = (1 - e[0].similarity(e[1]), 1 - e[2].similarity(e[3]))
    return out


@pytest.mark.benchmark(group="drift-2000")
def test_drift_taskspace_1thread(benchmark, workload, sizes) -> None:
    texts, then, now = workload
    sur = ts.Surrogate()
    benchmark.extra_info.update(impl="taskspace", threads=1, texts=len(texts), n_boot=sizes[1])
    with threadpool_limits(1):
        report = benchmark.pedantic(
            lambda: ts.drift(sur, texts, then, now, n_boot=sizes[1]), rounds=7, iterations=1, warmup_rounds=1
        )
    assert report.n == len(texts) and report.shift > 0


@pytest.mark.benchmark(group="drift-2000")
def test_drift_naive_1thread(benchmark, workload, sizes) -> None:
    texts, then, now = workload
    sur = ts.Surrogate()
    benchmark.extra_info.update(impl="naive", threads=1, texts=len(texts), n_boot=sizes[1])
    with threadpool_limits(1):
        out = benchmark.pedantic(lambda: _naive(sur, texts, then, now, sizes[1]), rounds=1, iterations=1)
    # same kind of numbers as taskspace's (its group bootstrap differs in detail, not in scale)
    report = ts.drift(sur, texts, then, now, n_boot=sizes[1])
    assert abs(np.median(out[:, 0]) - np.median([report.shift_low, report.shift_high])) < 0.2
