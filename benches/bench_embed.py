"""taskspace's surrogate against a numpy / scikit-learn reference that does the same math.

Not part of the test suite (pytest's ``testpaths`` is ``tests``); run explicitly::

    python -m pytest benches/bench_embed.py -q --benchmark-json=/tmp/bench_embed.json
    python benches/ratios.py /tmp/bench_embed.json

Data: 2,000 labelled texts, see ``conftest.py`` (sst2 train from ../shared/data, else synthetic).

Groups (benchmark names are ``test_<stage>_<impl>_<n>thread(s)``, impl ``taskspace`` or the baseline
``reference``; ``ratios.py`` pairs them by group and thread count):

* ``embed-2000``: one dataset embedding end to end (texts + labels -> 4096-dim unit vector) with
  ``ts.Surrogate()`` defaults, at 1 and at 2 threads. The reference's BLAS / OpenMP pools are limited
  with ``threadpoolctl`` (outside the timed part); only its dense linear algebra can use the second
  thread: scikit-learn's ``HashingVectorizer`` and scipy's sparse products are single-threaded.
* ``featurize-2000``: hashed n-gram features only (taskspace ``featurize`` vs the two
  ``HashingVectorizer.transform`` calls; the reference's final sum of the two matrices is not timed).
* ``calls-10000``: 10,000 small dataset embeddings (32 texts each, ``Surrogate(features=64,
  dim=1024)``, ``n_threads=1`` per call) computed by 2 caller threads (``taskspace``) against the same
  calls from 1 thread (baseline ``onethread``): the ratio is the speed-up from a second core for code
  that embeds many small tasks (the service, drift, probing). 200 calls in the smoke run.
* ``encode-2000``: features projected to h=256 and L2-normalised (``encode`` vs HashingVectorizers +
  ``SparseRandomProjection`` + ``normalize``).

The reference follows rust/surrogate.rs: f = normalize(SRP(word 1-2-grams + char_wb 3-5-grams)),
one-hot labels, centred moments, W = (Σ_F + λ tr(Σ_F)/h I)^{-1} C by ``np.linalg.solve``,
E = W Σ_Y^+ Wᵀ (``np.linalg.pinv``) minus (tr E / h) I, its upper triangle with off-diagonal entries
times √2, and a count sketch to 4096 dims whose buckets and signs are taskspace's own (precomputed). It
differs from taskspace only in the featurizer's details (scikit-learn tokenisation and hashing, raw
instead of sublinear term frequency) and the projection's random matrix, so its numbers are of the
same kind; the setup checks (untimed) that its statistics -> embedding stage reproduces taskspace's
embedding from taskspace's own features.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import scipy.sparse as sp
import taskspace as ts
from sklearn.feature_extraction.text import HashingVectorizer
from sklearn.preprocessing import normalize
from sklearn.random_projection import SparseRandomProjection
from taskspace import _core
from threadpoolctl import threadpool_limits

N_FEATURES = 2**20
#: The reference takes ~0.5 s a call: at least this many rounds so its median means something.
MIN_ROUNDS = 7
MASK64 = (1 << 64) - 1


def _fmix64(k: np.ndarray) -> np.ndarray:
    """MurmurHash3's 64-bit finalizer on uint64 arrays (numpy integer arrays wrap silently)."""
    k = k ^ (k >> np.uint64(33))
    k = k * np.uint64(0xFF51AFD7ED558CCD)
    k = k ^ (k >> np.uint64(33))
    k = k * np.uint64(0xC4CEB9FE1A85EC53)
    return k ^ (k >> np.uint64(33))


