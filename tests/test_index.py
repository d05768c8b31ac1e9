"""taskspace.Index: ids, growth, search against a numpy oracle, filters, deletions, bad input,
atomic save/load (including damaged files and a crash mid-save), the readers-writer lock under
threads, and recall against exact search on a clustered set."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import taskspace as ts
from taskspace.search import index as index_module
from taskspace.search.index import MANIFEST, _SearchWriteLock

DIM = 32
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1


def clustered(n: int, dim: int, *, clusters: int = 50, spread: float = 0.4, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((clusters, dim))
    x = centers[rng.integers(0, clusters, n)] + spread * rng.standard_normal((n, dim))
    return x.astype(np.float32)


def oracle(items: np.ndarray, ids: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest by cosine distance in float64: (ids, distances)."""
    a = queries.astype(np.float64)
    b = items.astype(np.float64)
    cos = (a / np.linalg.norm(a, axis=1, keepdims=True)) @ (b / np.linalg.norm(b, axis=1, keepdims=True)).T
    order = np.argsort(-cos, axis=1, kind="stable")[:, :k]
    return ids[order], 1.0 - np.take_along_axis(cos, order, axis=1)


@pytest.fixture
def data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x = clustered(600, DIM)
    ids = np.arange(600, dtype=np.int64) * 7 - 1000  # negative and positive, not dense
    q = clustered(40, DIM, seed=1)
    return x, ids, q


@pytest.fixture
def idx(data) -> ts.Index:
    x, ids, _ = data
    index = ts.Index(dim=DIM, capacity=64)
    index.add(x, ids)
    return index


def assert_matches_oracle(res: ts.SearchResult, x, ids, q, k, *, min_recall: float = 1.0) -> None:
    want_ids, want_dist = oracle(x, ids, q, k)
    assert res.ids.dtype == np.int64 and res.distances.dtype == np.float32 and res.counts.dtype == np.int64
    assert res.ids.shape == res.distances.shape == (q.shape[0], k)
    assert np.all(np.diff(res.distances, axis=1) >= 0)
    hits = sum(len(set(a) & set(b)) for a, b in zip(res.ids.tolist(), want_ids.tolist(), strict=True))
    assert hits / want_ids.size >= min_recall
    if min_recall == 1.0:
        np.testing.assert_allclose(res.distances, want_dist, atol=1e-5)


# -- basics -------------------------------------------------------------------------------------------


def test_search_matches_exact_oracle(idx, data):
    x, ids, q = data
    assert len(idx) == 600 and idx.tombstones == 0
    exact = idx.search(q, k=10, exact=True)  # 40 queries: the fused top-k kernel
    assert_matches_oracle(exact, x, ids, q, 10)
    assert_matches_oracle(idx.search(q[:3], k=10, exact=True), x, ids, q[:3], 10)  # few: one BLAS product
    assert exact.counts.tolist() == [10] * len(q)
    approx = idx.search(q, k=10)
    assert_matches_oracle(approx, x, ids, q, 10, min_recall=0.95)
    assert set(approx.ids.ravel().tolist()) <= set(ids.tolist())


def test_ids_contains_and_int64_extremes():
    index = ts.Index(dim=3)
    vecs = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=np.float32)
    index.add(vecs, [INT64_MIN, 0, INT64_MAX])
    assert INT64_MIN in index and INT64_MAX in index and 0 in index
    assert 5 not in index and "0" not in index and 1.0 not in index and True not in index
    assert index.ids().tolist() == [INT64_MIN, 0, INT64_MAX]
    res = index.search(vecs, k=1)
    assert res.ids[:, 0].tolist() == [INT64_MIN, 0, INT64_MAX]
    np.testing.assert_allclose(res.distances, 0.0, atol=1e-6)
    index.add(np.array([1.0, 1.0, 0.0]), np.uint64(7))  # one vector, a scalar id
    assert 7 in index and len(index) == 4


def test_auto_grow(data):
    x, ids, q = data
    index = ts.Index(dim=DIM, capacity=1)
    for start in range(0, 600, 97):
        index.add(x[start : start + 97], ids[start : start + 97])
    assert len(index) == 600 and index.capacity >= 600
    assert_matches_oracle(index.search(q, k=5, exact=True), x, ids, q, 5)
    assert_matches_oracle(index.search(q, k=5), x, ids, q, 5, min_recall=0.95)


