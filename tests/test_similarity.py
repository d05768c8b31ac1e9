"""ts.similarity (full, symmetric, fused top-k) and ts.pairs_above against numpy oracles."""

from __future__ import annotations

import numpy as np
import pytest
import taskspace as ts


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    na = np.linalg.norm(a, axis=1, keepdims=True)
    nb = np.linalg.norm(b, axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        s = (a / na) @ (b / nb).T
    return np.nan_to_num(s, nan=0.0)


def _topk_oracle(s: np.ndarray, k: int, skip_self: bool = False) -> tuple[np.ndarray, np.ndarray]:
    n, m = s.shape
    ids = np.full((n, k), -1, dtype=np.int64)
    sc = np.full((n, k), -np.inf, dtype=np.float32)
    for i in range(n):
        cols = [j for j in range(m) if not (skip_self and j == i)]
        # best first, ties to the smaller id (stable sort on -score)
        order = sorted(cols, key=lambda j: (-s[i, j], j))[:k]
        ids[i, : len(order)] = order
        sc[i, : len(order)] = s[i, order]
    return ids, sc


@pytest.mark.parametrize(
    ("n", "m", "d"), [(1, 1, 1), (7, 5, 3), (49, 17, 16), (13, 100, 15), (3, 2, 1023), (60, 60, 300)]
)
def test_full_matrix_matches_numpy(n, m, d):
    rng = np.random.default_rng(n * 1000 + m + d)
    a = rng.standard_normal((n, d)).astype(np.float32)
    b = rng.standard_normal((m, d)).astype(np.float32)
    np.testing.assert_allclose(ts.similarity(a, b), _cos(a, b), atol=2e-5)
    s = ts.similarity(a)
    np.testing.assert_allclose(s, _cos(a, a), atol=2e-5)
    np.testing.assert_array_equal(s, s.T)


def test_thread_counts_and_out():
    rng = np.random.default_rng(1)
    a = rng.standard_normal((200, 64)).astype(np.float32)
    b = rng.standard_normal((90, 64))  # float64: coerced
    one = ts.similarity(a, b, n_threads=1)
    out = np.empty((200, 90), dtype=np.float32)
    got = ts.similarity(a, b, n_threads=2, out=out)
    assert got is out
    np.testing.assert_allclose(one, out, atol=1e-6)
    np.testing.assert_allclose(ts.similarity(a[:, ::2], b[:, ::2]), _cos(a[:, ::2], b[:, ::2]), atol=2e-5)


def test_zero_rows_give_zero_not_nan():
    a = np.array([[0.0, 0.0], [1.0, 0.0]], dtype=np.float32)
    s = ts.similarity(a)
    assert np.isfinite(s).all()
    assert s[0].tolist() == [0.0, 0.0]
    top = ts.similarity(a, top_k=2)
    assert np.isfinite(top.scores).all()


@pytest.mark.parametrize(
    ("n", "m", "d", "k"), [(1, 1, 3, 1), (10, 7, 5, 3), (51, 1100, 8, 10), (30, 30, 4, 40)]
)
def test_top_k_equals_full_sort(n, m, d, k):
    rng = np.random.default_rng(7 + n + k)
    a = rng.standard_normal((n, d)).astype(np.float32)
    b = rng.standard_normal((m, d)).astype(np.float32)
    res = ts.similarity(a, b, top_k=k)
    kk = min(k, m)  # k is clamped to the number of candidate rows
    assert res.ids.shape == (n, kk) and res.ids.dtype == np.int64 and res.scores.dtype == np.float32
    full = ts.similarity(a, b)
    ids, sc = _topk_oracle(full, kk)
    np.testing.assert_array_equal(res.ids, ids)
    np.testing.assert_array_equal(res.scores, sc)


@pytest.mark.parametrize("k", [4, 5, 10**10, 2**62, 2**200])
def test_huge_top_k_is_clamped_to_the_candidates(k):
    # Used to abort the interpreter (10**10: a 240 GB allocation) or raise PanicException (2**62).
    a = np.random.default_rng(1).standard_normal((100, 4))
    res = ts.similarity(a, top_k=k)
    np.testing.assert_array_equal(res.ids, _topk_oracle(ts.similarity(a), min(k, 100))[0])
    res = ts.similarity(a[:3], a, top_k=k)
    assert res.ids.shape == (3, min(k, 100)) and (res.ids >= 0).all()
    own = ts.similarity(a[:5], top_k=k, exclude_self=True)  # 4 candidates each
    assert own.ids.shape == (5, min(k, 5)) and (own.ids[:, :4] >= 0).all()
    if k >= 5:  # the column beyond the candidates is padding
        assert (own.ids[:, 4] == -1).all() and (own.scores[:, 4] == -np.inf).all()


def test_top_k_self_excludes_self_and_orders_ties_by_id():
    rng = np.random.default_rng(3)
    a = rng.standard_normal((80, 6)).astype(np.float32)
    a[10] = a[0]
    a[40] = a[0]
    res = ts.similarity(a, top_k=5, exclude_self=True)
    assert not (res.ids == np.arange(80)[:, None]).any()
    ids, _ = _topk_oracle(ts.similarity(a), 5, skip_self=True)
    np.testing.assert_array_equal(res.ids, ids)
    assert res.ids[0, :2].tolist() == [10, 40]


def test_top_k_with_task_embeddings_checks_fingerprints():
    sur = ts.Surrogate(features=32, dim=64)
    other = ts.Surrogate(features=32, dim=64, seed=1)
    from taskspace.datasets import builtin as datasets

    x, y = datasets.load("movie_sentiment")
    e1 = sur.dataset_embedding(x, y, name="a")
    e2 = sur.dataset_embedding(x[:40], y[:40], name="b")
    res = ts.similarity([e1], [e1, e2], top_k=1)
    assert res.ids.tolist() == [[0]]
    with pytest.raises(ts.FingerprintMismatchError):
        ts.similarity([e1], [other.dataset_embedding(x, y)], top_k=1)


def test_pairs_above_matches_scan_and_streams():
    rng = np.random.default_rng(5)
    base = rng.standard_normal((30, 16)).astype(np.float32)
    a = np.concatenate([base, base + 0.01 * rng.standard_normal((30, 16)).astype(np.float32)])
    s = _cos(a, a)
    want = {(i, j) for i in range(60) for j in range(i + 1, 60) if s[i, j] >= 0.95}
    for block in (7, 1000):
        got = set()
        for p in ts.pairs_above(a, threshold=0.95, block_rows=block):
            assert (p.i < p.j).all() and (p.scores >= 0.95).all()
            got |= set(zip(p.i.tolist(), p.j.tolist(), strict=True))
        assert got == want
    b = a[:5]
    cross = {
        (int(i), int(j)) for p in ts.pairs_above(a, b, threshold=0.5) for i, j in zip(p.i, p.j, strict=True)
    }
    assert cross == {(i, j) for i in range(60) for j in range(5) if s[i, j] >= 0.5}


@pytest.mark.parametrize(
    ("kwargs", "exc"),
    [
        ({"top_k": 0}, ts.InvalidInputError),
        ({"top_k": -3}, ts.InvalidInputError),
        ({"top_k": 2.5}, TypeError),
        ({"top_k": True}, TypeError),
        ({"exclude_self": True}, ts.InvalidInputError),
        ({"top_k": 2, "out": np.empty((3, 3), np.float32)}, ts.InvalidInputError),
        ({"exclude_self": "yes", "top_k": 1}, TypeError),
    ],
)
def test_bad_similarity_arguments(kwargs, exc):
    a = np.eye(3, dtype=np.float32)
    with pytest.raises(exc):
        ts.similarity(a, **kwargs)


def test_bad_inputs_for_top_k_and_pairs():
    a = np.eye(3, dtype=np.float32)
    with pytest.raises(ts.InvalidInputError):
        ts.similarity(a, a, top_k=1, exclude_self=True)
    with pytest.raises(ts.InvalidInputError):
        ts.similarity(a, np.eye(4, dtype=np.float32), top_k=1)
    with pytest.raises(ts.InvalidInputError):
        ts.similarity(np.array([[np.nan, 1.0]]), top_k=1)
    with pytest.raises(ts.InvalidInputError):
        list(ts.pairs_above(a, threshold=float("nan")))
    with pytest.raises(TypeError):
        list(ts.pairs_above(a, threshold="high"))
    with pytest.raises(ts.InvalidInputError):
        list(ts.pairs_above(a, threshold=0.5, block_rows=0))
    with pytest.raises(ts.InvalidInputError):
        ts.similarity(np.zeros((0, 3), np.float32), top_k=1)
