"""taskspace.Index against raw hnswlib: the wrapper's overhead, single-query latency and recall.

Run: ``python -m pytest benches/bench_index.py -s --benchmark-json=out.json`` then
``python benches/ratios.py out.json``. Both sides get the same data, parameters (``M=16``,
``ef_construction=200``, ``ef=64``, ``k=10``, cosine) and threads (2, the machine's cores); the raw
side is ``hnswlib.Index`` used directly. Data: N = 100,000 vectors of d = 256 around 2,000 Gaussian
cluster centres, and 1,000 held-out queries from the same clusters.

* group ``index-build``: adding all N vectors to an empty index (taskspace: validation, the id map,
  its copy of the vectors; it grows from ``capacity=1024`` as a user's index would, raw hnswlib is
  told N up front). Target: overhead ≤ 10%.
* group ``index-query-batch``: the 1,000 queries in one call.
* group ``index-query-single``: one query per call, the latency a service sees.
* ``test_latency_and_recall`` (not a timing benchmark): p50 / p99 single-query latency of
  taskspace, of hnswlib on the same graph (the wrapper's own hnswlib object: the difference is the
  wrapper's cost alone) and of the raw build, timed query by query in orders cycling through all
  permutations so that machine noise and cache warmth hit all alike; and recall@10 of both builds
  against exact search (taskspace's exact kernel, checked against numpy). Printed, and asserted
  (recall ≥ 0.95) at full size.

With ``--benchmark-disable`` (the CI smoke run) N = 3,000 and 50 queries, each path once.

``TaskSpace.nearest`` (unfiltered and kind-filtered, recall against exact search) is measured by
``benches/bench_scale.py``: a TaskSpace searches its own compact index now, not an ``Index``.
"""

from __future__ import annotations

import itertools
import time

import hnswlib
import numpy as np
import pytest
import taskspace as ts

THREADS = 2
K = 10
PARAMS = {"M": 16, "ef_construction": 200}
EF = 64


def _smoke(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("benchmark_disable"))