def test_k_is_clamped_and_results_are_padded_only_when_filtered():
    index = ts.Index(dim=2)
    index.add([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], [1, 2, 3])
    res = index.search([1.0, 0.2], k=50)
    assert res.ids.shape == (1, 3) and res.counts.tolist() == [3]
    res = index.search([1.0, 0.2], k=3, allowed_ids=[2, 99])
    assert res.ids.tolist() == [[2, -1, -1]] and res.counts.tolist() == [1]
    assert np.isinf(res.distances[0, 1:]).all() and np.isfinite(res.distances[0, 0])
    res = index.search([[1.0, 0.2], [0.0, 1.0]], k=2, allowed_ids=[])
    assert res.ids.tolist() == [[-1, -1], [-1, -1]] and res.counts.tolist() == [0, 0]


def test_empty_index_returns_no_results():
    res = ts.Index(dim=4).search(np.ones(4), k=3)
    assert res.ids.shape == (1, 0) and res.counts.tolist() == [0]


def test_single_float32_query_fast_path_agrees_with_the_general_path(data):
    """One 1-D float32 query with default options takes a shortcut: same results, same errors."""
    x, ids, q = data
    index = ts.Index(dim=DIM, M=4, ef_construction=16, ef=4)
    assert index.search(q[0], k=3).ids.shape == (1, 0)  # empty index
    index.add(x[:300], ids[:300])

    def check(v: np.ndarray, k: int) -> None:
        fast = index.search(v, k)
        general = index.search(v[None, :], np.int64(k))  # a batch of one, numpy k: the general path
        for got, want in zip(fast, general, strict=True):
            assert got.dtype == want.dtype and got.shape == want.shape
            np.testing.assert_array_equal(got, want)

    for v in q[:5]:
        check(v, 10)
        check(v, 1000)  # clamped to the 300 items
    index.remove(ids[:290])  # hnswlib now finds too few: both fall back to exact search
    check(q[0], 10)
    assert index.search(q[0], 10).counts.tolist() == [10]
    for bad in (
        np.zeros(DIM, np.float32),
        np.full(DIM, np.nan, np.float32),
        np.full(DIM, np.inf, np.float32),
    ):
        with pytest.raises(ts.InvalidInputError):
            index.search(bad)
    for k, error in ((0, ts.InvalidInputError), (-1, ts.InvalidInputError), (True, TypeError)):
        with pytest.raises(error):
            index.search(q[0], k)


def test_distances_are_cosine_distances():
    index = ts.Index(dim=2)
    index.add([[1.0, 0.0], [-1.0, 0.0], [0.0, 5.0]], [0, 1, 2])
    for exact in (False, True):
        res = index.search([2.0, 0.0], k=3, exact=exact)
        assert res.ids.tolist() == [[0, 2, 1]]
        np.testing.assert_allclose(res.distances, [[0.0, 1.0, 2.0]], atol=1e-6)


def test_float64_and_non_contiguous_inputs_are_coerced(data):
    x, ids, q = data
    index = ts.Index(dim=DIM)
    wide = np.zeros((600, 2 * DIM), dtype=np.float64)
    wide[:, ::2] = x
    index.add(wide[:, ::2], ids)  # float64, strided
    want = index.search(q, k=5, exact=True)
    q_f = np.asfortranarray(q.astype(np.float64))
    got = index.search(q_f, k=5, exact=True)
    np.testing.assert_array_equal(got.ids, want.ids)
    assert_matches_oracle(want, x, ids, q, 5)
    # integer vectors are numbers too
    ints = ts.Index(dim=2)
    ints.add(np.array([[1, 0], [0, 2]]), [1, 2])
    assert ints.search(np.array([3, 1]), k=1).ids.tolist() == [[1]]


def test_extreme_magnitudes_are_normalized_safely():
    index = ts.Index(dim=3)
    big = np.array([[3e37, 3e37, 0.0], [0.0, 1e-30, 1e-30]], dtype=np.float32)  # squares overflow / underflow
    index.add(big, [1, 2])
    res = index.search(np.array([1e-25, 1e-25, 0.0], dtype=np.float32), k=2)
    assert res.ids.tolist() == [[1, 2]]
    np.testing.assert_allclose(res.distances, [[0.0, 0.5]], atol=1e-5)


