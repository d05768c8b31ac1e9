"""Every bad input gets a clear exception (TypeError, or a TaskspaceError which is a ValueError), never
a crash; and the unusual-but-valid inputs work."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import taskspace as ts
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from taskspace import _core
from taskspace.datasets import builtin as datasets

TEXTS = ["a good film", "a bad film", "truly great", "awful stuff", "fine work", "poor show"]
LABELS = ["pos", "neg", "pos", "neg", "pos", "neg"]
N = len(TEXTS)
CLEAN_ERRORS = (TypeError, ts.TaskspaceError)


@pytest.fixture(scope="module")
def sur() -> ts.Surrogate:
    return ts.Surrogate(features=32, dim=128)


def assert_unit(v: np.ndarray) -> None:
    v = np.asarray(v, dtype=np.float64)
    assert np.all(np.isfinite(v))
    assert np.linalg.norm(v) == pytest.approx(1.0, abs=1e-5)


# --------------------------------------------------------------------------------------------------
# surrogate configuration
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"features": 0},
        {"features": -1},
        {"features": _core.MAX_FEATURES + 1},
        {"features": 10**9},
        {"dim": 0},
        {"dim": -5},
        {"dim": _core.MAX_DIM + 1},
        {"dim": 10**9},
        {"hash_bits": 0},
        {"hash_bits": 31},
        {"ridge": 0},
        {"ridge": 0.0},
        {"ridge": -1.0},
        {"ridge": float("nan")},
        {"ridge": float("inf")},
        {"method": "bogus"},
        {"method": "Operator"},
        {"method": None},
        {"seed": -1},
        {"seed": 2**64},
    ],
    ids=repr,
)
def test_invalid_config_values(kwargs):
    with pytest.raises(ts.InvalidInputError):
        ts.Surrogate(**{"features": 32, "dim": 128, **kwargs})


@pytest.mark.parametrize(
    "kwargs",
    [
        {"features": 32.0},
        {"features": "32"},
        {"features": None},
        {"features": True},
        {"dim": 128.0},
        {"dim": False},
        {"seed": 1.0},
        {"seed": "0"},
        {"hash_bits": 18.0},
        {"ridge": "1"},
        {"ridge": None},
        {"ridge": True},
        {"unknown_option": 1},
    ],
    ids=repr,
)
def test_config_values_of_wrong_type(kwargs):
    with pytest.raises(TypeError):
        ts.Surrogate(**{"features": 32, "dim": 128, **kwargs})


@pytest.mark.parametrize("hash_bits", [-1, 2**32, 2**70])
def test_hash_bits_out_of_u32_range(hash_bits):
    with pytest.raises(ts.InvalidInputError):
        ts.Surrogate(features=32, dim=128, hash_bits=hash_bits)


def test_config_boundaries_work():
    for kw in (
        {"features": 1},
        {"features": _core.MAX_FEATURES},
        {"dim": 1},
        {"dim": _core.MAX_DIM},
        {"hash_bits": 1},
        {"hash_bits": 30},
        {"seed": 0},
        {"seed": 2**64 - 1},
        {"ridge": 1e-12},
        {"ridge": 1e6},
    ):
        s = ts.Surrogate(**{"features": 32, "dim": 128, **kw})
        for key, value in kw.items():
            assert getattr(s, key) == value


def test_tiny_configs_embed():
    s = ts.Surrogate(features=32, dim=1)
    e = s.dataset_embedding(TEXTS, LABELS)
    assert e.vector.shape == (1,) and abs(float(e.vector[0])) == pytest.approx(1.0)
    s = ts.Surrogate(features=8, dim=64, hash_bits=1, seed=2**64 - 1)
    x = s.encode(TEXTS)
    assert np.all(np.isfinite(x))
    sp = s.featurize(TEXTS)
    assert sp.indices.max() < 2


# --------------------------------------------------------------------------------------------------
# empty inputs and length mismatches
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.encode([]),
        lambda s: s.encode(()),
        lambda s: s.encode(np.array([], dtype=str)),
        lambda s: s.featurize([]),
        lambda s: s.stats([], []),
        lambda s: s.dataset_embedding([], []),
        lambda s: s.model_embedding([], []),
        lambda s: s.model_embedding([], [], mode="text"),
        lambda s: s.dataset_embedding(TEXTS, []),
        lambda s: s.dataset_embedding(TEXTS, [], mode="text"),
        lambda s: s.dataset_embedding(TEXTS, np.zeros((0, 2))),
        lambda s: s.encode(TEXTS, text_pairs=[]),
        lambda s: ts.similarity([]),
        lambda s: ts.similarity(np.empty((0, 4))),
        lambda s: ts.similarity(np.empty(0)),
        lambda s: ts.similarity(np.ones((2, 4)), np.empty((0, 4))),
        lambda s: ts.similarity(np.ones((2, 4)), []),
        lambda s: ts.similarity(np.empty((3, 0))),
        lambda s: ts.pair_probe([]),
    ],
)
def test_empty_inputs(sur, call):
    with pytest.raises(ts.InvalidInputError):
        call(sur)


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.dataset_embedding(TEXTS, LABELS[:-1]),
        lambda s: s.dataset_embedding(TEXTS, [*LABELS, "pos"]),
        lambda s: s.dataset_embedding(TEXTS[:-1], LABELS),
        lambda s: s.model_embedding(TEXTS, LABELS[:3], mode="text"),
        lambda s: s.model_embedding(TEXTS, np.full((N - 1, 2), 0.5)),
        lambda s: s.model_embedding(TEXTS, np.full((N + 1, 2), 0.5)),
        lambda s: s.stats(TEXTS, np.array(LABELS[:-2])),
    ],
)
def test_outputs_of_wrong_length(sur, call):
    with pytest.raises(ts.InvalidInputError, match=r"labels|outputs"):
        call(sur)


@pytest.mark.parametrize("pairs", [TEXTS[:-1], [*TEXTS, "extra"], ["one"]])
@pytest.mark.parametrize(
    "call",
    [
        lambda s, p: s.encode(TEXTS, text_pairs=p),
        lambda s, p: s.featurize(TEXTS, text_pairs=p),
        lambda s, p: s.dataset_embedding(TEXTS, LABELS, p),
        lambda s, p: s.model_embedding(TEXTS, LABELS, text_pairs=p, mode="text"),
        lambda s, p: s.stats(TEXTS, LABELS, text_pairs=p),
    ],
)
def test_text_pairs_of_wrong_length(sur, call, pairs):
    with pytest.raises(ts.InvalidInputError, match="text_pairs"):
        call(sur, pairs)


# --------------------------------------------------------------------------------------------------
# non-string items, single strings
# --------------------------------------------------------------------------------------------------

BAD_ITEMS = [None, 3, 2.5, b"bytes", ["nested"], True]


@pytest.mark.parametrize("item", BAD_ITEMS, ids=repr)
def test_non_string_items_in_texts(sur, item):
    texts = [*TEXTS[:2], item, *TEXTS[3:]]
    for call in (
        lambda: sur.encode(texts),
        lambda: sur.featurize(texts),
        lambda: sur.dataset_embedding(texts, LABELS),
        lambda: sur.model_embedding(texts, LABELS, mode="text"),
    ):
        with pytest.raises(TypeError, match=r"texts\[2\]"):
            call()


@pytest.mark.parametrize("item", BAD_ITEMS, ids=repr)
def test_non_string_items_in_text_pairs(sur, item):
    pairs = [*TEXTS[:4], item, TEXTS[5]]
    with pytest.raises(TypeError, match=r"text_pairs\[4\]"):
        sur.encode(TEXTS, text_pairs=pairs)
    with pytest.raises(TypeError, match=r"text_pairs\[4\]"):
        sur.dataset_embedding(TEXTS, LABELS, pairs)


@pytest.mark.parametrize("item", [None, 3, 2.5, b"bytes", True], ids=repr)
def test_non_string_items_in_text_mode_outputs(sur, item):
    outputs = [*LABELS[:1], item, *LABELS[2:]]
    with pytest.raises(TypeError, match=r"outputs\[1\]"):
        sur.model_embedding(TEXTS, outputs, mode="text")


def test_soft_labels_rejected_in_text_mode(sur):
    with pytest.raises(TypeError):
        sur.model_embedding(TEXTS, np.full((N, 2), 0.5), mode="text")


@pytest.mark.parametrize("single", ["a single text", b"bytes text"], ids=["str", "bytes"])
def test_single_string_instead_of_list(sur, single):
    with pytest.raises(TypeError, match="single"):
        sur.encode(single)
    with pytest.raises(TypeError, match="single"):
        sur.featurize(single)
    with pytest.raises(TypeError):
        sur.dataset_embedding(single, LABELS)
    with pytest.raises(TypeError, match="single"):
        sur.encode(TEXTS, text_pairs=single)
    with pytest.raises(TypeError):
        sur.model_embedding(TEXTS, single, mode="text")
    with pytest.raises(TypeError):
        ts.pair_probe(single)


def test_single_string_as_labels(sur):
    with pytest.raises(TypeError):
        sur.dataset_embedding(TEXTS, "pnpnpn")


@pytest.mark.parametrize("texts", [None, 42, 3.5, object()], ids=repr)
def test_texts_not_a_sequence(sur, texts):
    with pytest.raises(TypeError):
        sur.encode(texts)


@pytest.mark.parametrize(
    "texts",
    [np.array([[t] for t in TEXTS]), np.array([[t, t] for t in TEXTS])],
    ids=["column", "matrix"],
)
def test_texts_array_of_wrong_rank(sur, texts):
    with pytest.raises(ts.InvalidInputError):
        sur.encode(texts)


def test_numpy_bytes_array_as_texts(sur):
    with pytest.raises(TypeError):
        sur.encode(np.array([t.encode() for t in TEXTS]))


# --------------------------------------------------------------------------------------------------
# hard labels
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "labels",
    [
        ["pos", 1, "pos", 0, "pos", 0],
        [1, "neg", 1, "neg", 1, "neg"],
        [np.int64(1), "x", "y", "x", "y", "x"],
    ],
    ids=["str-first", "int-first", "np-int-first"],
)
def test_labels_mixing_str_and_int(sur, labels):
    with pytest.raises(TypeError, match="mix"):
        sur.dataset_embedding(TEXTS, labels)


@pytest.mark.parametrize(
    "labels",
    [
        [True, False, True, False, True, False],
        np.array([True, False, True, False, True, False]),
        [1, 0, True, 0, 1, 0],
        [None] * N,
        [1.0, 0.0, 1.0, 0.0, 1.0, 0.0],
        [np.float32(1.0)] * N,
        [b"pos", b"neg"] * 3,
        [("a",), ("b",)] * 3,
    ],
    ids=["bools", "np-bools", "int-and-bool", "nones", "floats", "np-floats", "bytes", "tuples"],
)
def test_labels_of_bad_type(sur, labels):
    with pytest.raises(TypeError):
        sur.dataset_embedding(TEXTS, labels)


def test_labels_not_a_sequence(sur):
    for labels in (None, 5, {"a": 1}, {"pos", "neg"}):
        with pytest.raises(TypeError):
            sur.dataset_embedding(TEXTS, labels)


def test_one_dimensional_float_array_counts_as_hard_labels(sur):
    with pytest.raises(TypeError, match="labels"):
        sur.dataset_embedding(TEXTS, np.linspace(0.0, 1.0, N))


def test_too_many_distinct_labels(sur):
    n = _core.MAX_LABELS + 1
    with pytest.raises(ts.InvalidInputError, match="labels"):
        sur.dataset_embedding(["t"] * n, [f"label {i}" for i in range(n)])


# --------------------------------------------------------------------------------------------------
# soft labels
# --------------------------------------------------------------------------------------------------


def _soft(rows: list[list[float]]) -> np.ndarray:
    return np.array([rows[i % len(rows)] for i in range(N)], dtype=np.float64)


@pytest.mark.parametrize(
    "labels",
    [
        _soft([[np.nan, 1.0], [0.5, 0.5]]),
        _soft([[np.inf, 0.0], [0.5, 0.5]]),
        _soft([[-np.inf, 1.0], [0.5, 0.5]]),
        _soft([[1.5, -0.5], [0.5, 0.5]]),
        _soft([[-1e-6, 1.0 + 1e-6], [0.5, 0.5]]),
        _soft([[0.5, 0.4], [0.5, 0.5]]),
        _soft([[0.6, 0.6], [0.5, 0.5]]),
        _soft([[0.0, 0.0], [0.5, 0.5]]),
        _soft([[1.0, 1.0], [0.5, 0.5]]),
        np.zeros((N, 2, 2)),
        np.full((N, 1, 2), 0.5),
        np.zeros((N, 0)),
        np.full((2, _core.MAX_LABELS + 1), 1.0 / (_core.MAX_LABELS + 1))[[0, 1, 0, 1, 0, 1]],
    ],
    ids=[
        "nan",
        "inf",
        "-inf",
        "negative",
        "slightly-negative",
        "sum<1",
        "sum>1",
        "zero-row",
        "two-ones",
        "3-D",
        "3-D-column",
        "no-columns",
        "too-many-columns",
    ],
)
def test_invalid_soft_labels(sur, labels):
    with pytest.raises(ts.InvalidInputError):
        sur.model_embedding(TEXTS, labels)


@pytest.mark.parametrize(
    "labels",
    [
        np.array([[0.5, 0.5]] * N, dtype=object),
        np.array([["a", "b"]] * N),
        np.full((N, 2), 0.5 + 0j),
        np.eye(2, dtype=bool)[[0, 1] * 3],
        [["0.5", "0.5"]] * N,
    ],
    ids=["object", "str", "complex", "bool", "list-of-str-rows"],
)
def test_soft_labels_of_wrong_dtype(sur, labels):
    with pytest.raises(TypeError):
        sur.model_embedding(TEXTS, labels)


def test_soft_labels_within_tolerance_are_accepted(sur):
    p = _soft([[0.7, 0.3], [0.2, 0.8]])
    p[0] += [0.0004, 0.0]  # sums to 1.0004 < 1 + 1e-3
    e = sur.model_embedding(TEXTS, p)
    assert_unit(e.vector)
    ints = sur.model_embedding(TEXTS, np.eye(2, dtype=np.int64)[[0, 1] * 3])
    assert_unit(ints.vector)


def test_ragged_soft_label_rows(sur):
    with pytest.raises(CLEAN_ERRORS):
        sur.model_embedding(TEXTS, [[0.5, 0.5]] * (N - 1) + [[1.0]])


# --------------------------------------------------------------------------------------------------
# mode, method, kind, name, n_threads
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["bogus", "labels", "Label", "", None])
def test_bad_mode(sur, mode):
    for call in (
        lambda: sur.dataset_embedding(TEXTS, LABELS, mode=mode),
        lambda: sur.model_embedding(TEXTS, LABELS, mode=mode),
        lambda: sur.stats(TEXTS, LABELS, mode=mode),
    ):
        with pytest.raises(ts.InvalidInputError, match="mode"):
            call()


def test_bad_kind_name_and_stats(sur):
    st_ = sur.stats(TEXTS, LABELS)
    with pytest.raises(ts.InvalidInputError, match="kind"):
        sur.embed(st_, kind="bogus")
    with pytest.raises(TypeError, match="name"):
        sur.embed(st_, name=3)
    with pytest.raises(TypeError, match="name"):
        sur.dataset_embedding(TEXTS, LABELS, name=None)
    with pytest.raises(TypeError):
        sur.embed({"n": 3})


N_THREADS_CALLS = [
    lambda s, t: s.encode(TEXTS, n_threads=t),
    lambda s, t: s.featurize(TEXTS, n_threads=t),
    lambda s, t: s.stats(TEXTS, LABELS, n_threads=t),
    lambda s, t: s.dataset_embedding(TEXTS, LABELS, n_threads=t),
    lambda s, t: s.model_embedding(TEXTS, LABELS, mode="text", n_threads=t),
    lambda s, t: ts.similarity(np.eye(3), n_threads=t),
]


@pytest.mark.parametrize("call", N_THREADS_CALLS)
@pytest.mark.parametrize("n_threads", [0, -1, -(2**40)])
def test_n_threads_out_of_range(sur, call, n_threads):
    with pytest.raises(ts.InvalidInputError, match="n_threads"):
        call(sur, n_threads)


@pytest.mark.parametrize("call", N_THREADS_CALLS)
@pytest.mark.parametrize("n_threads", [1.5, 2.0, "2", True, [2]], ids=repr)
def test_n_threads_of_wrong_type(sur, call, n_threads):
    with pytest.raises(TypeError, match="n_threads"):
        call(sur, n_threads)


@pytest.mark.parametrize("call", N_THREADS_CALLS)
def test_large_n_threads_work(sur, call):
    a = call(sur, 1)
    b = call(sur, 64)
    if isinstance(a, ts.TaskStats):
        assert np.array_equal(a.ff, b.ff)
    elif isinstance(a, ts.TaskEmbedding):
        assert a == b
    elif isinstance(a, ts.SparseFeatures):
        assert all(np.array_equal(x, y) for x, y in zip(a[:3], b[:3], strict=True))
    else:
        assert np.array_equal(a, b)


def test_huge_n_threads_is_clean(sur):
    try:
        sur.encode(TEXTS, n_threads=2**64)
    except CLEAN_ERRORS:
        pass


# --------------------------------------------------------------------------------------------------
# TaskEmbedding construction
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "vector",
    [
        [np.nan, 1.0, 0.0],
        [0.0, np.inf, 0.0],
        [-np.inf],
        [],
        [[1.0, 0.0], [0.0, 1.0]],
        np.float32(1.0),
    ],
    ids=["nan", "inf", "-inf", "empty", "2-D", "scalar"],
)
def test_task_embedding_rejects_bad_vectors(vector):
    with pytest.raises(ts.InvalidInputError, match="vector"):
        ts.TaskEmbedding(vector=np.asarray(vector), fingerprint="0" * 16, mode="label", method="operator")


def test_task_embedding_rejects_bad_kind_and_mode():
    v = np.array([1.0, 0.0])
    with pytest.raises(ts.InvalidInputError, match="kind"):
        ts.TaskEmbedding(vector=v, fingerprint="f", mode="label", method="operator", kind="bogus")
    with pytest.raises(ts.InvalidInputError, match="mode"):
        ts.TaskEmbedding(vector=v, fingerprint="f", mode="bogus", method="operator")


def test_from_dict_rejects_non_mappings():
    for d in (None, [], "abc", {"format": "other"}, {}):
        with pytest.raises(ts.InvalidInputError):
            ts.TaskEmbedding.from_dict(d)


@pytest.mark.parametrize(
    "call",
    [
        lambda: ts.similarity(np.array([[1e300, 1.0]])),
        lambda: ts.similarity(np.ones((1, 2)), np.array([[1.0, -1e40]])),
        lambda: ts.TaskEmbedding(
            vector=np.array([1e300, 0.0]), fingerprint="f", mode="label", method="operator"
        ),
        lambda: ts.Surrogate(features=16, dim=32).model_embedding(TEXTS, np.full((N, 2), 1.7e308)),
    ],
    ids=["similarity-a", "similarity-b", "task-embedding", "soft-label-row-sum"],
)
def test_huge_finite_values_raise_cleanly(call):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ts.InvalidInputError):
            call()


# --------------------------------------------------------------------------------------------------
# similarity
# --------------------------------------------------------------------------------------------------

A = np.arange(12, dtype=np.float64).reshape(3, 4) + 1.0


@pytest.mark.parametrize(
    "call",
    [
        lambda: ts.similarity(np.array([[np.nan, 1.0, 0.0, 0.0]])),
        lambda: ts.similarity(A, np.array([[1.0, np.nan, 0.0, 0.0]])),
        lambda: ts.similarity(np.array([[np.inf, 1.0, 0.0, 0.0]]), A),
        lambda: ts.similarity(A, np.ones((2, 5))),
        lambda: ts.similarity(A, np.ones(3)),
        lambda: ts.similarity(np.ones((2, 3, 4))),
        lambda: ts.similarity(A, np.ones((2, 3, 4))),
        lambda: ts.similarity(A, out=np.empty((3, 2), dtype=np.float32)),
        lambda: ts.similarity(A, out=np.empty((3, 3), dtype=np.float64)),
        lambda: ts.similarity(A, out=np.empty((3, 3), dtype=np.int32)),
        lambda: ts.similarity(A, out=np.empty((9,), dtype=np.float32)),
        lambda: ts.similarity(A, out=np.empty((3, 6), dtype=np.float32)[:, ::2]),
        lambda: ts.similarity(A, out=np.asfortranarray(np.empty((3, 3), dtype=np.float32))[:, :2]),
        lambda: ts.similarity(A, out=np.broadcast_to(np.float32(0), (3, 3))),
        lambda: ts.similarity(A, out=[[0.0] * 3] * 3),
    ],
    ids=[
        "nan-a",
        "nan-b",
        "inf-a",
        "dims",
        "dims-1d",
        "3-D-a",
        "3-D-b",
        "out-shape",
        "out-float64",
        "out-int",
        "out-flat",
        "out-strided",
        "out-fortran-slice",
        "out-readonly",
        "out-list",
    ],
)
def test_bad_similarity_inputs(call):
    with pytest.raises(ts.InvalidInputError):
        call()


@pytest.mark.parametrize(
    "a",
    [
        "abc",
        None,
        np.array([[1, None]], dtype=object),
        np.array([["1", "2"]]),
        np.array([[True, False]]),
        np.array([[1 + 1j, 0]]),
    ],
    ids=["str", "None", "object", "str-array", "bool", "complex"],
)
def test_similarity_non_numeric(a):
    with pytest.raises(TypeError):
        ts.similarity(a)


def test_similarity_of_embeddings_mixed_with_vectors(sur):
    e = sur.dataset_embedding(TEXTS, LABELS)
    with pytest.raises(TypeError):
        ts.similarity([e, np.ones(128)])
    # embeddings of different lengths that claim the same space
    a = ts.TaskEmbedding(vector=np.ones(3), fingerprint="f", mode="label", method="operator")
    b = ts.TaskEmbedding(vector=np.ones(4), fingerprint="f", mode="label", method="operator")
    with pytest.raises(ts.InvalidInputError):
        ts.similarity([a, b])
    with pytest.raises(ts.InvalidInputError):
        ts.similarity([a], [b])


def test_similarity_vector_then_embedding(sur):
    e = sur.dataset_embedding(TEXTS, LABELS)
    with pytest.raises(TypeError):
        ts.similarity([np.ones(128), e])


def test_similarity_accepts_float64_int_and_non_contiguous():
    rng = np.random.default_rng(0)
    big = rng.normal(size=(8, 20))
    a = big[::2, ::2]  # float64, non-contiguous
    b = np.asfortranarray(rng.normal(size=(5, 10)))
    assert not a.flags.c_contiguous and not b.flags.c_contiguous
    s = ts.similarity(a, b)
    ref = (a @ b.T) / np.outer(np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1))
    np.testing.assert_allclose(s, ref, atol=1e-5)
    ints = np.array([[1, 0, 0], [1, 1, 0]], dtype=np.int64)
    np.testing.assert_allclose(ts.similarity(ints), [[1.0, np.sqrt(0.5)], [np.sqrt(0.5), 1.0]], atol=1e-6)
    np.testing.assert_allclose(ts.similarity([[1.0, 0.0]], [[0.0, 2.0]]), [[0.0]], atol=1e-7)
    f16 = np.array([[1.0, 2.0]], dtype=np.float16)
    np.testing.assert_allclose(ts.similarity(f16, f16), [[1.0]], atol=1e-6)


# --------------------------------------------------------------------------------------------------
# lone surrogates
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["\ud800", "\udfff", "abc\ud83ddef", "ok \udc00"], ids=repr)
def test_lone_surrogates(sur, bad):
    texts = [*TEXTS[:3], bad, *TEXTS[4:]]
    for call in (
        lambda: sur.encode(texts),
        lambda: sur.featurize(texts),
        lambda: sur.dataset_embedding(texts, LABELS),
        lambda: sur.model_embedding(texts, LABELS, mode="text"),
    ):
        with pytest.raises(ts.InvalidInputError, match=r"texts\[3\]"):
            call()
    with pytest.raises(ts.InvalidInputError, match=r"text_pairs\[3\]"):
        sur.encode(TEXTS, text_pairs=texts)
    with pytest.raises(ts.InvalidInputError, match=r"outputs\[3\]"):
        sur.model_embedding(TEXTS, texts, mode="text")


# --------------------------------------------------------------------------------------------------
# unusual inputs that must work
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["operator", "fisher"])
def test_empty_strings_among_texts(method):
    s = ts.Surrogate(features=32, dim=128, method=method)
    texts = ["", *TEXTS, "", "   "]
    labels = ["pos", *LABELS, "neg", "pos"]
    x = s.encode(texts)
    assert not x[0].any() and not x[-1].any() and not x[-2].any()
    for mode in ("label", "text"):
        e = s.dataset_embedding(texts, labels, mode=mode)
        assert_unit(e.vector)
    # empty output texts in text mode are allowed too
    e = s.model_embedding(texts, ["", *LABELS, "", "pos"], mode="text")
    assert_unit(e.vector)
    # and empty second texts
    e = s.dataset_embedding(texts, labels, [""] * len(texts))
    assert_unit(e.vector)


@pytest.mark.slow
def test_very_long_texts():
    s = ts.Surrogate(features=32, dim=128)
    unit = "the quick brown fox 日本語のテキスト jumps över ünïcode 🙂 and 漢字かな "
    long_mixed = (unit * (1_000_000 // len(unit) + 1))[:1_000_000]
    long_cjk = "漢字仮名交じり文" * 125_000  # one 1M-char token
    long_words = ("lorem ipsum dolor sit amet " * 40_000)[:1_000_000]
    texts = [long_mixed, long_cjk, long_words]
    assert all(len(t) == 1_000_000 for t in texts)
    x = s.encode(texts)
    np.testing.assert_allclose(np.linalg.norm(x.astype(np.float64), axis=1), 1.0, atol=1e-5)
    e = s.dataset_embedding(texts, ["a", "b", "a"])
    assert_unit(e.vector)
    sp = s.featurize(texts[:1])
    assert len(sp.indices) > 0 and np.all(np.isfinite(sp.values))


NON_ASCII = [
    "日本語のテキストはとても面白い",
    "中文文本处理很有意思",
    "한국어 텍스트 분석",
    "שלום עולם, מה שלומך?",
    "مرحبا بالعالم، كيف حالك؟",
    "cafe\u0301 na\u0308ive re\u0301sume\u0301",
    "Z\u0351\u0346a\u0352l\u0357g\u0358o\u035b text",
    "👍🏽 family: 👨\u200d👩\u200d👧\u200d👦 flags 🇯🇵🇩🇪",
    "😀😃😄😁😆 emoji only",
    "हिन्दी पाठ का विश्लेषण",
    "Ελληνικά ΚΕΙΜΕΝΑ ΣΟΦΙΑΣ",  # noqa: RUF001
    "zero\u200bwidth\ufeffchars\u00a0nbsp",
    "control\x00chars\x07here\x1f",
    "ﬁ ligature ß ẞ İstanbul",
]


@pytest.mark.parametrize("method", ["operator", "fisher"])
def test_non_ascii_texts(method):
    s = ts.Surrogate(features=48, dim=256, method=method)
    x = s.encode(NON_ASCII)
    np.testing.assert_allclose(np.linalg.norm(x.astype(np.float64), axis=1), 1.0, atol=1e-5)
    labels = ["x", "y"] * (len(NON_ASCII) // 2)
    for mode in ("label", "text"):
        e = s.dataset_embedding(NON_ASCII, labels, mode=mode)
        assert_unit(e.vector)
    m = s.model_embedding(NON_ASCII, NON_ASCII[::-1], mode="text")
    assert_unit(m.vector)
    # non-ASCII label names are just names
    e1 = s.dataset_embedding(NON_ASCII, ["ja", "nein"] * 7)
    e2 = s.dataset_embedding(NON_ASCII, ["はい", "🙂"] * 7)
    np.testing.assert_allclose(e1.vector, e2.vector, atol=1e-5)


@pytest.mark.parametrize(
    "labels",
    [
        [1, 0, 1, 0, 1, 0],
        [10, -3, 10, -3, 10, -3],
        np.array([1, 0, 1, 0, 1, 0]),
        np.array([1, 0, 1, 0, 1, 0], dtype=np.uint8),
        [np.int16(5), np.int16(2)] * 3,
        [2**70, 0] * 3,
    ],
    ids=["ints", "negative-ints", "np-int64", "np-uint8", "np-int16-items", "bigint"],
)
def test_int_labels_work(sur, labels):
    e = sur.dataset_embedding(TEXTS, labels)
    ref = sur.dataset_embedding(TEXTS, LABELS)
    np.testing.assert_allclose(e.vector, ref.vector, atol=1e-5)


def test_numpy_string_arrays_work(sur):
    ref = sur.dataset_embedding(TEXTS, LABELS)
    for texts in (np.array(TEXTS), np.array(TEXTS, dtype=object), tuple(TEXTS)):
        for labels in (np.array(LABELS), LABELS, tuple(LABELS)):
            e = sur.dataset_embedding(texts, labels)
            assert np.array_equal(e.vector, ref.vector)
    assert np.array_equal(sur.encode(np.array(TEXTS)), sur.encode(TEXTS))
    assert np.array_equal(sur.encode(TEXTS, text_pairs=np.array(TEXTS)), sur.encode(TEXTS, text_pairs=TEXTS))
    t = sur.model_embedding(np.array(TEXTS), np.array(LABELS), mode="text")
    assert t == sur.model_embedding(TEXTS, LABELS, mode="text")


def test_realistic_dataset_with_arrays(sur):
    texts, labels = datasets.load("question_type")
    e = sur.dataset_embedding(np.array(texts), np.array(labels))
    assert e == sur.dataset_embedding(texts, labels)


# --------------------------------------------------------------------------------------------------
# fuzzing: arbitrary junk never crashes
# --------------------------------------------------------------------------------------------------

JUNK = st.one_of(
    st.text(max_size=8),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.none(),
    st.booleans(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.binary(max_size=4),
)

FUZZ_SUR = ts.Surrogate(features=16, dim=32)


def _clean(call) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ts.DegenerateTaskWarning)
        try:
            call()
        except CLEAN_ERRORS:
            pass


@settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(labels=st.lists(JUNK, min_size=1, max_size=6), mode=st.sampled_from(["label", "text"]))
def test_fuzz_outputs_never_crash(labels, mode):
    texts = [f"text number {i}" for i in range(len(labels))]
    _clean(lambda: FUZZ_SUR.model_embedding(texts, labels, mode=mode))


@settings(max_examples=150, deadline=None, derandomize=True)
@given(texts=st.lists(JUNK, min_size=0, max_size=5))
def test_fuzz_texts_never_crash(texts):
    _clean(lambda: FUZZ_SUR.encode(texts))
    _clean(lambda: FUZZ_SUR.dataset_embedding(texts, [i % 2 for i in range(len(texts))]))


@settings(max_examples=150, deadline=None, derandomize=True)
@given(
    probs=st.lists(
        st.lists(
            # huge finite values are covered by test_huge_finite_values_raise_cleanly (a known bug)
            st.one_of(st.floats(-1e300, 1e300), st.sampled_from([np.nan, np.inf, -np.inf])),
            min_size=2,
            max_size=2,
        ),
        min_size=4,
        max_size=4,
    )
)
def test_fuzz_soft_labels(probs):
    arr = np.array(probs)
    texts = ["alpha beta", "gamma", "delta epsilon", "zeta"]
    with np.errstate(over="ignore", invalid="ignore"):
        sums = arr.sum(axis=1)
    ok = bool(np.all(np.isfinite(arr)) and np.all(arr >= 0) and np.all(np.abs(sums - 1.0) <= 1e-3))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ts.DegenerateTaskWarning)
        if ok:
            e = FUZZ_SUR.model_embedding(texts, arr)
            assert np.all(np.isfinite(e.vector))
            norm = float(np.linalg.norm(e.vector.astype(np.float64)))
            assert norm == 0.0 or math.isclose(norm, 1.0, abs_tol=1e-5)
        else:
            with pytest.raises(ts.InvalidInputError):
                FUZZ_SUR.model_embedding(texts, arr)


# -- issue 13, class 11: out-of-range numbers are the package's errors, naming the argument ----------


@pytest.mark.parametrize("n", [-5, -1, 2**64, 10**30])
def test_task_stats_rejects_counts_outside_u64(sur, n):
    import dataclasses

    s = sur.stats(["a b", "c d", "e"], ["x", "y", "x"])
    with pytest.raises(ts.InvalidInputError, match=r"^n must be"):
        dataclasses.replace(s, n=n)
    with pytest.raises(TypeError, match=r"^n must be an int"):
        dataclasses.replace(s, n=1.5)
    with pytest.raises(ts.InvalidInputError, match="ff must have shape"):
        dataclasses.replace(s, ff=np.eye(3))


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"dim": 2**40}, "dim="),
        ({"dim": 4, "capacity": 2**40}, "capacity="),
        ({"dim": 4, "M": 2**40}, "M must be"),
        ({"dim": 4, "M": 1}, "M must be"),
        ({"dim": 4, "ef": 2**64}, "ef must be"),
        ({"dim": 4, "ef_construction": 2**64}, "ef_construction must be"),
    ],
)
def test_index_rejects_sizes_before_hnswlib_allocates(kwargs, name):
    with pytest.raises(ts.InvalidInputError, match=name):
        ts.Index(**kwargs)


def test_index_search_ef_out_of_range():
    idx = ts.Index(dim=3)
    idx.add(np.eye(3), ids=[1, 2, 3])
    with pytest.raises(ts.InvalidInputError, match="ef must be"):
        idx.search(np.ones(3), k=1, ef=2**64)
    assert idx.search(np.ones(3), k=2**62).ids.shape == (1, 3)  # k clamped to the items


@pytest.mark.parametrize("value", [-1, 2**64, 2**70])
def test_core_integer_arguments_out_of_range_are_invalid_input(value):
    a = np.ones((3, 4), np.float32)
    with pytest.raises(ts.InvalidInputError, match="out of range") as info:
        _core.top_k(a, None, value, False, 0)
    assert "while processing 'k'" in getattr(info.value, "__notes__", [])
    with pytest.raises(ts.InvalidInputError, match="out of range"):
        _core.SurrogateCore(features=4, dim=value, seed=0, hash_bits=10, ridge=1.0, method="operator")


def test_core_sizes_beyond_memory_are_errors_not_aborts():
    a = np.ones((3, 4), np.float32)
    with pytest.raises(ts.InvalidInputError, match="candidate rows"):
        _core.top_k(a, None, 10**10, False, 0)  # used to abort: 240 GB for the padding
    x = np.ones((1, 1, 1))
    with pytest.raises(ts.InvalidInputError, match="dim"):
        _core.sketch_triangles(x, x, np.zeros(1, np.uint32), np.ones(1), 2**60, 1)
    with pytest.raises(ts.InvalidInputError, match="output columns"):
        core = _core.SurrogateCore(features=4, dim=8, seed=0, hash_bits=10, ridge=1.0, method="operator")
        core.stats(np.zeros((1, 4), np.float32), np.zeros((1, 100_000), np.float32), 1)  # 80 GB c*c
