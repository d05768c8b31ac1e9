"""A TaskSpace of many 4096-d task embeddings against raw hnswlib and faiss on the same data.

Run (a quiet machine; N from the environment)::

    TASKSPACE_SCALE_N=100000 python -m pytest benches/bench_scale.py -s --benchmark-json=scale.json
    TASKSPACE_SCALE_N=1000000 TASKSPACE_SCALE_BASELINES=0 python -m pytest benches/bench_scale.py -s

Data: N clustered synthetic embeddings of dim 4,096 (centres ``N // 50``, noise 0.5, generated block
by block so that 1M never sits in RAM as float32), every third one a dataset, the rest models;
200 held-out queries from the same clusters; k = 10. Measured and printed (and stored in each
benchmark's ``extra_info``):

* ``test_bulk_load`` (group ``scale-load``): ``add_many`` in batches of 10,000 into a new file —
  embeddings per second; the index is saved at the end (included);
* ``test_reopen_and_first_search`` (group ``scale-open``): open the file and answer one ``nearest``;
* ``test_nearest`` (group ``scale-nearest``): p50 / p99 of ``nearest(v, k=10)``, unfiltered and with
  ``kind="dataset"``; recall@10 against exact search over the stored float32 vectors;
* ``test_catch_up``: another connection adds 1, then 10,000 embeddings; time to this space's next
  answer;
* ``test_duplicates``: ``duplicates(0.95)`` (the k-NN graph pass beyond 20,000 entries);
* ``test_memory_and_disk``: RSS now and peak, the SQLite file and the index directory, bytes per
  embedding;
* ``test_baselines`` (``TASKSPACE_SCALE_BASELINES=1``, the default below 200,000): raw hnswlib over
  the 4096-d float32 vectors (M=16, ef_construction=100, ef=64), faiss ``IndexHNSWFlat`` and
  ``IndexHNSWSQ`` (8-bit) with the same parameters: build time, p50 query, recall@10, RSS growth.

With ``--benchmark-disable`` (the CI smoke run) N = 2,000 and each path runs once.
"""

from __future__ import annotations

import os
import resource
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import taskspace as ts

DIM = 4096
K = 10
N_QUERIES = 200
BATCH = 10_000


def _n(request: pytest.FixtureRequest) -> int:
    if request.config.getoption("benchmark_disable"):
        return 2_000
    return int(os.environ.get("TASKSPACE_SCALE_N", "100000"))