# -- writes: replace, remove, compact -------------------------------------------------------------------


def test_duplicate_ids_are_refused_unless_replace(idx, data):
    x, ids, _ = data
    with pytest.raises(ts.InvalidInputError, match="already in the index"):
        idx.add(x[:2], ids[:2])
    with pytest.raises(ts.InvalidInputError, match="repeated within the call"):
        idx.add(x[:2], [10**6, 10**6])
    assert len(idx) == 600
    target = -x[0]  # opposite of its old vector
    idx.add(target, ids[0], replace=True)
    assert len(idx) == 600 and idx.tombstones == 0
    res = idx.search(target, k=1)
    assert res.ids.tolist() == [[ids[0]]]
    assert idx.search(target, k=1, exact=True).ids.tolist() == [[ids[0]]]


def test_remove_tombstones_and_compact(idx, data):
    x, ids, q = data
    gone = ids[::2]
    idx.remove(gone)
    idx.remove([])  # nothing to do
    assert len(idx) == 300 and idx.tombstones == 300
    assert not any(int(i) in idx for i in gone)
    keep_x, keep_ids = x[1::2], ids[1::2]
    for exact in (True, False):
        res = idx.search(q, k=10, exact=exact)
        assert not set(res.ids.ravel().tolist()) & set(gone.tolist())
        assert_matches_oracle(res, keep_x, keep_ids, q, 10, min_recall=1.0 if exact else 0.9)
    with pytest.raises(KeyError, match="not in the index"):
        idx.remove([ids[1], 123456789])
    assert ids[1] in idx  # nothing removed when one id is unknown
    assert idx.compact() == 300
    assert idx.tombstones == 0 and len(idx) == 300 and idx.compact() == 0
    assert_matches_oracle(idx.search(q, k=10, exact=True), keep_x, keep_ids, q, 10)
    idx.add(x[0], ids[0])  # a removed id can come back
    assert ids[0] in idx and len(idx) == 301


def test_heavy_deletion_falls_back_to_exact_search():
    x = clustered(300, DIM)
    index = ts.Index(dim=DIM, M=4, ef_construction=16, ef=4)
    index.add(x, np.arange(300))
    index.remove(np.arange(290))
    res = index.search(x[:5], k=10)
    assert res.counts.tolist() == [10] * 5
    assert set(res.ids.ravel().tolist()) == set(range(290, 300))


def test_filtered_graph_search(idx, data, monkeypatch):
    x, ids, q = data
    allowed = ids[ids % 3 == 0]
    exact = idx.search(q, k=8, allowed_ids=allowed)  # small allowed set: exact
    sel = np.isin(ids, allowed)
    assert_matches_oracle(exact, x[sel], ids[sel], q, 8)
    monkeypatch.setattr(index_module, "EXACT_MAX", 10)  # force the hnswlib filter path
    graph = idx.search(q, k=8, allowed_ids=[*allowed.tolist(), 10**12])
    assert set(graph.ids.ravel().tolist()) <= set(allowed.tolist())
    assert_matches_oracle(graph, x[sel], ids[sel], q, 8, min_recall=0.9)
    tiny = idx.search(q[:2], k=8, allowed_ids=allowed[:3], exact=True)
    assert tiny.counts.tolist() == [3, 3]


def test_search_ef_is_per_call(idx, data):
    x, ids, q = data
    low = idx.search(q, k=10, ef=10)
    high = idx.search(q, k=10, ef=400)
    assert_matches_oracle(high, x, ids, q, 10, min_recall=0.99)
    assert low.ids.shape == high.ids.shape
    assert idx.ef == 64
    idx.ef = 100
    assert idx.ef == 100


# -- task embeddings -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def embeddings():
    from taskspace.datasets import builtin as datasets

    sur = ts.Surrogate(features=32, dim=64)
    other = ts.Surrogate(features=32, dim=64, seed=1)
    names = ("movie_sentiment", "product_sentiment", "news_topic", "question_type")
    embs = [sur.dataset_embedding(*datasets.load(n), name=n) for n in names]
    text = sur.dataset_embedding(*datasets.load("news_topic"), name="news", mode="text")
    foreign = other.dataset_embedding(*datasets.load("news_topic"), name="news")
    return sur, embs, text, foreign


