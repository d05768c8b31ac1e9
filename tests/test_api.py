"""The public API contract of taskspace: surrogate configuration, encoder, embeddings, similarity,
statistics merging, label-mode invariances, serialisation and degenerate tasks."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import pickle
import re
import warnings

import numpy as np
import pytest
import taskspace as ts
from taskspace import _core
from taskspace.datasets import builtin as datasets

FEATURES = 32
DIM = 256
DATASETS = ("movie_sentiment", "product_sentiment", "news_topic", "question_type")


@pytest.fixture(scope="module")
def sur() -> ts.Surrogate:
    return ts.Surrogate(features=FEATURES, dim=DIM, seed=0)


@pytest.fixture(scope="module")
def movie() -> tuple[list[str], list[str]]:
    return datasets.load("movie_sentiment")


@pytest.fixture(scope="module")
def news() -> tuple[list[str], list[str]]:
    return datasets.load("news_topic")


def unit_norm(v: np.ndarray) -> float:
    return float(np.linalg.norm(np.asarray(v, dtype=np.float64)))


def numpy_cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    na = np.linalg.norm(a, axis=1)
    nb = np.linalg.norm(b, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        s = (a @ b.T) / np.outer(na, nb)
    s[~np.isfinite(s)] = 0.0
    return np.clip(s, -1.0, 1.0)


# --------------------------------------------------------------------------------------------------
# package surface
# --------------------------------------------------------------------------------------------------


def test_public_names_exist():
    for name in ts.__all__:
        assert hasattr(ts, name), name
    assert isinstance(ts.__version__, str) and ts.__version__


def test_exception_hierarchy():
    assert issubclass(ts.TaskspaceError, ValueError)
    for cls in (ts.InvalidInputError, ts.NumericalError, ts.FingerprintMismatchError):
        assert issubclass(cls, ts.TaskspaceError)
        assert issubclass(cls, ValueError)
    assert issubclass(ts.DegenerateTaskWarning, UserWarning)


# --------------------------------------------------------------------------------------------------
# Surrogate configuration
# --------------------------------------------------------------------------------------------------


def test_constructor_is_keyword_only():
    with pytest.raises(TypeError):
        ts.Surrogate(32, 128)  # type: ignore[misc]
    with pytest.raises(TypeError):
        ts.Surrogate(32)  # type: ignore[misc]


def test_defaults():
    s = ts.Surrogate()
    assert (s.features, s.dim, s.seed, s.method, s.hash_bits, s.ridge) == (256, 4096, 0, "operator", 20, 1.0)


def test_properties_reflect_arguments():
    s = ts.Surrogate(features=48, dim=200, seed=7, method="fisher", hash_bits=16, ridge=2)
    assert s.features == 48
    assert s.dim == 200
    assert s.seed == 7
    assert s.method == "fisher"
    assert s.hash_bits == 16
    assert s.ridge == 2.0 and isinstance(s.ridge, float)
    assert s.version == _core.SURROGATE_VERSION
    assert s.config == {
        "version": _core.SURROGATE_VERSION,
        "features": 48,
        "dim": 200,
        "seed": 7,
        "method": "fisher",
        "hash_bits": 16,
        "ridge": 2.0,
    }
    assert "fingerprint" in repr(s) and s.fingerprint in repr(s)


def test_numpy_integer_arguments_are_accepted():
    a = ts.Surrogate(features=np.int64(32), dim=np.int32(128), seed=np.uint64(3))
    b = ts.Surrogate(features=32, dim=128, seed=3)
    assert a.fingerprint == b.fingerprint
    assert type(a.features) is int and type(a.seed) is int


def test_fingerprint_format_and_definition():
    s = ts.Surrogate(features=32, dim=128, seed=5)
    assert re.fullmatch(r"[0-9a-f]{16}", s.fingerprint)
    canonical = json.dumps(s.config, sort_keys=True, separators=(",", ":"))
    assert s.fingerprint == hashlib.sha256(canonical.encode()).hexdigest()[:16]


def test_fingerprint_stable_across_instances():
    kw = dict(features=40, dim=300, seed=11, method="fisher", hash_bits=18, ridge=0.5)
    a, b = ts.Surrogate(**kw), ts.Surrogate(**kw)
    assert a is not b
    assert a.fingerprint == b.fingerprint
    assert a == b and hash(a) == hash(b)
    # an int ridge is the same configuration as the equal float
    assert (
        ts.Surrogate(features=32, dim=128, ridge=1).fingerprint
        == ts.Surrogate(features=32, dim=128, ridge=1.0).fingerprint
    )


BASE = dict(features=32, dim=128, seed=0, method="operator", hash_bits=20, ridge=1.0)


@pytest.mark.parametrize(
    "change",
    [
        {"features": 33},
        {"dim": 129},
        {"seed": 1},
        {"method": "fisher"},
        {"hash_bits": 19},
        {"ridge": 1.5},
    ],
    ids=lambda c: next(iter(c)),
)
def test_fingerprint_differs_when_any_field_differs(change):
    base = ts.Surrogate(**BASE)
    other = ts.Surrogate(**{**BASE, **change})
    assert other.fingerprint != base.fingerprint
    assert other != base


def test_config_round_trip(movie):
    s = ts.Surrogate(features=32, dim=128, seed=9, method="fisher", hash_bits=17, ridge=0.25)
    r = ts.Surrogate.from_config(s.config)
    assert r == s
    assert r.config == s.config
    assert r.fingerprint == s.fingerprint
    # config without the version also works (the docstring: Surrogate(**config) minus version)
    cfg = dict(s.config)
    cfg.pop("version")
    assert ts.Surrogate(**cfg).fingerprint == s.fingerprint
    # and it rebuilds the same embedding space, bit for bit
    texts, labels = movie
    assert np.array_equal(
        r.dataset_embedding(texts, labels).vector, s.dataset_embedding(texts, labels).vector
    )
    # through JSON as well
    assert ts.Surrogate.from_config(json.loads(json.dumps(s.config))) == s


def test_from_config_refuses_other_version():
    cfg = {**ts.Surrogate(features=32, dim=128).config, "version": _core.SURROGATE_VERSION + 1}
    with pytest.raises(ts.InvalidInputError, match="version"):
        ts.Surrogate.from_config(cfg)


def test_pickle_surrogate(movie):
    s = ts.Surrogate(features=32, dim=128, seed=4, method="fisher", hash_bits=18, ridge=0.7)
    r = pickle.loads(pickle.dumps(s))
    assert isinstance(r, ts.Surrogate)
    assert r == s and r.fingerprint == s.fingerprint and r.config == s.config
    texts, labels = movie
    assert np.array_equal(r.encode(texts), s.encode(texts))
    assert np.array_equal(
        r.dataset_embedding(texts, labels).vector, s.dataset_embedding(texts, labels).vector
    )


# --------------------------------------------------------------------------------------------------
# encoder
# --------------------------------------------------------------------------------------------------


def test_encode_shape_dtype_and_unit_rows(sur, news):
    texts, _ = news
    x = sur.encode(texts)
    assert x.shape == (len(texts), FEATURES)
    assert x.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(x.astype(np.float64), axis=1), 1.0, atol=1e-5)
    assert np.array_equal(x, sur.encode(texts))


def test_encode_empty_and_whitespace_strings_give_zero_rows(sur):
    x = sur.encode(["", "a real text", "   \t\n", "x"])
    assert x.shape == (4, FEATURES)
    assert not x[0].any()
    assert not x[2].any()
    assert unit_norm(x[1]) == pytest.approx(1.0, abs=1e-5)
    assert unit_norm(x[3]) == pytest.approx(1.0, abs=1e-5)


def test_encode_depends_on_seed_and_is_case_folded(sur):
    a = sur.encode(["Hello World"])
    b = sur.encode(["hello world"])
    assert np.array_equal(a, b)
    other = ts.Surrogate(features=FEATURES, dim=DIM, seed=1).encode(["hello world"])
    assert not np.array_equal(a, other)


def test_encode_with_text_pairs(sur):
    texts = ["a man plays guitar", "the cat sleeps"]
    single = sur.encode(texts)
    paired = sur.encode(texts, text_pairs=["someone makes music", "a dog barks"])
    assert paired.shape == single.shape
    assert not np.allclose(paired, single)
    np.testing.assert_allclose(np.linalg.norm(paired, axis=1), 1.0, atol=1e-5)
    # order of the pair matters (the second text has its own namespace)
    swapped = sur.encode(["someone makes music"], text_pairs=["a man plays guitar"])
    assert not np.allclose(swapped[0], paired[0])


def test_featurize_csr_shapes():
    s = ts.Surrogate(features=32, dim=128, hash_bits=16)
    texts = ["hello world", "", "a longer sentence, with punctuation!", "x"]
    sp = s.featurize(texts)
    assert isinstance(sp, ts.SparseFeatures)
    assert sp.n_features == 2**16
    assert sp.indptr.shape == (len(texts) + 1,)
    assert sp.indptr[0] == 0
    assert np.all(np.diff(sp.indptr.astype(np.int64)) >= 0)
    assert sp.indptr[-1] == len(sp.indices) == len(sp.values)
    assert sp.indptr[2] == sp.indptr[1]  # the empty text has no features
    assert np.issubdtype(sp.indices.dtype, np.integer)
    assert sp.values.dtype == np.float32
    assert sp.indices.max() < 2**16
    for i in (0, 2, 3):
        lo, hi = int(sp.indptr[i]), int(sp.indptr[i + 1])
        assert hi > lo
        assert np.all(np.diff(sp.indices[lo:hi].astype(np.int64)) > 0)
        assert unit_norm(sp.values[lo:hi]) == pytest.approx(1.0, abs=1e-5)
    # n_features follows hash_bits
    assert ts.Surrogate(features=32, dim=128, hash_bits=10).featurize(["x"]).n_features == 1024


def test_featurize_text_pairs_add_features(sur):
    one = sur.featurize(["same words"])
    two = sur.featurize(["same words"], text_pairs=["same words"])
    assert len(two.indices) > len(one.indices)
    assert set(one.indices.tolist()) <= set(two.indices.tolist())


# --------------------------------------------------------------------------------------------------
# embeddings
# --------------------------------------------------------------------------------------------------


def _check_embedding(e: ts.TaskEmbedding, *, kind, mode, method, name, n, dim, fingerprint):
    assert isinstance(e, ts.TaskEmbedding)
    assert e.kind == kind
    assert e.mode == mode
    assert e.method == method
    assert e.name == name
    assert e.n == n
    assert e.fingerprint == fingerprint
    assert e.space == (fingerprint, mode)
    assert e.dim == dim
    assert e.vector.dtype == np.float32
    assert e.vector.shape == (dim,)
    assert np.all(np.isfinite(e.vector))
    assert unit_norm(e.vector) == pytest.approx(1.0, abs=1e-5)
    assert not e.degenerate
    assert not e.vector.flags.writeable
    with pytest.raises(ValueError):
        e.vector[0] = 1.0


@pytest.mark.parametrize("method", ["operator", "fisher"])
@pytest.mark.parametrize("mode", ["label", "text"])
def test_dataset_embedding_contract(method, mode, movie):
    s = ts.Surrogate(features=32, dim=200, method=method)
    texts, labels = movie
    e = s.dataset_embedding(texts, labels, mode=mode, name="movies", meta={"source": "builtin", "k": [1, 2]})
    _check_embedding(
        e,
        kind="dataset",
        mode=mode,
        method=method,
        name="movies",
        n=len(texts),
        dim=200,
        fingerprint=s.fingerprint,
    )
    assert e.meta == {"source": "builtin", "k": [1, 2]}


@pytest.mark.parametrize("method", ["operator", "fisher"])
def test_model_embedding_contract(method, news):
    s = ts.Surrogate(features=32, dim=128, method=method)
    texts, labels = news
    names = sorted(set(labels))
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(len(names)), size=len(texts))
    m = s.model_embedding(texts, probs, name="clf")
    _check_embedding(
        m,
        kind="model",
        mode="label",
        method=method,
        name="clf",
        n=len(texts),
        dim=128,
        fingerprint=s.fingerprint,
    )
    mt = s.model_embedding(texts, [f"the answer is {x}" for x in labels], mode="text", name="llm")
    _check_embedding(
        mt,
        kind="model",
        mode="text",
        method=method,
        name="llm",
        n=len(texts),
        dim=128,
        fingerprint=s.fingerprint,
    )


def test_default_name_and_meta(sur, movie):
    e = sur.dataset_embedding(*movie)
    assert e.name == "" and e.meta == {} and e.kind == "dataset"


def test_embedding_is_frozen(sur, movie):
    e = sur.dataset_embedding(*movie)
    with pytest.raises(dataclasses.FrozenInstanceError):
        e.name = "other"  # type: ignore[misc]


def test_dataset_and_model_embedding_of_same_pairs_coincide(sur, news):
    texts, labels = news
    d = sur.dataset_embedding(texts, labels, name="d")
    m = sur.model_embedding(texts, labels, name="m")
    assert np.array_equal(d.vector, m.vector)
    assert d.similarity(m) == pytest.approx(1.0, abs=1e-6)
    assert d != m  # kind and name differ


def test_different_tasks_give_different_embeddings(sur):
    embs = [sur.dataset_embedding(*datasets.load(n), name=n) for n in DATASETS]
    s = ts.similarity(embs)
    off = s[~np.eye(len(embs), dtype=bool)]
    assert np.all(off < 0.99)


def test_embed_of_stats_equals_dataset_embedding(sur, movie):
    texts, labels = movie
    st = sur.stats(texts, labels)
    assert isinstance(st, ts.TaskStats)
    assert st.n == len(texts)
    assert st.labels == ("negative", "positive")
    assert st.features == FEATURES and st.n_outputs == 2
    e = sur.embed(st, name="x", kind="model")
    assert e.kind == "model" and e.name == "x"
    assert np.array_equal(e.vector, sur.dataset_embedding(texts, labels).vector)
    tst = sur.stats(texts, labels, mode="text")
    assert tst.labels is None and tst.n_outputs == FEATURES and tst.mode == "text"


# --------------------------------------------------------------------------------------------------
# serialisation
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def emb(sur, movie) -> ts.TaskEmbedding:
    texts, labels = movie
    return sur.model_embedding(texts, labels, name="röund trip 🙂", meta={"a": 1, "b": [1.5, "x"], "c": None})


def test_to_dict_from_dict_exact(emb):
    d = emb.to_dict()
    assert d["format"] == "taskspace.TaskEmbedding/1"
    assert len(d["vector"]) == emb.dim
    r = ts.TaskEmbedding.from_dict(d)
    assert r == emb
    assert r.vector.tobytes() == emb.vector.tobytes()
    assert (r.name, r.kind, r.mode, r.method, r.n, r.fingerprint, r.meta) == (
        emb.name,
        emb.kind,
        emb.mode,
        emb.method,
        emb.n,
        emb.fingerprint,
        emb.meta,
    )
    # the dict survives JSON exactly
    r2 = ts.TaskEmbedding.from_dict(json.loads(json.dumps(d)))
    assert r2 == emb and r2.vector.tobytes() == emb.vector.tobytes()


def test_equality_notices_every_field(emb):
    base = emb.to_dict()
    for key, value in [("name", "other"), ("kind", "dataset"), ("n", 3), ("fingerprint", "0" * 16)]:
        assert ts.TaskEmbedding.from_dict({**base, key: value}) != emb, key
    v = list(base["vector"])
    v[0] = v[0] + 1e-3
    assert ts.TaskEmbedding.from_dict({**base, "vector": v}) != emb


def test_save_load_round_trip(emb, tmp_path):
    p = tmp_path / "emb.json"
    emb.save(p)
    r = ts.TaskEmbedding.load(p)
    assert r == emb
    assert r.vector.tobytes() == emb.vector.tobytes()
    assert not r.vector.flags.writeable
    # str paths work, overwriting works, and no temporary files are left behind
    emb.save(str(p))
    assert ts.TaskEmbedding.load(str(p)) == emb
    assert sorted(x.name for x in tmp_path.iterdir()) == ["emb.json"]


def test_pickle_embedding(emb):
    r = pickle.loads(pickle.dumps(emb))
    assert r == emb and r.vector.tobytes() == emb.vector.tobytes()


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"{",
        b"not json at all",
        b"[1, 2, 3]",
        b"null",
        b'{"format": "something else"}',
    ],
    ids=["empty", "open-brace", "text", "list", "null", "wrong-format"],
)
def test_load_corrupt_file_raises_invalid_input(tmp_path, content):
    p = tmp_path / "bad.json"
    p.write_bytes(content)
    with pytest.raises(ts.InvalidInputError):
        ts.TaskEmbedding.load(p)


def test_load_truncated_file_raises_invalid_input(emb, tmp_path):
    p = tmp_path / "e.json"
    emb.save(p)
    data = p.read_bytes()
    for cut in (1, len(data) // 3, len(data) // 2, len(data) - 1):
        p.write_bytes(data[:cut])
        with pytest.raises(ts.InvalidInputError):
            ts.TaskEmbedding.load(p)


def test_load_missing_field_or_bad_vector_raises_invalid_input(emb, tmp_path):
    d = emb.to_dict()
    p = tmp_path / "e.json"
    for bad in (
        {k: v for k, v in d.items() if k != "vector"},
        {k: v for k, v in d.items() if k != "fingerprint"},
        {**d, "vector": []},
        {**d, "vector": [float("nan")] * 4},
        {**d, "kind": "bogus"},
        {**d, "mode": "bogus"},
    ):
        p.write_text(json.dumps(bad))
        with pytest.raises(ts.InvalidInputError):
            ts.TaskEmbedding.load(p)


def test_load_non_utf8_file_raises_invalid_input(tmp_path):
    p = tmp_path / "bin.json"
    p.write_bytes(b"\xff\xfe\x00\x81garbage")
    with pytest.raises(ts.InvalidInputError):
        ts.TaskEmbedding.load(p)


@pytest.mark.parametrize(
    "field,value",
    [
        ("vector", "abc"),
        ("vector", {"a": 1}),
        ("vector", [[1.0], [2.0, 3.0]]),
        ("n", "abc"),
        ("n", None),
        ("meta", "x"),
    ],
    ids=["vector-str", "vector-dict", "vector-ragged", "n-str", "n-null", "meta-str"],
)
def test_load_field_of_wrong_type_raises_invalid_input(emb, tmp_path, field, value):
    p = tmp_path / "e.json"
    p.write_text(json.dumps({**emb.to_dict(), field: value}))
    with pytest.raises(ts.InvalidInputError):
        ts.TaskEmbedding.load(p)


# --------------------------------------------------------------------------------------------------
# similarity
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n,m,d", [(1, 1, 3), (5, 7, 16), (33, 2, 64), (17, 40, 5)])
def test_similarity_matches_numpy(n, m, d):
    rng = np.random.default_rng(n * 1000 + m * 10 + d)
    a = rng.normal(size=(n, d)).astype(np.float32)
    b = rng.normal(size=(m, d)).astype(np.float32)
    s = ts.similarity(a, b)
    assert s.dtype == np.float32
    assert s.shape == (n, m)
    np.testing.assert_allclose(s, numpy_cosine(a, b), atol=1e-5)
    assert np.all(s <= 1.0) and np.all(s >= -1.0)


def test_similarity_self_is_symmetric_with_unit_diagonal():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(20, 12))
    s = ts.similarity(a)
    assert s.shape == (20, 20) and s.dtype == np.float32
    np.testing.assert_allclose(s, s.T, atol=1e-6)
    np.testing.assert_allclose(np.diag(s), 1.0, atol=1e-5)
    np.testing.assert_allclose(s, numpy_cosine(a, a), atol=1e-5)


def test_similarity_out_is_filled_and_returned():
    rng = np.random.default_rng(2)
    a = rng.normal(size=(4, 8))
    b = rng.normal(size=(6, 8))
    out = np.full((4, 6), np.nan, dtype=np.float32)
    r = ts.similarity(a, b, out=out)
    assert r is out
    assert np.all(np.isfinite(out))
    np.testing.assert_allclose(out, numpy_cosine(a, b), atol=1e-5)


def test_similarity_zero_vectors_give_zero_not_nan():
    a = np.array([[0.0, 0.0, 0.0], [1.0, 2.0, 3.0]])
    b = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    s = ts.similarity(a, b)
    assert np.all(np.isfinite(s))
    assert s[0, 0] == 0.0 and s[0, 1] == 0.0 and s[1, 1] == 0.0
    assert s[1, 0] == pytest.approx(1 / np.sqrt(14), abs=1e-6)
    self_s = ts.similarity(a)
    assert self_s[0, 0] == 0.0 and self_s[1, 1] == pytest.approx(1.0, abs=1e-6)


def test_similarity_1d_vectors_and_n_threads():
    s = ts.similarity(np.array([1.0, 0.0]), np.array([[1.0, 1.0], [0.0, 1.0], [-1.0, 0.0]]))
    np.testing.assert_allclose(s, [[np.sqrt(0.5), 0.0, -1.0]], atol=1e-6)
    rng = np.random.default_rng(3)
    a = rng.normal(size=(50, 30))
    assert np.array_equal(ts.similarity(a, n_threads=1), ts.similarity(a, n_threads=2))


def test_similarity_of_embeddings(sur):
    embs = [sur.dataset_embedding(*datasets.load(n), name=n) for n in DATASETS]
    s = ts.similarity(embs)
    mat = np.stack([e.vector for e in embs])
    np.testing.assert_allclose(s, numpy_cosine(mat, mat), atol=1e-5)
    np.testing.assert_allclose(np.diag(s), 1.0, atol=1e-5)
    assert ts.similarity(embs[0], embs[1]).shape == (1, 1)
    assert ts.similarity(embs[0], embs[1])[0, 0] == pytest.approx(embs[0].similarity(embs[1]), abs=1e-6)
    assert ts.similarity(embs[:2], embs).shape == (2, 4)
    # embeddings against plain vectors of the same length
    np.testing.assert_allclose(ts.similarity(embs, mat), s, atol=1e-6)


@pytest.mark.parametrize(
    "a,b",
    [
        ([[1e20, 0.0]], [[1e20, 1e20]]),  # true cosine 0.7071, returns 1.0
        ([[1e-25, 0.0]], [[1e-25, 0.0]]),  # true cosine 1.0, returns 0.0
        ([[3e19, 4e19]], [[4e19, 3e19]]),  # true cosine 0.96, returns 1.0
    ],
    ids=["overflow", "underflow", "overflow-both"],
)
def test_similarity_scale_invariant_for_finite_float32(a, b):
    a = np.array(a, dtype=np.float32)
    b = np.array(b, dtype=np.float32)
    np.testing.assert_allclose(ts.similarity(a, b), numpy_cosine(a, b), atol=1e-5)


# --------------------------------------------------------------------------------------------------
# spaces: fingerprints and modes
# --------------------------------------------------------------------------------------------------


def test_different_seeds_do_not_compare(movie):
    texts, labels = movie
    a = ts.Surrogate(features=32, dim=128, seed=0).dataset_embedding(texts, labels, name="a")
    b = ts.Surrogate(features=32, dim=128, seed=1).dataset_embedding(texts, labels, name="b")
    assert a.fingerprint != b.fingerprint
    with pytest.raises(ts.FingerprintMismatchError):
        ts.similarity([a], [b])
    with pytest.raises(ts.FingerprintMismatchError):
        ts.similarity(a, b)
    with pytest.raises(ts.FingerprintMismatchError):
        ts.similarity([a, b])
    with pytest.raises(ts.FingerprintMismatchError):
        a.similarity(b)
    with pytest.raises(ts.FingerprintMismatchError):
        b.similarity(a)
    with pytest.raises(ts.FingerprintMismatchError):
        a.check_comparable(b)


def test_label_and_text_mode_do_not_compare(sur, movie):
    texts, labels = movie
    a = sur.dataset_embedding(texts, labels, mode="label")
    b = sur.dataset_embedding(texts, labels, mode="text")
    assert a.fingerprint == b.fingerprint and a.space != b.space
    with pytest.raises(ts.FingerprintMismatchError):
        ts.similarity([a], [b])
    with pytest.raises(ts.FingerprintMismatchError):
        ts.similarity([a, b])
    with pytest.raises(ts.FingerprintMismatchError):
        a.similarity(b)


def test_embed_refuses_stats_of_other_surrogate(movie):
    texts, labels = movie
    s0 = ts.Surrogate(features=32, dim=128, seed=0)
    s1 = ts.Surrogate(features=32, dim=128, seed=1)
    with pytest.raises(ts.FingerprintMismatchError):
        s0.embed(s1.stats(texts, labels))


# --------------------------------------------------------------------------------------------------
# statistics merging
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["operator", "fisher"])
@pytest.mark.parametrize("mode", ["label", "text"])
@pytest.mark.parametrize("k", [2, 30, 61])
def test_stats_merge_equals_all_pairs(method, mode, k, news):
    s = ts.Surrogate(features=32, dim=256, method=method)
    texts, labels = news
    whole = s.dataset_embedding(texts, labels, mode=mode)
    merged_stats = s.stats(texts[:k], labels[:k], mode=mode) + s.stats(texts[k:], labels[k:], mode=mode)
    assert merged_stats.n == len(texts)
    merged = s.embed(merged_stats)
    np.testing.assert_allclose(merged.vector, whole.vector, atol=1e-5)
    # merge() is the same as +, and the order of shards does not matter
    other = s.stats(texts[k:], labels[k:], mode=mode).merge(s.stats(texts[:k], labels[:k], mode=mode))
    np.testing.assert_allclose(s.embed(other).vector, whole.vector, atol=1e-5)


@pytest.mark.parametrize("method", ["operator", "fisher"])
def test_stats_merge_with_different_label_sets(method):
    s = ts.Surrogate(features=32, dim=256, method=method)
    texts, labels = datasets.load("question_type")
    # shard A: person + half the places; shard B: the other places + number
    places = [i for i, x in enumerate(labels) if x == "place"]
    a_idx = [i for i, x in enumerate(labels) if x == "person"] + places[: len(places) // 2]
    b_idx = places[len(places) // 2 :] + [i for i, x in enumerate(labels) if x == "number"]
    sa = s.stats([texts[i] for i in a_idx], [labels[i] for i in a_idx])
    sb = s.stats([texts[i] for i in b_idx], [labels[i] for i in b_idx])
    assert sa.labels == ("person", "place") and sb.labels == ("number", "place")
    merged = sa + sb
    assert merged.labels == ("number", "person", "place")
    assert merged.n == len(texts)
    whole = s.dataset_embedding(texts, labels)
    np.testing.assert_allclose(s.embed(merged).vector, whole.vector, atol=1e-5)
    np.testing.assert_allclose(s.embed(sb + sa).vector, whole.vector, atol=1e-5)


def test_stats_merge_with_disjoint_label_sets():
    s = ts.Surrogate(features=32, dim=256)
    texts, labels = datasets.load("news_topic")
    order = sorted(range(len(texts)), key=lambda i: labels[i])
    t = [texts[i] for i in order]
    y = [labels[i] for i in order]
    half = len(t) // 2
    a, b = s.stats(t[:half], y[:half]), s.stats(t[half:], y[half:])
    assert set(a.labels).isdisjoint(b.labels)
    np.testing.assert_allclose(s.embed(a + b).vector, s.dataset_embedding(texts, labels).vector, atol=1e-5)


def test_stats_merge_of_many_shards(sur, news):
    texts, labels = news
    shards = [sur.stats(texts[i : i + 13], labels[i : i + 13]) for i in range(0, len(texts), 13)]
    total = shards[0]
    for sh in shards[1:]:
        total = total + sh
    np.testing.assert_allclose(
        sur.embed(total).vector, sur.dataset_embedding(texts, labels).vector, atol=1e-5
    )


def test_stats_merge_of_different_surrogates_raises(news):
    texts, labels = news
    a = ts.Surrogate(features=32, dim=128, seed=0).stats(texts[:40], labels[:40])
    b = ts.Surrogate(features=32, dim=128, seed=1).stats(texts[40:], labels[40:])
    with pytest.raises(ts.FingerprintMismatchError):
        a + b
    with pytest.raises(ts.FingerprintMismatchError):
        b.merge(a)
    c = ts.Surrogate(features=32, dim=128, method="fisher").stats(texts[40:], labels[40:])
    with pytest.raises(ts.FingerprintMismatchError):
        a + c


def test_stats_merge_of_different_modes_raises(sur, news):
    texts, labels = news
    with pytest.raises(ts.FingerprintMismatchError):
        sur.stats(texts[:40], labels[:40]) + sur.stats(texts[40:], labels[40:], mode="text")


def test_stats_merge_of_named_and_soft_labels_raises(sur, news):
    texts, labels = news
    names = sorted(set(labels))
    soft = np.eye(len(names))[[names.index(x) for x in labels[40:]]]
    with pytest.raises(ts.InvalidInputError):
        sur.stats(texts[:40], labels[:40]) + sur.stats(texts[40:], soft)
    with pytest.raises(TypeError):
        sur.stats(texts[:40], labels[:40]) + 1  # type: ignore[operator]


# --------------------------------------------------------------------------------------------------
# label-mode invariances, text-mode sensitivity
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["operator", "fisher"])
@pytest.mark.parametrize("name", DATASETS)
def test_label_mode_invariant_to_relabeling(method, name):
    s = ts.Surrogate(features=48, dim=256, method=method)
    texts, labels = datasets.load(name)
    base = s.dataset_embedding(texts, labels)
    names = sorted(set(labels))
    # rename to unrelated names (which also sort in a different order)
    renamed = {x: f"zz-{len(names) - i}-{x[::-1].upper()}" for i, x in enumerate(names)}
    e1 = s.dataset_embedding(texts, [renamed[x] for x in labels])
    np.testing.assert_allclose(e1.vector, base.vector, atol=1e-5)
    # permute the names among themselves: same partition, every label's name changes
    perm = {x: names[(i + 1) % len(names)] for i, x in enumerate(names)}
    e2 = s.dataset_embedding(texts, [perm[x] for x in labels])
    np.testing.assert_allclose(e2.vector, base.vector, atol=1e-5)
    # integer labels are just another naming
    e3 = s.dataset_embedding(texts, [7 * names.index(x) + 3 for x in labels])
    np.testing.assert_allclose(e3.vector, base.vector, atol=1e-5)


@pytest.mark.parametrize("method", ["operator", "fisher"])
@pytest.mark.parametrize("name", DATASETS)
def test_soft_one_hot_equals_hard_labels(method, name):
    s = ts.Surrogate(features=48, dim=256, method=method)
    texts, labels = datasets.load(name)
    names = sorted(set(labels))
    onehot = np.eye(len(names))[[names.index(x) for x in labels]]
    hard = s.dataset_embedding(texts, labels)
    np.testing.assert_allclose(s.dataset_embedding(texts, onehot).vector, hard.vector, atol=1e-6)
    np.testing.assert_allclose(
        s.dataset_embedding(texts, onehot.astype(np.float32)).vector, hard.vector, atol=1e-6
    )
    np.testing.assert_allclose(s.dataset_embedding(texts, onehot.tolist()).vector, hard.vector, atol=1e-6)
    # permuting the soft label columns is a relabeling too
    perm = np.roll(np.arange(len(names)), 1)
    np.testing.assert_allclose(s.dataset_embedding(texts, onehot[:, perm]).vector, hard.vector, atol=1e-5)


def test_soft_labels_differ_from_hard_labels_when_not_one_hot(sur, movie):
    texts, labels = movie
    p = np.array([[0.9, 0.1] if x == "negative" else [0.1, 0.9] for x in labels])
    rng = np.random.default_rng(0)
    noisy = rng.dirichlet([1.0, 1.0], size=len(texts))
    hard = sur.dataset_embedding(texts, labels)
    # an affine mix of one-hot rows is a recoding (same embedding); random soft labels are not
    np.testing.assert_allclose(sur.dataset_embedding(texts, p).vector, hard.vector, atol=1e-5)
    assert hard.similarity(sur.dataset_embedding(texts, noisy)) < 0.99


@pytest.mark.parametrize(
    "method,name",
    [
        ("operator", "movie_sentiment"),
        ("operator", "news_topic"),
        ("operator", "question_type"),
        ("fisher", "news_topic"),
    ],
)
def test_text_mode_depends_on_output_wording(method, name):
    s = ts.Surrogate(features=48, dim=256, method=method)
    texts, labels = datasets.load(name)
    names = sorted(set(labels))
    renamed = {x: f"other wording number {i}: {x[::-1]}" for i, x in enumerate(reversed(names))}
    a = s.dataset_embedding(texts, labels, mode="text")
    b = s.dataset_embedding(texts, [renamed[x] for x in labels], mode="text")
    assert not np.allclose(a.vector, b.vector, atol=1e-3)
    assert a.similarity(b) < 0.99


def test_text_pairs_change_the_embedding(sur, news):
    texts, labels = news
    plain = sur.dataset_embedding(texts, labels)
    pairs = ts.pair_probe(texts)
    paired = sur.dataset_embedding(texts, labels, pairs)
    paired_kw = sur.dataset_embedding(texts, labels, text_pairs=pairs)
    assert np.array_equal(paired.vector, paired_kw.vector)
    assert not np.allclose(plain.vector, paired.vector, atol=1e-3)
    assert unit_norm(paired.vector) == pytest.approx(1.0, abs=1e-5)
    m = sur.model_embedding(texts, labels, text_pairs=pairs)
    assert np.array_equal(m.vector, paired.vector)


# --------------------------------------------------------------------------------------------------
# threads
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def big_corpus() -> tuple[list[str], list[str]]:
    # > 512 rows (several statistics pieces) and > 64 texts (several encoding pieces)
    texts: list[str] = []
    labels: list[str] = []
    for k in range(3):
        for name in DATASETS:
            t, y = datasets.load(name)
            texts += [f"{x} (variant {k})" for x in t]
            labels += y
    return texts, labels


@pytest.mark.parametrize("method", ["operator", "fisher"])
@pytest.mark.parametrize("mode", ["label", "text"])
def test_thread_count_does_not_change_results(method, mode, big_corpus):
    s = ts.Surrogate(features=32, dim=256, method=method)
    texts, labels = big_corpus
    assert len(texts) > 512
    e1 = s.dataset_embedding(texts, labels, mode=mode, n_threads=1)
    e2 = s.dataset_embedding(texts, labels, mode=mode, n_threads=2)
    e3 = s.dataset_embedding(texts, labels, mode=mode, n_threads=3)
    assert e1.vector.tobytes() == e2.vector.tobytes() == e3.vector.tobytes()
    e0 = s.dataset_embedding(texts, labels, mode=mode)  # all cores
    assert e0.vector.tobytes() == e1.vector.tobytes()


def test_thread_count_does_not_change_encode_or_featurize(sur, big_corpus):
    texts, _ = big_corpus
    assert sur.encode(texts, n_threads=1).tobytes() == sur.encode(texts, n_threads=2).tobytes()
    a, b = sur.featurize(texts, n_threads=1), sur.featurize(texts, n_threads=2)
    for x, y in zip(a[:3], b[:3], strict=True):
        assert np.array_equal(x, y)


# --------------------------------------------------------------------------------------------------
# degenerate tasks
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["operator", "fisher"])
def test_single_label_is_degenerate(method, news):
    s = ts.Surrogate(features=32, dim=128, method=method)
    texts, labels = news
    with pytest.warns(ts.DegenerateTaskWarning):
        d = s.dataset_embedding(texts, ["only"] * len(texts), name="flat")
    assert d.degenerate
    assert d.vector.shape == (128,) and d.vector.dtype == np.float32
    assert not d.vector.any()
    real = s.dataset_embedding(texts, labels)
    assert d.similarity(real) == 0.0
    assert real.similarity(d) == 0.0
    sims = ts.similarity([real, d])
    assert np.all(np.isfinite(sims))
    assert sims[0, 1] == 0.0 and sims[1, 0] == 0.0 and sims[1, 1] == 0.0
    assert sims[0, 0] == pytest.approx(1.0, abs=1e-6)
    # a degenerate embedding still serialises
    assert ts.TaskEmbedding.from_dict(d.to_dict()) == d


def test_single_column_soft_labels_are_degenerate(sur, movie):
    texts, _ = movie
    with pytest.warns(ts.DegenerateTaskWarning):
        d = sur.model_embedding(texts, np.ones((len(texts), 1)))
    assert d.degenerate


def test_inputs_without_features_are_degenerate(sur):
    with pytest.warns(ts.DegenerateTaskWarning):
        d = sur.dataset_embedding(["", "   ", "\t", ""], ["a", "b", "a", "b"])
    assert d.degenerate


def test_single_pair_is_degenerate(sur):
    with pytest.warns(ts.DegenerateTaskWarning):
        d = sur.dataset_embedding(["just one example"], ["a"])
    assert d.degenerate and d.n == 1


def _not_degenerate(cases: dict) -> dict:
    """Runs each call; returns {case: what went wrong} for those that are not a clean degenerate task
    (zero vector and a DegenerateTaskWarning). Whether a single case trips over the float rounding
    depends on the build, so each test below checks many cases at once."""
    failures = {}
    for label, call in cases.items():
        with warnings.catch_warnings(record=True) as rec:
            warnings.simplefilter("always")
            try:
                e = call()
            except ts.TaskspaceError as exc:
                failures[label] = f"{type(exc).__name__}: {exc}"
                continue
        warned = any(issubclass(w.category, ts.DegenerateTaskWarning) for w in rec)
        if not (e.degenerate and warned):
            failures[label] = f"is_degenerate={e.degenerate}, warned={warned}"
    return failures


def test_identical_output_texts_are_degenerate(sur):
    cases = {}
    for name in ("news_topic", "movie_sentiment"):
        texts, _ = datasets.load(name)
        for output in ("same output", "yes", "no", "x", "positive", "the answer is yes"):
            cases[(name, output)] = lambda t=texts, o=output: sur.model_embedding(
                t, [o] * len(t), mode="text"
            )
    assert not _not_degenerate(cases)


def test_constant_soft_labels_are_degenerate(sur):
    cases = {}
    for name in ("news_topic", "movie_sentiment"):
        texts, _ = datasets.load(name)
        for row in ([0.3, 0.7], [0.5, 0.5], [0.9, 0.1], [0.1, 0.2, 0.7], [0.25] * 4):
            cases[(name, str(row))] = lambda t=texts, r=row: sur.model_embedding(t, np.tile(r, (len(t), 1)))
    assert not _not_degenerate(cases)


def test_identical_inputs_are_degenerate(sur):
    cases = {}
    for text in ("x y", "a", "the same sentence", "hello world again and again"):
        for n in (2, 10, 80):
            for mode in ("label", "text"):
                cases[(text, n, mode)] = lambda t=text, k=n, m=mode: sur.dataset_embedding(
                    [t] * k, ["a", "b"] * (k // 2), mode=m
                )
    assert not _not_degenerate(cases)


def test_no_warning_for_informative_tasks(sur, movie):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        e = sur.dataset_embedding(*movie)
    assert not e.degenerate


# --------------------------------------------------------------------------------------------------
# pair_probe
# --------------------------------------------------------------------------------------------------


def test_pair_probe_docstring_example():
    assert ts.pair_probe(["one two three four", "five six seven", "eight nine"], offset=1) == [
        "one two",
        "eight",
        "eight",
    ]


def test_pair_probe_structure(news):
    texts, _ = news
    pairs = ts.pair_probe(texts)
    assert isinstance(pairs, list) and len(pairs) == len(texts)
    assert all(isinstance(p, str) and p for p in pairs)
    assert pairs == ts.pair_probe(texts)  # deterministic
    assert pairs == ts.pair_probe(texts, offset=7)  # documented default
    n = len(texts)
    for i, p in enumerate(pairs):
        source = texts[i] if i % 2 == 0 else texts[(i + 7) % n]
        words = source.split()
        assert words[: len(p.split())] == p.split(), i  # a prefix (in words) of the right text
        assert len(p.split()) < len(words)
    assert ts.pair_probe(texts, offset=3) != pairs


def test_pair_probe_single_word_texts():
    assert ts.pair_probe(["a", "b", "c"], offset=1) == ["a", "c", "c"]
    assert ts.pair_probe(["solo"]) == ["solo"]


def test_pair_probe_rejects_bad_input():
    with pytest.raises(TypeError):
        ts.pair_probe("a single string")
    with pytest.raises(ts.InvalidInputError):
        ts.pair_probe([])
    with pytest.raises(TypeError):
        ts.pair_probe(["ok", None])  # type: ignore[list-item]
