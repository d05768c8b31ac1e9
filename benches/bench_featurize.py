"""Featurization of 200,000 short documents: taskspace against scikit-learn and against a byte scan.

Not part of the test suite; run explicitly (one thread everywhere)::

    python -m pytest benches/bench_featurize.py -q --benchmark-json=/tmp/bench_featurize.json
    python benches/ratios.py /tmp/bench_featurize.json

Data: the 2,000 benchmark texts of ``conftest.py`` repeated to 200,000 documents, each cut to its
first 1-3 sentences' worth of words (short documents, 40-160 bytes, mean printed in ``extra_info``).
``--benchmark-disable`` (the smoke run) uses 2,000 documents.

Group ``featurize-200k`` (``ratios.py`` divides each baseline's median by taskspace's):

* ``taskspace``: ``Surrogate().featurize`` (word 1-2-grams and char_wb 3-5-grams, hashed to 2^20
  buckets, sublinear tf, per-group and row L2 norms) into CSR arrays, ``n_threads=1``.
* ``reference``: scikit-learn's two ``HashingVectorizer.transform`` calls (word 1-2 + char_wb 3-5,
  2^20 features, L2 norm): the same features in the scikit-learn world.
* ``scan``: the limit-style baseline ``_core.scan_windows4``, a Rust loop that only hashes every
  4-byte window of every document into a checksum: no tokens, no n-grams, no counting, no output.
  Its MB/s (``extra_info["mb_per_s"]``, from the median) is the machine's bound for any featurizer
  that reads each byte; taskspace's ratio against it says how far featurization is from that bound.

Both taskspace and the scan receive the texts as a Python list (the conversion to Rust strings is
timed in both).
"""

from __future__ import annotations

import pytest
import taskspace as ts
from sklearn.feature_extraction.text import HashingVectorizer
from taskspace import _core

N_DOCS = 200_000
N_FEATURES = 2**20


@pytest.fixture(scope="module")
def docs(request: pytest.FixtureRequest, bench_data) -> list[str]:
    n = 2000 if request.config.getoption("benchmark_disable") else N_DOCS
    base = bench_data.texts
    out = []
    for i in range(n):
        words = base[i % len(base)].split()
        k = 8 + (i * 7) % 20  # 8-27 words
        out.append(" ".join(words[:k]) if len(words) > k else " ".join(words))
    return out


def _info(benchmark, docs: list[str], impl: str) -> None:
    benchmark.extra_info.update(
        {
            "impl": impl,
            "threads": 1,
            "n_docs": len(docs),
            "mean_bytes": sum(len(d.encode()) for d in docs) / len(docs),
            "simd_backend": _core.simd_backend(),
        }
    )


def _mb_per_s(benchmark, docs: list[str]) -> None:
    stats = getattr(benchmark, "stats", None)
    if stats is not None and getattr(stats, "stats", None) is not None:
        total = sum(len(d.encode()) for d in docs)
        benchmark.extra_info["mb_per_s"] = total / 1e6 / stats.stats.median


@pytest.mark.benchmark(group="featurize-200k", min_rounds=3)
def test_featurize200k_taskspace_1thread(benchmark, docs):
    sur = ts.Surrogate()
    _info(benchmark, docs, "taskspace")
    out = benchmark(lambda: sur.featurize(docs, n_threads=1))
    assert len(out.indptr) == len(docs) + 1 and out.n_features == N_FEATURES
    _mb_per_s(benchmark, docs)


@pytest.mark.benchmark(group="featurize-200k", min_rounds=3)
def test_featurize200k_reference_1thread(benchmark, docs):
    word = HashingVectorizer(ngram_range=(1, 2), n_features=N_FEATURES, alternate_sign=True, norm="l2")
    char = HashingVectorizer(analyzer="char_wb", ngram_range=(3, 5), n_features=N_FEATURES, norm="l2")
    _info(benchmark, docs, "reference")
    w, c = benchmark(lambda: (word.transform(docs), char.transform(docs)))
    assert w.shape == c.shape == (len(docs), N_FEATURES) and c.nnz > w.nnz > 0
    _mb_per_s(benchmark, docs)


@pytest.mark.benchmark(group="featurize-200k", min_rounds=5)
def test_featurize200k_scan_1thread(benchmark, docs):
    _info(benchmark, docs, "scan")
    checksum = benchmark(lambda: _core.scan_windows4(docs))
    assert checksum > 0
    _mb_per_s(benchmark, docs)