def test_task_embeddings_are_checked(embeddings):
    sur, embs, text, foreign = embeddings
    index = ts.Index(dim=64)
    index.add(embs, [0, 1, 2, 3])
    assert index.fingerprint == sur.fingerprint and index.mode == "label"
    res = index.search(embs[0], k=2)
    assert res.ids[0, 0] == 0
    np.testing.assert_allclose(
        1 - res.distances[0, 1], embs[0].similarity(embs[int(res.ids[0, 1])]), atol=1e-5
    )
    with pytest.raises(ts.FingerprintMismatchError):
        index.add(foreign, 9)
    with pytest.raises(ts.FingerprintMismatchError):
        index.add(text, 9)
    with pytest.raises(ts.FingerprintMismatchError):
        index.search(foreign)
    with pytest.raises(TypeError, match="do not mix"):
        index.add([embs[0], np.zeros(64)], [7, 8])
    fixed = ts.Index(dim=64, fingerprint="0123456789abcdef")
    with pytest.raises(ts.FingerprintMismatchError):
        fixed.add(embs[0], 0)


# -- bad input -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("vectors", "message"),
    [
        (np.array([[1.0, np.nan, 0.0]]), "NaN or infinity"),
        (np.array([[1.0, np.inf, 0.0]]), "NaN or infinity"),
        (np.array([[1.0, 1.0, 0.0], [0.0, 0.0, 0.0]]), r"vectors\[1\] is the zero vector"),
        (np.ones((1, 4)), "dimension 4"),
        (np.empty((0, 3)), "empty"),
        (np.array([[1e300, 0.0, 0.0]]), "too large for float32"),
        ([[1.0, 2.0], [3.0]], "rectangular"),
        (np.ones((2, 2, 3)), "1-D or 2-D"),
    ],
)
def test_bad_vectors(vectors, message):
    index = ts.Index(dim=3)
    with pytest.raises(ts.InvalidInputError, match=message):
        index.add(vectors, list(range(len(vectors))) or [0])
    assert len(index) == 0 and index.tombstones == 0
    index.add(np.eye(3), [0, 1, 2])
    with pytest.raises(ts.InvalidInputError, match=message.replace("vectors", "queries")):
        index.search(vectors)


@pytest.mark.parametrize(
    ("ids", "error", "message"),
    [
        ([2**63], ts.InvalidInputError, "outside the int64 range"),
        ([-(2**63) - 1], ts.InvalidInputError, "outside the int64 range"),
        ([-1, 2**63], ts.InvalidInputError, "outside the int64 range"),
        (np.array([2**63], dtype=np.uint64), ts.InvalidInputError, "outside the int64 range"),
        ([1.0], TypeError, "must be an int"),
        (np.array([1.0]), TypeError, "must be integers"),
        ([True], TypeError, "must be an int"),
        ("1", TypeError, "must be ints"),
        ([[1]], TypeError, "must be an int"),
        (np.array([[1]]), ts.InvalidInputError, "must be 1-D"),
        ([1, 2], ts.InvalidInputError, "1 vectors but 2 ids"),
    ],
)
def test_bad_ids(ids, error, message):
    index = ts.Index(dim=3)
    with pytest.raises(error, match=message):
        index.add(np.ones((1, 3)), ids)
    assert len(index) == 0


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"k": 0}, ts.InvalidInputError),
        ({"k": -3}, ts.InvalidInputError),
        ({"k": 2.0}, TypeError),
        ({"k": True}, TypeError),
        ({"ef": 0}, ts.InvalidInputError),
        ({"allowed_ids": [1.5]}, TypeError),
        ({"allowed_ids": [2**64]}, ts.InvalidInputError),
    ],
)
def test_bad_search_arguments(kwargs, error):
    index = ts.Index(dim=2)
    index.add(np.eye(2), [0, 1])
    with pytest.raises(error):
        index.search([1.0, 0.0], **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"dim": 0}, ts.InvalidInputError),
        ({"dim": 3.0}, TypeError),
        ({"dim": 3, "metric": "l2"}, ts.InvalidInputError),
        ({"dim": 3, "M": 1}, ts.InvalidInputError),
        ({"dim": 3, "ef": 0}, ts.InvalidInputError),
        ({"dim": 3, "capacity": 0}, ts.InvalidInputError),
        ({"dim": 3, "fingerprint": 5}, TypeError),
        ({"dim": 3, "n_threads": 0}, ts.InvalidInputError),
    ],
)
def test_bad_constructor_arguments(kwargs, error):
    with pytest.raises(error):
        ts.Index(**kwargs)