class Data:
    """Clustered vectors generated block by block (deterministic per block)."""

    def __init__(self, n: int, seed: int = 7) -> None:
        self.n = n
        rng = np.random.default_rng(seed)
        self.centers = rng.standard_normal((max(n // 50, 1), DIM)).astype(np.float32)
        self.seed = seed

    def block(self, start: int, stop: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, start])
        c = self.centers[rng.integers(0, len(self.centers), stop - start)]
        return (c + 0.5 * rng.standard_normal((stop - start, DIM), dtype=np.float32)).astype(np.float32)

    def queries(self) -> np.ndarray:
        return self.block(10**12, 10**12 + N_QUERIES)


def _embeddings(sur: ts.Surrogate, x: np.ndarray, start: int, prefix: str = "e") -> list[ts.TaskEmbedding]:
    return [
        ts.TaskEmbedding(
            vector=v,
            fingerprint=sur.fingerprint,
            mode="text",
            method="operator",
            name=f"{prefix}{start + i}",
            kind="dataset" if (start + i) % 3 == 0 else "model",
        )
        for i, v in enumerate(x)
    ]


def _rss_mb() -> tuple[float, float]:
    now = 0.0
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            now = int(line.split()[1]) / 1024
    return now, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _ms(ts_: list[float]) -> tuple[float, float]:
    a = np.array(ts_) * 1e3
    return float(np.percentile(a, 50)), float(np.percentile(a, 99))


@pytest.fixture(scope="module")
def setup(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    n = _n(request)
    return {
        "n": n,
        "data": Data(n),
        "sur": ts.Surrogate(features=64, dim=DIM),
        "path": tmp_path_factory.mktemp("scale") / "space.sqlite",
        "info": {},
    }


def _report(setup: dict[str, Any], benchmark: Any, **values: Any) -> None:
    setup["info"].update(values)
    benchmark.extra_info.update(values)
    print(
        f"\n[N={setup['n']:,}] "
        + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items())
    )


def test_bulk_load(benchmark, setup):
    benchmark.group = "scale-load"
    data, sur, path = setup["data"], setup["sur"], setup["path"]

    def load() -> float:
        t0 = time.perf_counter()
        with ts.TaskSpace(sur, path) as space:
            for s in range(0, data.n, BATCH):
                space.add_many(_embeddings(sur, data.block(s, min(s + BATCH, data.n)), s))
            space.save_index()
        return time.perf_counter() - t0

    took = benchmark.pedantic(load, rounds=1, iterations=1)
    _report(setup, benchmark, load_per_s=data.n / took, load_s=took)


def test_reopen_and_first_search(benchmark, setup):
    benchmark.group = "scale-open"
    q = setup["data"].queries()[0]

    def reopen() -> float:
        t0 = time.perf_counter()
        space = ts.TaskSpace.open(setup["path"])
        space.nearest(q, k=K)
        took = time.perf_counter() - t0
        setup["space"] = space
        return took

    took = benchmark.pedantic(reopen, rounds=1, iterations=1)
    _report(setup, benchmark, reopen_first_search_s=took)


def _exact_top(setup: dict[str, Any], queries: np.ndarray, kind: str | None) -> list[set[str]]:
    """Exact top-k names over the stored float32 vectors, streamed from the file."""
    space = setup["space"]
    qn = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    best = [[] for _ in queries]  # (score, name)
    for ids, kinds, vecs in space._store.blocks(DIM, 8192):
        keep = [i for i, kd in enumerate(kinds) if kind in (None, kd)]
        if not keep:
            continue
        v = vecs[keep]
        s = (v / np.linalg.norm(v, axis=1, keepdims=True)) @ qn.T
        names = [space._name_of[ids[i]] for i in keep]
        for j in range(len(queries)):
            top = np.argsort(-s[:, j])[:K]
            best[j] = sorted(best[j] + [(float(s[t, j]), names[t]) for t in top], reverse=True)[:K]
    return [{n for _, n in b} for b in best]


def test_nearest(benchmark, setup):
    benchmark.group = "scale-nearest"
    space, queries = setup["space"], setup["data"].queries()
    benchmark.pedantic(space.nearest, args=(queries[0],), kwargs={"k": K}, rounds=5, iterations=1)
    out: dict[str, Any] = {}
    for kind in (None, "dataset"):
        times, got = [], []
        for q in queries:
            t0 = time.perf_counter()
            res = space.nearest(q, k=K, kind=kind)
            times.append(time.perf_counter() - t0)
            got.append({n for n, _ in res})
        want = _exact_top(setup, queries, kind)
        tag = kind or "all"
        out[f"p50_ms_{tag}"], out[f"p99_ms_{tag}"] = _ms(times)
        out[f"recall10_{tag}"] = float(np.mean([len(g & w) / K for g, w in zip(got, want, strict=True)]))
    _report(setup, benchmark, **out)


def test_catch_up(benchmark, setup):
    benchmark.group = "scale-catch-up"
    space, data, sur = setup["space"], setup["data"], setup["sur"]
    q = data.queries()[1]
    out = {}
    for count in (1, min(10_000, max(data.n // 10, 1))):
        with ts.TaskSpace(sur, setup["path"]) as other:
            other.add_many(
                _embeddings(sur, data.block(10**9 + count, 10**9 + 2 * count), 0, f"foreign{count}-")
            )
        t0 = time.perf_counter()
        space.nearest(q, k=K)
        out[f"catch_up_{count}_s"] = time.perf_counter() - t0
    benchmark.pedantic(space.nearest, args=(q,), kwargs={"k": K}, rounds=1, iterations=1)
    _report(setup, benchmark, **out)


def test_duplicates(benchmark, setup):
    benchmark.group = "scale-duplicates"
    space = setup["space"]
    t0 = time.perf_counter()
    found = benchmark.pedantic(space.duplicates, args=(0.95,), rounds=1, iterations=1)
    _report(setup, benchmark, duplicates_s=time.perf_counter() - t0, duplicates_found=len(found))


def test_memory_and_disk(benchmark, setup):
    benchmark.group = "scale-memory"
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
    space, n = setup["space"], len(setup["space"])
    directory = Path(str(setup["path"]) + ".index")
    index_bytes = sum(f.stat().st_size for f in directory.iterdir() if f.is_file())
    file_bytes = setup["path"].stat().st_size
    rss, peak = _rss_mb()
    per = space._index.index.bytes_per_item()
    _report(
        setup,
        benchmark,
        rss_mb=rss,
        peak_rss_mb=peak,
        sqlite_mb=file_bytes / 2**20,
        index_mb=index_bytes / 2**20,
        disk_bytes_per_embedding=(file_bytes + index_bytes) / n,
        index_bytes_per_embedding=index_bytes / n,
        ram_bytes_per_embedding_est=sum(per.values()),
    )


def _baseline(
    name: str, build: Any, query: Any, data: Data, queries: np.ndarray, want: list[set[int]]
) -> dict:
    rss0, _ = _rss_mb()
    t0 = time.perf_counter()
    index = build()
    for s in range(0, data.n, BATCH):
        x = data.block(s, min(s + BATCH, data.n))
        index_add = index[1]
        index_add(x / np.linalg.norm(x, axis=1, keepdims=True), np.arange(s, s + len(x)))
    built = time.perf_counter() - t0
    times, hits = [], 0
    for q, w in zip(queries, want, strict=True):
        t1 = time.perf_counter()
        got = query(index[0], q)
        times.append(time.perf_counter() - t1)
        hits += len(set(got) & w)
    rss1, _ = _rss_mb()
    p50, p99 = _ms(times)
    return {
        f"{name}_build_s": built,
        f"{name}_p50_ms": p50,
        f"{name}_p99_ms": p99,
        f"{name}_recall10": hits / (K * len(queries)),
        f"{name}_rss_growth_mb": rss1 - rss0,
    }


@pytest.mark.skipif(os.environ.get("TASKSPACE_SCALE_BASELINES") == "0", reason="TASKSPACE_SCALE_BASELINES=0")
def test_baselines(benchmark, setup):
    import hnswlib

    benchmark.group = "scale-baselines"
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
    data = setup["data"]
    queries = data.queries()
    qn = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    scores = np.full((len(qn), K), -np.inf, dtype=np.float32)
    ids = np.zeros((len(qn), K), dtype=np.int64)
    for s in range(0, data.n, BATCH):
        x = data.block(s, min(s + BATCH, data.n))
        sim = qn @ (x / np.linalg.norm(x, axis=1, keepdims=True)).T
        allsc = np.concatenate([scores, sim], axis=1)
        allid = np.concatenate([ids, np.broadcast_to(np.arange(s, s + len(x)), sim.shape)], axis=1)
        top = np.argsort(-allsc, axis=1)[:, :K]
        scores, ids = np.take_along_axis(allsc, top, 1), np.take_along_axis(allid, top, 1)
    want = [set(r.tolist()) for r in ids]

    def raw() -> tuple[Any, Any]:
        h = hnswlib.Index(space="ip", dim=DIM)
        h.init_index(max_elements=data.n, M=16, ef_construction=100)
        h.set_ef(64)
        return h, lambda x, i: h.add_items(x, i, num_threads=2)

    out = _baseline("hnswlib", raw, lambda h, q: h.knn_query(q, K)[0][0].tolist(), data, qn, want)
    try:
        import faiss
    except ImportError:
        faiss = None
    if faiss is not None:
        for name, make in (
            ("faiss_hnsw_flat", lambda: faiss.IndexHNSWFlat(DIM, 16, faiss.METRIC_INNER_PRODUCT)),
            (
                "faiss_hnsw_sq8",
                lambda: faiss.IndexHNSWSQ(DIM, faiss.ScalarQuantizer.QT_8bit, 16, faiss.METRIC_INNER_PRODUCT),
            ),
        ):

            def build(make: Any = make) -> tuple[Any, Any]:
                f = make()
                f.hnsw.efConstruction = 100
                f.hnsw.efSearch = 64

                def add(x: np.ndarray, _ids: np.ndarray) -> None:
                    if not f.is_trained:
                        f.train(x)
                    f.add(x)

                return f, add

            out.update(
                _baseline(name, build, lambda f, q: f.search(q[None, :], K)[1][0].tolist(), data, qn, want)
            )
    _report(setup, benchmark, **out)