def _clustered(n: int, d: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((max(n // 50, 1), d))
    x = centers[rng.integers(0, len(centers), n)] + 0.5 * rng.standard_normal((n, d))
    return np.ascontiguousarray(x, dtype=np.float32)


@pytest.fixture(scope="module")
def data(request) -> tuple[np.ndarray, np.ndarray]:
    n, q = (3_000, 50) if _smoke(request) else (100_000, 1_000)
    both = _clustered(n + q, 256, 7)
    return both[:n], both[n:]


def _build_taskspace(x: np.ndarray) -> ts.Index:
    index = ts.Index(dim=x.shape[1], ef=EF, n_threads=THREADS, **PARAMS)
    index.add(x, np.arange(len(x)))
    return index


def _build_raw(x: np.ndarray) -> hnswlib.Index:
    index = hnswlib.Index(space="cosine", dim=x.shape[1])
    index.init_index(max_elements=len(x), random_seed=100, **PARAMS)
    index.add_items(x, np.arange(len(x)), num_threads=THREADS)
    index.set_ef(EF)
    return index


@pytest.fixture(scope="module")
def built(data) -> tuple[ts.Index, hnswlib.Index]:
    x, _ = data
    return _build_taskspace(x), _build_raw(x)


def _info(benchmark, impl: str, x: np.ndarray) -> None:
    benchmark.extra_info.update(
        impl=impl, threads=THREADS, n=len(x), dim=x.shape[1], simd=ts.simd_backend(), **PARAMS, ef=EF
    )


def test_build_taskspace(benchmark, data, request):
    x, _ = data
    benchmark.group = "index-build"
    _info(benchmark, "taskspace", x)
    index = benchmark.pedantic(_build_taskspace, args=(x,), rounds=1 if _smoke(request) else 3)
    assert len(index) == len(x)


def test_build_hnswlib_baseline(benchmark, data, request):
    x, _ = data
    benchmark.group = "index-build"
    _info(benchmark, "hnswlib (raw), baseline", x)
    index = benchmark.pedantic(_build_raw, args=(x,), rounds=1 if _smoke(request) else 3)
    assert index.get_current_count() == len(x)


def test_query_batch_taskspace(benchmark, data, built):
    x, q = data
    benchmark.group = "index-query-batch"
    _info(benchmark, "taskspace", x)
    res = benchmark(built[0].search, q, K)
    assert res.ids.shape == (len(q), K)


def test_query_batch_hnswlib_baseline(benchmark, data, built):
    x, q = data
    benchmark.group = "index-query-batch"
    _info(benchmark, "hnswlib (raw), baseline", x)
    labels, _ = benchmark(built[1].knn_query, q, k=K, num_threads=THREADS)
    assert labels.shape == (len(q), K)


def test_query_single_taskspace(benchmark, data, built):
    x, q = data
    benchmark.group = "index-query-single"
    _info(benchmark, "taskspace", x)
    queries = itertools.cycle(list(q))
    index = built[0]
    benchmark(lambda: index.search(next(queries), K))


def test_query_single_hnswlib_baseline(benchmark, data, built):
    x, q = data
    benchmark.group = "index-query-single"
    _info(benchmark, "hnswlib (raw), baseline", x)
    queries = itertools.cycle(list(q))
    index = built[1]
    benchmark(lambda: index.knn_query(next(queries), k=K, num_threads=THREADS))


def _recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(
        np.mean([len(set(a) & set(b)) / K for a, b in zip(found.tolist(), truth.tolist(), strict=True)])
    )


def test_latency_and_recall(data, built, request):
    x, q = data
    ours, raw = built
    exact = ours.search(q, K, exact=True).ids
    some = slice(0, min(len(q), 100))  # the exact kernel against float64 numpy, on a subset
    u = x / np.linalg.norm(x, axis=1, keepdims=True)
    qu = q[some] / np.linalg.norm(q[some], axis=1, keepdims=True)
    numpy_ids = np.argsort(-(qu.astype(np.float64) @ u.T.astype(np.float64)), axis=1)[:, :K]
    assert _recall(exact[some], numpy_ids) >= 0.999
    recall_ours = _recall(ours.search(q, K).ids, exact)
    recall_raw = _recall(raw.knn_query(q, k=K, num_threads=THREADS)[0].astype(np.int64), exact)

    # Three ways to answer each query, timed back to back: taskspace; hnswlib on the very graph
    # taskspace holds (so the difference is the wrapper's own cost, nothing else); and the
    # separately built raw index (two builds with 2 threads insert in different orders, so their
    # graphs, and the work per query, differ a little). A search right after another one of the
    # same query on the same graph finds the nodes it visits in the cache, so the order cycles
    # through all six permutations: each runs first, and right after each other, equally often.
    same_graph = ours._hnsw
    runs = {
        "taskspace": lambda v: ours.search(v, K),
        "hnswlib, same graph": lambda v: same_graph.knn_query(v, k=K, num_threads=THREADS),
        "hnswlib, own build": lambda v: raw.knn_query(v, k=K, num_threads=THREADS),
    }
    names = list(runs)
    times: dict[str, list[float]] = {name: [] for name in names}
    clock = time.perf_counter_ns
    orders = list(itertools.permutations(names))
    for rep in range(1 if _smoke(request) else 6):
        for i, v in enumerate(q):
            for name in orders[(i + rep) % len(orders)]:
                t0 = clock()
                runs[name](v)
                times[name].append((clock() - t0) / 1e3)
    ts_us = np.array(times["taskspace"])
    same_us = np.array(times["hnswlib, same graph"])
    lines = [
        f"Index N={len(x)} d={x.shape[1]} M={PARAMS['M']} ef_construction={PARAMS['ef_construction']} "
        f"ef={EF} k={K} threads={THREADS} simd={ts.simd_backend()}, single-query latency:"
    ]
    for name in names:
        p50, p99 = np.percentile(times[name], [50, 99])
        lines.append(f"  {name:20s} p50 {p50:7.1f} us   p99 {p99:7.1f} us")
    extra = float(np.median(ts_us - same_us))
    lines.append(
        f"  wrapper cost per query (median of paired differences): {extra:.1f} us = "
        f"{extra / float(np.median(same_us)):+.1%} of hnswlib's p50"
    )
    lines.append(f"  recall@10 vs exact: taskspace {recall_ours:.4f}, hnswlib own build {recall_raw:.4f}")
    print("\n" + "\n".join(lines))
    if not _smoke(request):
        assert recall_ours >= 0.95
    assert abs(recall_ours - recall_raw) < 0.02  # same graph parameters, same quality