def test_constructor_is_keyword_only():
    with pytest.raises(TypeError):
        ts.Index(3)  # type: ignore[misc]


# -- save / load ---------------------------------------------------------------------------------------


def snapshot(index: ts.Index, q: np.ndarray) -> tuple:
    res = index.search(q, k=10, exact=True)
    return (len(index), index.tombstones, index.ids().tolist(), res.ids.tolist(), res.distances.tolist())


def test_save_load_round_trip(tmp_path, idx, data):
    x, ids, q = data
    idx.remove(ids[:50])
    before = snapshot(idx, q)
    approx = idx.search(q, k=10).ids
    idx.save(tmp_path / "idx")
    loaded = ts.Index.load(tmp_path / "idx")
    assert snapshot(loaded, q) == before
    np.testing.assert_array_equal(loaded.search(q, k=10).ids, approx)  # same graph, same walk
    for attr in ("dim", "metric", "M", "ef_construction", "ef", "fingerprint", "mode"):
        assert getattr(loaded, attr) == getattr(idx, attr), attr
    manifest = json.loads((tmp_path / "idx" / MANIFEST).read_text())
    assert (
        manifest["format"] == "taskspace.Index/1"
        and manifest["tombstones"] == 50
        and manifest["count"] == 550
    )
    # the loaded index keeps working: add (grows), remove, compact, save again over the old save
    loaded.add(-x[:50], ids[:50])
    loaded.remove(ids[50:60])
    assert loaded.compact() == 60
    loaded.save(tmp_path / "idx")
    again = ts.Index.load(tmp_path / "idx")
    assert snapshot(again, q) == snapshot(loaded, q)
    files = sorted(p.name for p in (tmp_path / "idx").iterdir())
    assert len(files) == 3 and MANIFEST in files  # old data files were deleted


def test_save_load_keeps_embedding_space(tmp_path, embeddings):
    sur, embs, _, foreign = embeddings
    index = ts.Index(dim=64)
    index.add(embs, [1, 2, 3, 4])
    index.save(tmp_path / "e")
    loaded = ts.Index.load(tmp_path / "e")
    assert (loaded.fingerprint, loaded.mode) == (sur.fingerprint, "label")
    with pytest.raises(ts.FingerprintMismatchError):
        loaded.search(foreign)


def test_empty_index_round_trip(tmp_path):
    ts.Index(dim=5).save(tmp_path / "empty")
    loaded = ts.Index.load(tmp_path / "empty")
    assert len(loaded) == 0 and loaded.dim == 5
    loaded.add(np.ones(5), 1)
    assert loaded.search(np.ones(5), k=1).ids.tolist() == [[1]]


def tree(path: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(path.iterdir())}


@pytest.fixture
def saved(tmp_path, idx) -> Path:
    path = tmp_path / "saved"
    idx.save(path)
    return path


def data_file(path: Path, prefix: str) -> Path:
    return next(p for p in path.iterdir() if p.name.startswith(prefix))


@pytest.mark.parametrize("prefix", ["graph-", "vectors-"])
def test_truncated_or_corrupt_data_files_are_detected(saved, prefix):
    f = data_file(saved, prefix)
    raw = f.read_bytes()
    f.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ts.InvalidInputError, match="truncated or corrupt"):
        ts.Index.load(saved)
    flipped = bytearray(raw)
    flipped[len(raw) // 2] ^= 0xFF
    f.write_bytes(bytes(flipped))
    with pytest.raises(ts.InvalidInputError, match="truncated or corrupt"):
        ts.Index.load(saved)
    f.unlink()
    with pytest.raises(ts.InvalidInputError, match="missing"):
        ts.Index.load(saved)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "not valid JSON"),
        ('{"format": "taskspace.Index/1", "dim": 3', "not valid JSON"),
        ('{"format": "faiss"}', "not a taskspace Index"),
        ("[1, 2]", "not a taskspace Index"),
        ('{"format": "taskspace.Index/1"}', "lacks the field"),
    ],
)
def test_foreign_or_truncated_manifest(saved, content, message):
    (saved / MANIFEST).write_text(content)
    with pytest.raises(ts.InvalidInputError, match=message):
        ts.Index.load(saved)