def readout_buckets(seed: int, n_values: int, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """taskspace's count-sketch read-out (sketch.rs, for n_values > dim): bucket and sign per entry."""
    domain_readout = 2
    base = np.array([(seed ^ (domain_readout * 0x9E3779B97F4A7C15)) & MASK64], dtype=np.uint64)
    x = _fmix64(_fmix64(base) ^ np.arange(n_values, dtype=np.uint64))
    bucket = (((x >> np.uint64(32)) * np.uint64(dim)) >> np.uint64(32)).astype(np.intp)
    sign = np.where((x & np.uint64(1)) == 1, -1.0, 1.0)
    return bucket, sign


class Reference:
    """The surrogate's math with numpy and scikit-learn (float64 throughout)."""

    def __init__(self, features: int = 256, dim: int = 4096, seed: int = 0, ridge: float = 1.0) -> None:
        self.h, self.dim, self.ridge = features, dim, ridge
        common = {"n_features": N_FEATURES, "alternate_sign": True, "norm": "l2"}
        self.word = HashingVectorizer(ngram_range=(1, 2), **common)
        self.char = HashingVectorizer(analyzer="char_wb", ngram_range=(3, 5), **common)
        self.srp = SparseRandomProjection(
            n_components=features, density=8 / features, random_state=0, dense_output=True
        )
        self.srp.fit(sp.csr_matrix((1, N_FEATURES)))
        self.triu = np.triu_indices(features)
        self.scale = np.where(self.triu[0] == self.triu[1], 1.0, np.sqrt(2.0))
        self.bucket, self.sign = readout_buckets(seed, len(self.scale), dim)
        self.eye = np.eye(features)

    def hashed(self, texts: Sequence[str]) -> tuple[sp.csr_matrix, sp.csr_matrix]:
        return self.word.transform(texts), self.char.transform(texts)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        w, c = self.hashed(texts)
        return normalize(self.srp.transform(w + c))

    def embed_features(self, f: np.ndarray, labels: Sequence[str]) -> np.ndarray:
        """Encoded inputs (n, h) + labels -> unit-norm embedding (label mode, operator)."""
        n, h = f.shape
        _, codes = np.unique(np.asarray(labels), return_inverse=True)
        y = np.eye(codes.max() + 1)[codes]
        fc = f - f.mean(axis=0)
        yc = y - y.mean(axis=0)
        sigma_f = fc.T @ fc / n
        cross = fc.T @ yc / n
        sigma_y = yc.T @ yc / n
        w = np.linalg.solve(sigma_f + (self.ridge * np.trace(sigma_f) / h) * self.eye, cross)
        m = w @ np.linalg.pinv(sigma_y) @ w.T
        m = 0.5 * (m + m.T)
        m -= (np.trace(m) / h) * self.eye
        values = m[self.triu] * self.scale
        acc = np.zeros(self.dim)
        np.add.at(acc, self.bucket, self.sign * values)
        return acc / np.linalg.norm(acc)

    def dataset_embedding(self, texts: Sequence[str], labels: Sequence[str]) -> np.ndarray:
        return self.embed_features(self.encode(texts), labels)


@pytest.fixture(scope="module")
def sur() -> ts.Surrogate:
    assert _core.build_profile == "release", "benchmark a release build (maturin develop --release)"
    return ts.Surrogate()


@pytest.fixture(scope="module")
def reference(sur: ts.Surrogate, bench_data) -> Reference:
    """The fitted reference, checked (untimed) against taskspace on the benchmark data."""
    ref = Reference(features=sur.features, dim=sur.dim, seed=sur.seed, ridge=sur.ridge)
    texts, labels = bench_data.texts, bench_data.labels
    # Same math: the reference's statistics -> embedding stage on taskspace's features reproduces
    # taskspace's embedding (same read-out buckets), up to float32 vs float64 rounding.
    mine = sur.dataset_embedding(texts, labels, n_threads=1).vector.astype(np.float64)
    theirs = ref.embed_features(sur.encode(texts, n_threads=1).astype(np.float64), labels)
    assert mine.shape == theirs.shape == (sur.dim,)
    assert float(mine @ theirs) > 0.9999, float(mine @ theirs)
    # The full reference pipeline gives the same kind of numbers: a finite unit vector of length 4096.
    e = ref.dataset_embedding(texts, labels)
    assert e.shape == (4096,) and np.isfinite(e).all()
    assert abs(float(np.linalg.norm(e)) - 1.0) < 1e-9
    f = ref.encode(texts)
    assert f.shape == (len(texts), sur.features)
    assert np.allclose(np.linalg.norm(f, axis=1), 1.0)
    w, c = ref.hashed(texts)
    assert w.shape == c.shape == (len(texts), N_FEATURES) and w.nnz > 0 and c.nnz > w.nnz
    return ref


def _run(benchmark, bench_data, impl: str, threads: int, fn: Callable[[], object]) -> object:
    benchmark.extra_info.update({"impl": impl, "threads": threads, "data": bench_data.source})
    benchmark.extra_info["n_texts"] = len(bench_data.texts)
    if impl == "reference":
        # BLAS (and OpenMP) pools limited outside the timed part.
        with threadpool_limits(limits=threads):
            return benchmark(fn)
    return benchmark(fn)


# -- embed-2000 -----------------------------------------------------------------------------------


@pytest.mark.benchmark(group="embed-2000", min_rounds=MIN_ROUNDS)
def test_embed_taskspace_1thread(benchmark, sur, bench_data):
    texts, labels = bench_data.texts, bench_data.labels
    e = _run(benchmark, bench_data, "taskspace", 1, lambda: sur.dataset_embedding(texts, labels, n_threads=1))
    assert e.vector.shape == (4096,)


@pytest.mark.benchmark(group="embed-2000", min_rounds=MIN_ROUNDS)
def test_embed_reference_1thread(benchmark, reference, bench_data):
    texts, labels = bench_data.texts, bench_data.labels
    e = _run(benchmark, bench_data, "reference", 1, lambda: reference.dataset_embedding(texts, labels))
    assert e.shape == (4096,)


@pytest.mark.benchmark(group="embed-2000", min_rounds=MIN_ROUNDS)
def test_embed_taskspace_2threads(benchmark, sur, bench_data):
    texts, labels = bench_data.texts, bench_data.labels
    e = _run(benchmark, bench_data, "taskspace", 2, lambda: sur.dataset_embedding(texts, labels, n_threads=2))
    assert e.vector.shape == (4096,)


@pytest.mark.benchmark(group="embed-2000", min_rounds=MIN_ROUNDS)
def test_embed_reference_2threads(benchmark, reference, bench_data):
    texts, labels = bench_data.texts, bench_data.labels
    e = _run(benchmark, bench_data, "reference", 2, lambda: reference.dataset_embedding(texts, labels))
    assert e.shape == (4096,)


# -- featurize-2000 -------------------------------------------------------------------------------


@pytest.mark.benchmark(group="featurize-2000", min_rounds=MIN_ROUNDS)
def test_featurize_taskspace_1thread(benchmark, sur, bench_data):
    out = _run(benchmark, bench_data, "taskspace", 1, lambda: sur.featurize(bench_data.texts, n_threads=1))
    assert len(out.indptr) == len(bench_data.texts) + 1


@pytest.mark.benchmark(group="featurize-2000", min_rounds=MIN_ROUNDS)
def test_featurize_reference_1thread(benchmark, reference, bench_data):
    w, _ = _run(benchmark, bench_data, "reference", 1, lambda: reference.hashed(bench_data.texts))
    assert w.shape[0] == len(bench_data.texts)


# -- encode-2000 ----------------------------------------------------------------------------------


@pytest.mark.benchmark(group="encode-2000", min_rounds=MIN_ROUNDS)
def test_encode_taskspace_1thread(benchmark, sur, bench_data):
    f = _run(benchmark, bench_data, "taskspace", 1, lambda: sur.encode(bench_data.texts, n_threads=1))
    assert f.shape == (len(bench_data.texts), sur.features)


@pytest.mark.benchmark(group="encode-2000", min_rounds=MIN_ROUNDS)
def test_encode_reference_1thread(benchmark, reference, bench_data):
    f = _run(benchmark, bench_data, "reference", 1, lambda: reference.encode(bench_data.texts))
    assert f.shape == (len(bench_data.texts), 256)


# -- calls-10000 ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def calls(request: pytest.FixtureRequest, bench_data) -> list[tuple[list[str], list[str]]]:
    """10,000 (texts, labels) tasks of 32 consecutive benchmark texts (200 in the smoke run)."""
    n = 200 if request.config.getoption("benchmark_disable") else 10_000
    texts, labels = bench_data.texts, bench_data.labels
    out = []
    for i in range(n):
        at = (i * 32) % (len(texts) - 32)
        out.append((texts[at : at + 32], labels[at : at + 32]))
    return out


def _embed_all(sur: ts.Surrogate, calls: list[tuple[list[str], list[str]]], callers: int) -> list[object]:
    with ThreadPoolExecutor(max_workers=callers) as pool:
        return list(pool.map(lambda c: sur.dataset_embedding(c[0], c[1], n_threads=1), calls))


@pytest.mark.benchmark(group="calls-10000", min_rounds=3)
def test_calls_taskspace_2threads(benchmark, calls, bench_data):
    sur = ts.Surrogate(features=64, dim=1024)
    benchmark.extra_info.update({"impl": "taskspace", "threads": "2 vs 1 callers", "data": bench_data.source})
    out = benchmark(lambda: _embed_all(sur, calls, 2))
    assert len(out) == len(calls)


@pytest.mark.benchmark(group="calls-10000", min_rounds=3)
def test_calls_onethread_1thread(benchmark, calls, bench_data):
    sur = ts.Surrogate(features=64, dim=1024)
    benchmark.extra_info.update({"impl": "onethread", "threads": "2 vs 1 callers", "data": bench_data.source})
    out = benchmark(lambda: _embed_all(sur, calls, 1))
    assert len(out) == len(calls)