def test_manifest_that_lies_about_the_id_map(saved):
    manifest = json.loads((saved / MANIFEST).read_text())
    manifest["count"] -= 1
    (saved / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ts.InvalidInputError, match="live mask"):
        ts.Index.load(saved)
    manifest["count"] += 2
    (saved / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ts.InvalidInputError, match="invalid item counts"):
        ts.Index.load(saved)
    manifest["count"] -= 1
    manifest["ids_int64_le_base64"] = "not base64!"
    (saved / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ts.InvalidInputError, match="base64"):
        ts.Index.load(saved)


def test_load_refuses_files_and_foreign_directories(tmp_path):
    plain = tmp_path / "index.hnsw"
    plain.write_bytes(b"\x00" * 100)
    with pytest.raises(ts.InvalidInputError, match="not an Index directory"):
        ts.Index.load(plain)
    with pytest.raises(ts.InvalidInputError, match="not an Index directory"):
        ts.Index.load(tmp_path / "missing")
    (tmp_path / "other").mkdir()
    with pytest.raises(ts.InvalidInputError, match=r"holds no index\.json"):
        ts.Index.load(tmp_path / "other")


def test_save_never_overwrites_what_is_not_an_index(tmp_path, idx):
    plain = tmp_path / "file"
    plain.write_text("precious")
    with pytest.raises(ts.InvalidInputError, match="not a directory"):
        idx.save(plain)
    assert plain.read_text() == "precious"
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("precious")
    with pytest.raises(ts.InvalidInputError, match="refusing"):
        idx.save(other)
    assert tree(other) == {"notes.txt": b"precious"}


def test_failed_load_changes_nothing(saved):
    f = data_file(saved, "graph-")
    f.write_bytes(f.read_bytes()[:-10])
    before = tree(saved)
    with pytest.raises(ts.InvalidInputError):
        ts.Index.load(saved)
    assert tree(saved) == before


def test_crash_before_commit_keeps_the_previous_save(saved, idx, data, monkeypatch):
    _, ids, q = data
    before = snapshot(ts.Index.load(saved), q)
    idx.remove(ids[:100])
    real_replace = os.replace

    def crash_on_commit(src, dst):
        if Path(dst).name == MANIFEST:
            raise OSError("simulated crash before the manifest rename")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", crash_on_commit)
    with pytest.raises(OSError, match="simulated crash"):
        idx.save(saved)
    monkeypatch.undo()
    # New data files may be left beside the old ones, but the manifest still names the old ones.
    assert snapshot(ts.Index.load(saved), q) == before
    assert not [p for p in saved.iterdir() if p.name.startswith(".index-")]  # temp files cleaned
    idx.save(saved)  # the next save commits and removes the orphans
    assert len(list(saved.iterdir())) == 3
    assert snapshot(ts.Index.load(saved), q) == snapshot(idx, q)


# -- concurrency ---------------------------------------------------------------------------------------


def test_searches_run_while_another_thread_adds():
    x = clustered(4000, DIM, seed=3)
    q = clustered(16, DIM, seed=4)
    index = ts.Index(dim=DIM, capacity=16, n_threads=1)
    index.add(x[:200], np.arange(200))
    added = [200]  # ids 0..added[0]-1 were added before the last add returned
    errors: list[BaseException] = []
    stop = threading.Event()
    searches = [0]

    def writer() -> None:
        try:
            for start in range(200, 4000, 100):
                index.add(x[start : start + 100], np.arange(start, start + 100))
                added[0] = start + 100
                if start % 1000 == 0:
                    index.remove([start])
        except BaseException as e:
            errors.append(e)
        finally:
            stop.set()

    def reader(seed: int) -> None:
        rng = np.random.default_rng(seed)
        try:
            while not stop.is_set():
                k = int(rng.integers(1, 20))
                exact = bool(rng.integers(0, 4) == 0)
                ef = int(rng.choice([16, 64, 128]))  # readers with other ef values must not overlap
                res = index.search(q, k=k, ef=ef, exact=exact)
                upto = added[0] + 100  # an add may have finished just before this search
                assert res.ids.shape == (len(q), k)
                assert (res.counts == k).all()
                assert ((res.ids >= 0) & (res.ids < upto)).all()
                assert np.all(np.diff(res.distances, axis=1) >= 0)
                assert np.all((res.distances >= 0) & (res.distances <= 2))
                searches[0] += 1
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=reader, args=(s,)) for s in range(4)] + [
        threading.Thread(target=writer)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads)
    assert not errors, errors[0]
    assert searches[0] > 0
    assert len(index) == 4000 - 3
    final = index.search(q, k=10, exact=True)
    live = np.setdiff1d(np.arange(4000), [1000, 2000, 3000])
    assert_matches_oracle(final, x[live], live, q, 10)


def wait_until(predicate, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.005)
    return False


def test_lock_readers_share_writers_exclude_and_ef_keys_do_not_mix():
    keys: list[int] = []
    lock = _SearchWriteLock(keys.append)
    events: list[str] = []

    def run(name: str, acquire, release) -> threading.Thread:
        def body() -> None:
            acquire()
            events.append(name)
            release()

        t = threading.Thread(target=body)
        t.start()
        return t

    lock.acquire_read(64)
    assert keys == [64]
    same = run("same-ef", lambda: lock.acquire_read(64), lambda: lock.release_read(64))
    same.join(timeout=5)
    assert events == ["same-ef"]  # readers that agree on ef share the lock
    untouched = run("no-ef", lambda: lock.acquire_read(None), lambda: lock.release_read(None))
    untouched.join(timeout=5)
    assert events == ["same-ef", "no-ef"]
    other = run("other-ef", lambda: lock.acquire_read(16), lambda: lock.release_read(16))
    writer = run("writer", lock.acquire_write, lock.release_write)
    time.sleep(0.1)
    assert events == ["same-ef", "no-ef"]  # both wait for the first reader
    lock.release_read(64)
    other.join(timeout=5)
    writer.join(timeout=5)
    assert sorted(events[2:]) == ["other-ef", "writer"]
    assert keys == [64, 16]


def test_waiting_writer_blocks_new_readers():
    lock = _SearchWriteLock(lambda key: None)
    lock.acquire_read(1)
    order: list[str] = []
    writer = threading.Thread(
        target=lambda: (lock.acquire_write(), order.append("writer"), lock.release_write())
    )
    writer.start()
    assert wait_until(lambda: lock._writers_waiting == 1)
    reader = threading.Thread(
        target=lambda: (lock.acquire_read(1), order.append("reader"), lock.release_read(1))
    )
    reader.start()
    time.sleep(0.1)
    assert order == []
    lock.release_read(1)
    writer.join(timeout=5)
    reader.join(timeout=5)
    assert order == ["writer", "reader"]


# -- recall --------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_recall_at_10_on_clustered_data():
    """Recall@10 of the default parameters against exact search: 20,000 x 256 here (the benchmark
    measures 100,000 x 256); queries come from the same clusters."""
    n, dim = 20_000, 256
    both = clustered(n + 200, dim, clusters=200, spread=0.5, seed=11)
    x, q = both[:n], both[n:]
    index = ts.Index(dim=dim, capacity=n)
    index.add(x, np.arange(n))
    approx = index.search(q, k=10)
    exact = index.search(q, k=10, exact=True)
    want, _ = oracle(x, np.arange(n), q, 10)
    recall_vs_exact = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(approx.ids, exact.ids, strict=True)])
    recall_vs_numpy = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(approx.ids, want, strict=True)])
    assert recall_vs_exact >= 0.95 and recall_vs_numpy >= 0.95
    exact_vs_numpy = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(exact.ids, want, strict=True)])
    assert exact_vs_numpy >= 0.999  # float32 ties aside, the exact kernel is exact
