"""Property-based fuzzing of every public numeric entry point (and the private core) in a child process.

Rule under test: no Python-reachable input aborts, panics or hangs the interpreter. Each case runs in
one long-lived worker process (this file run as a script), so a case that kills the process fails
its test instead of the test run, and the worker is restarted. The outcome of every case must be a
clear error (TaskspaceError, ValueError, TypeError or MemoryError; ``PanicException`` is a
``BaseException`` and does not count) or a correct result, checked against numpy where there is one.

Inputs: sizes (0, 1, odd, larger than one block), dtypes, layouts (Fortran order, negative strides,
strided views), huge and negative integers, non-finite and extreme floats, Unicode texts (lone
surrogates, combining marks, right-to-left marks, emoji, NUL).
"""

from __future__ import annotations

import os
import pickle
import select
import struct
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

#: Seconds one case may take before the worker counts as hung.
CASE_TIMEOUT = 30.0
#: Exceptions that count as a clear answer to bad input.
ALLOWED = ("TaskspaceError", "ValueError", "TypeError", "MemoryError")
FUZZ = settings(
    max_examples=30,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# -- inputs ------------------------------------------------------------------------------------------

HUGE_INTS = [2**31, 2**32, 2**40, 2**62, 2**63 - 1, 2**63, 2**64, 2**64 + 1, 10**30]
NEGATIVE_INTS = [-1, -5, -(2**63), -(2**64)]
SPECIAL_FLOATS = [np.nan, np.inf, -np.inf, 1e38, 3.4e38, 1e39, 1e300, -1e300, 1e-40, 1e-45, 5e-324, -0.0]
LAYOUTS = ["C", "F", "reversed", "strided", "readonly"]
DTYPES = ["float32", "float64", "float16", "int64", "int8", "uint8", "bool", "complex64", "object"]
SPECIAL_TEXTS = [
    "",
    "\x00",
    "a\x00b",
    "\ud800",
    "x\udc80y",
    "e\u0301\u0301\u0301",
    "\u202eabc\u202c",
    "שלום עולם",
    "مرحبا بالعالم",
    "👩\u200d👩\u200d👧 🎉",
    "\U0010ffff",
    "\ufeff",
    " \t\n ",
    "a" * 20_000,
    "😀" * 3_000,
]

ints = st.one_of(st.integers(-3, 70), st.sampled_from(HUGE_INTS + NEGATIVE_INTS))
small_counts = st.one_of(st.integers(0, 20), st.sampled_from([0, 1, 17, 65, 200]))
floats = st.one_of(
    st.floats(-10, 10, allow_nan=False, width=32),
    st.sampled_from(SPECIAL_FLOATS),
)
texts_item = st.one_of(
    st.text(st.characters(codec=None, exclude_categories=()), max_size=30),
    st.sampled_from(SPECIAL_TEXTS),
)
texts = st.lists(texts_item, min_size=0, max_size=12)


@st.composite
def arrays(draw: st.DrawFn, max_rows: int = 40, dim: int | None = None) -> dict[str, Any]:
    """A spec of a 2-D (sometimes 1-D or 3-D) array: values, dtype and the layout the worker applies."""
    # Mostly valid arrays (so that huge k, odd layouts and extreme values reach the kernels), with
    # every kind of invalid one mixed in.
    rows = draw(st.one_of(st.integers(1, 6), st.integers(0, max_rows)))
    d = dim if dim is not None else draw(st.sampled_from([1, 2, 3, 7, 16, 33]))
    kind = draw(st.sampled_from(["normal"] * 6 + ["special", "zeros", "ints"]))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    if kind == "normal":
        data = rng.standard_normal((rows, d))
    elif kind == "zeros":
        data = np.zeros((rows, d))
    elif kind == "ints":
        data = rng.integers(-(2**40), 2**40, (rows, d)).astype(np.float64)
    else:
        data = rng.standard_normal((rows, d))
        if data.size:
            flat = data.reshape(-1)
            for _ in range(draw(st.integers(1, 3))):
                flat[draw(st.integers(0, flat.size - 1))] = draw(st.sampled_from(SPECIAL_FLOATS))
    dtype = draw(st.sampled_from(["float32"] * 6 + ["float64"] * 4 + DTYPES))
    ndim = draw(st.sampled_from([2] * 8 + [1, 3]))
    return {"data": data, "dtype": dtype, "layout": draw(st.sampled_from(LAYOUTS)), "ndim": ndim}


def realize(spec: dict[str, Any]) -> np.ndarray:
    """The array a spec describes (layouts cannot cross a pickle, so the worker builds them)."""
    data = spec["data"]
    if spec["ndim"] == 1:
        data = data.reshape(-1)
    elif spec["ndim"] == 3:
        data = data[None, :, :]
    with np.errstate(all="ignore"):
        if spec["dtype"] == "object":
            arr = data.astype(object)
        else:
            arr = data.astype(spec["dtype"])
    layout = spec["layout"]
    if layout == "F":
        arr = np.asfortranarray(arr)
    elif layout == "reversed":
        arr = arr[::-1]
    elif layout == "strided":
        arr = np.repeat(arr, 2, axis=-1)[..., ::2]
    elif layout == "readonly":
        arr = arr.copy()
        arr.flags.writeable = False
    return arr


def oracle_cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine in float64 of the float32 values the package works on; zero rows give 0."""

    def unit(x: np.ndarray) -> np.ndarray:
        x = np.atleast_2d(np.asarray(x, dtype=np.float32).astype(np.float64))
        big = np.abs(x).max(axis=1, keepdims=True)
        x = np.divide(x, big, out=np.zeros_like(x), where=big > 0)
        n = np.linalg.norm(x, axis=1, keepdims=True)
        return np.divide(x, n, out=np.zeros_like(x), where=n > 0)

    return np.clip(unit(a) @ unit(b).T, -1.0, 1.0)


# -- probes: run in the worker; return None when the result is correct, else what is wrong ------------


def probe_similarity(a: dict, b: dict | None, top_k: Any, exclude_self: bool, n_threads: Any) -> str | None:
    import taskspace as ts

    xa = realize(a)
    xb = None if b is None else realize(b)
    res = ts.similarity(xa, xb, top_k=top_k, exclude_self=exclude_self, n_threads=n_threads)
    want = oracle_cosine(xa, xa if xb is None else xb)
    if top_k is None:
        if res.shape != want.shape or res.dtype != np.float32:
            return f"shape/dtype {res.shape} {res.dtype}, expected {want.shape} float32"
        err = float(np.abs(res - want).max(initial=0.0))
        return None if err <= 2e-4 else f"max error {err}"
    return check_top_k(res.ids, res.scores, want, int(top_k), exclude_self and xb is None)


def check_top_k(ids: np.ndarray, scores: np.ndarray, want: np.ndarray, k: int, skip_self: bool) -> str | None:
    n, m = want.shape
    kk = min(k, m)
    if ids.shape != (n, kk) or scores.shape != (n, kk):
        return f"top-k shape {ids.shape}, expected {(n, kk)}"
    for i in range(n):
        cand = np.delete(want[i], i) if skip_self else want[i]
        best = np.sort(cand)[::-1][:kk]
        real = ids[i] >= 0
        if real.sum() != len(best) or (skip_self and i in ids[i]):
            return f"row {i}: {real.sum()} results, expected {len(best)}"
        if np.abs(scores[i][real] - best).max(initial=0.0) > 2e-4:
            return f"row {i}: scores {scores[i][real]} vs {best}"
        if np.abs(want[i][ids[i][real]] - scores[i][real]).max(initial=0.0) > 2e-4:
            return f"row {i}: ids do not carry their scores"
    return None


def probe_pairs_above(a: dict, b: dict | None, threshold: Any, block_rows: Any) -> str | None:
    import taskspace as ts

    xa = realize(a)
    xb = None if b is None else realize(b)
    got: set[tuple[int, int]] = set()
    for p in ts.pairs_above(xa, xb, threshold=threshold, block_rows=block_rows, n_threads=2):
        got.update(zip(p.i.tolist(), p.j.tolist(), strict=True))
    want = oracle_cosine(xa, xa if xb is None else xb)
    t = float(threshold)
    ok = (lambda i, j: j > i) if xb is None else (lambda i, j: True)
    sure = {(i, j) for i, j in zip(*np.nonzero(want >= t + 2e-4), strict=True) if ok(i, j)}
    maybe = {(i, j) for i, j in zip(*np.nonzero(want >= t - 2e-4), strict=True) if ok(i, j)}
    if not sure <= got <= maybe:
        return f"pairs differ: missing {sorted(sure - got)[:3]}, extra {sorted(got - maybe)[:3]}"
    return None


def probe_surrogate(config: dict, call: str, texts: Any, outputs: Any, kwargs: dict) -> str | None:
    import taskspace as ts

    sur = ts.Surrogate(**config)
    if call == "encode":
        x = sur.encode(texts, **kwargs)
        norms = np.linalg.norm(x.astype(np.float64), axis=1)
        if x.shape != (len(texts), sur.features) or not np.all((np.abs(norms - 1) < 1e-4) | (norms == 0)):
            return f"encode gave shape {x.shape}, norms {norms[:5]}"
    elif call == "featurize":
        sp = sur.featurize(texts, **kwargs)
        if (
            len(sp.indptr) != len(texts) + 1
            or sp.indptr[-1] != len(sp.indices)
            or not np.isfinite(sp.values).all()
        ):
            return "featurize gave inconsistent CSR arrays"
    elif call == "stats":
        s = sur.stats(texts, outputs, **kwargs)
        if s.n != len(texts) or not np.isfinite(s.ff).all():
            return f"stats n={s.n}"
    else:
        emb = getattr(sur, call)(texts, outputs, **kwargs)
        norm = float(np.linalg.norm(emb.vector.astype(np.float64)))
        if emb.vector.shape != (sur.dim,) or not (abs(norm - 1) < 1e-4 or norm == 0):
            return f"{call} gave shape {emb.vector.shape}, norm {norm}"
    return None


def probe_task_stats(fields: dict, embed: bool) -> str | None:
    import taskspace as ts
    from taskspace.embedding.surrogate import TaskStats

    sur = ts.Surrogate(features=4, dim=8)
    base = sur.stats(["a b", "c", "d e f", "g"], ["x", "y", "x", "z"])
    values = {
        k: getattr(base, k)
        for k in ("fingerprint", "mode", "labels", "n", "sum_f", "sum_y", "ff", "fy", "yy")
    }
    values.update(fields)
    s = TaskStats(**values)
    if embed:
        v = sur.embed(s).vector
        norm = float(np.linalg.norm(v.astype(np.float64)))
        if not (abs(norm - 1) < 1e-4 or norm == 0):
            return f"embedding norm {norm}"
    return None


def probe_task_embedding(vector: dict, n: Any) -> str | None:
    from taskspace.embedding.task_embedding import TaskEmbedding

    x = realize(vector)
    e = TaskEmbedding(vector=x, fingerprint="f", mode="label", method="operator", n=n)
    if e.vector.dtype != np.float32 or e.vector.shape != (np.asarray(x).shape[-1],):
        return f"vector {e.vector.dtype} {e.vector.shape}"
    return None


def probe_index(params: dict, vectors: dict, queries: dict, k: Any, ef: Any) -> str | None:
    import taskspace as ts

    idx = ts.Index(**params)
    x = realize(vectors)
    idx.add(x, ids=np.arange(np.atleast_2d(x).shape[0]))
    q = realize(queries)
    res = idx.search(q, k=k, ef=ef, exact=True)
    want = oracle_cosine(q, x)
    kk = min(int(k), want.shape[1])
    if res.ids.shape != (want.shape[0], kk):
        return f"search shape {res.ids.shape}, expected {(want.shape[0], kk)}"
    best = np.sort(want, axis=1)[:, ::-1][:, :kk]
    err = float(np.abs((1 - res.distances) - best).max(initial=0.0))
    return None if err <= 2e-4 else f"exact search distances off by {err}"


def probe_core(name: str, args: list, kwargs: dict) -> str | None:
    from taskspace import _core

    args = [realize(a) if isinstance(a, dict) and "layout" in a else a for a in args]
    if name.startswith("SurrogateCore."):
        core = _core.SurrogateCore(features=4, dim=8, seed=0, hash_bits=10, ridge=1.0, method="operator")
        getattr(core, name.split(".", 1)[1])(*args, **kwargs)
    else:
        getattr(_core, name)(*args, **kwargs)
    return None


# -- the worker ----------------------------------------------------------------------------------------


def _serve() -> None:
    """Worker loop: read (probe, args) frames from stdin, answer (kind, detail) frames on stdout."""
    inp, out = sys.stdin.buffer, sys.stdout.buffer
    probes = {k: v for k, v in globals().items() if k.startswith("probe_")}
    while True:
        head = inp.read(8)
        if len(head) < 8:
            return
        name, args = pickle.loads(inp.read(struct.unpack("<Q", head)[0]))
        try:
            wrong = probes[name](*args)
            reply = ("ok", None) if wrong is None else ("wrong", wrong)
        except BaseException as e:  # PanicException is a BaseException: it must be seen too
            names = [c.__name__ for c in type(e).__mro__]
            kind = "error" if any(n in ALLOWED for n in names) else "bad-error"
            detail = f"{type(e).__name__}: {e}"[:500]
            if kind == "bad-error":
                detail += "\n" + traceback.format_exc()[-1500:]
            reply = (kind, detail)
        data = pickle.dumps(reply)
        out.write(struct.pack("<Q", len(data)) + data)
        out.flush()


class Worker:
    """One child interpreter that runs probes; restarted after it dies or hangs."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        self.stderr = tempfile.TemporaryFile()  # a file, not a pipe: panic messages cannot block it

    def _start(self) -> subprocess.Popen[bytes]:
        if self.proc is None or self.proc.poll() is not None:
            self.stderr.seek(0)
            self.stderr.truncate()
            self.proc = subprocess.Popen(
                [sys.executable, str(Path(__file__).resolve()), "--worker"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self.stderr,
                env={**os.environ, "RUST_BACKTRACE": "0"},
            )
        return self.proc

    def run(self, probe: Callable[..., Any], *args: Any) -> tuple[str, Any]:
        proc = self._start()
        assert proc.stdin is not None and proc.stdout is not None
        data = pickle.dumps((probe.__name__, args))
        try:
            proc.stdin.write(struct.pack("<Q", len(data)) + data)
            proc.stdin.flush()
            head = self._read(proc, 8)
            return pickle.loads(self._read(proc, struct.unpack("<Q", head)[0]))
        except (BrokenPipeError, EOFError, TimeoutError) as e:
            self._stop(proc)
            self.stderr.seek(0)
            tail = self.stderr.read()[-2000:].decode(errors="replace")
            return ("crash", f"{type(e).__name__}; exit code {proc.returncode}; stderr: {tail}")

    @staticmethod
    def _read(proc: subprocess.Popen[bytes], n: int) -> bytes:
        assert proc.stdout is not None
        fd, buf, end = proc.stdout.fileno(), b"", time.monotonic() + CASE_TIMEOUT
        while len(buf) < n:
            if not select.select([fd], [], [], max(0.0, end - time.monotonic()))[0]:
                raise TimeoutError
            chunk = os.read(fd, n - len(buf))
            if not chunk:
                raise EOFError
            buf += chunk
        return buf

    def _stop(self, proc: subprocess.Popen[bytes]) -> None:
        proc.kill()
        proc.wait()
        for pipe in (proc.stdin, proc.stdout):
            if pipe is not None:
                try:
                    pipe.close()
                except BrokenPipeError:
                    pass
        self.proc = None

    def close(self) -> None:
        if self.proc is not None:
            self._stop(self.proc)
        self.stderr.close()


@pytest.fixture(scope="module")
def worker() -> Any:
    w = Worker()
    yield w
    w.close()


def check(worker: Worker, probe: Callable[..., Any], *args: Any) -> str:
    """Run a case; fail unless it gave a correct result or a clear error. Returns the outcome kind."""
    kind, detail = worker.run(probe, *args)
    assert kind in ("ok", "error"), f"{probe.__name__}{args!r:.600}\n-> {kind}: {detail}"
    return kind


# -- the fuzz tests -------------------------------------------------------------------------------------

top_ks = st.one_of(
    st.none(),
    st.integers(-2, 8),
    st.sampled_from([10**10, 2**62, 2**63 - 1, 2**64, 2**200]),
    st.sampled_from([10**10, 2**62, 1.5, True, "3"]),
)
n_threads = st.one_of(st.none(), st.integers(1, 3), st.sampled_from([0, -1, 1024, 1025, 2**64, 2.0]))


@settings(FUZZ, max_examples=60)
@given(
    a=arrays(),
    b=st.none() | arrays(),
    top_k=top_ks,
    exclude_self=st.booleans(),
    n_threads=n_threads,
)
def test_similarity(
    worker: Worker, a: dict, b: dict | None, top_k: Any, exclude_self: bool, n_threads: Any
) -> None:
    check(worker, probe_similarity, a, b, top_k, exclude_self, n_threads)


@FUZZ
@given(
    a=arrays(),
    b=st.none() | arrays(),
    threshold=st.one_of(floats, st.sampled_from([-1.0, 1.0, 2.0, "0.5", None])),
    block_rows=st.one_of(st.integers(1, 40), st.sampled_from([0, -1, 2**64, 10**30, 2.5])),
)
def test_pairs_above(worker: Worker, a: dict, b: dict | None, threshold: Any, block_rows: Any) -> None:
    check(worker, probe_pairs_above, a, b, threshold, block_rows)


def test_the_reported_crashes_are_clean(worker: Worker) -> None:
    """The examples of issue 13: each used to abort the interpreter or raise PanicException."""
    ones = {"data": np.ones((3, 4)), "dtype": "float64", "layout": "C", "ndim": 2}
    hundred = {"data": np.ones((100, 4)), "dtype": "float64", "layout": "C", "ndim": 2}
    f32 = {**ones, "dtype": "float32"}
    assert check(worker, probe_similarity, ones, None, 10**10, False, None) == "ok"
    assert check(worker, probe_similarity, ones, None, 2**62, False, None) == "ok"
    assert check(worker, probe_similarity, hundred, None, 2**62, True, None) == "ok"
    assert check(worker, probe_core, "top_k", [f32, None, 10**10, False, 0], {}) == "error"
    assert check(worker, probe_core, "top_k", [f32, None, 2**31, False, 0], {}) == "error"
    assert check(worker, probe_core, "top_k", [f32, None, 2**62, False, 2], {}) == "error"
    tri = {"data": np.ones((1, 1)), "dtype": "float64", "layout": "C", "ndim": 3}
    pos, w = np.zeros(1, np.uint32), np.ones(1)
    assert check(worker, probe_core, "sketch_triangles", [tri, tri, pos, w, 2**62, 1], {}) == "error"
    assert check(worker, probe_index, {"dim": 4, "capacity": 2**40}, ones, ones, 1, None) == "error"
    assert check(worker, probe_index, {"dim": 2**40}, ones, ones, 1, None) == "error"
    assert check(worker, probe_task_stats, {"n": -5}, True) == "error"


configs = st.fixed_dictionaries(
    {},
    optional={
        "features": st.one_of(st.integers(1, 64), st.sampled_from([0, -1, 2049, 2**64, 1.5])),
        "dim": st.one_of(st.integers(1, 128), st.sampled_from([0, 2**21, 2**40, 2**64])),
        "seed": st.one_of(st.integers(0, 2**64 - 1), st.sampled_from([-1, 2**64, 2**100])),
        "hash_bits": st.one_of(st.integers(1, 30), st.sampled_from([0, 31, 2**32, -1])),
        "ridge": st.one_of(st.floats(0.01, 100), st.sampled_from([0.0, -1.0, np.nan, np.inf, 1e308])),
        "method": st.sampled_from(["operator", "fisher", "sketch", ""]),
    },
)
outputs = st.one_of(
    st.lists(st.sampled_from(["a", "b", "c", 1, 2]), max_size=12),
    st.lists(texts_item, max_size=12),
    st.builds(lambda n, c: np.full((n, c), 1.0 / c), st.integers(0, 12), st.integers(1, 5)),
)


@FUZZ
@given(
    config=configs,
    call=st.sampled_from(["encode", "featurize", "stats", "dataset_embedding", "model_embedding"]),
    texts=texts,
    outputs=outputs,
    mode=st.sampled_from(["label", "text"]),
    n_threads=n_threads,
)
def test_surrogate(
    worker: Worker, config: dict, call: str, texts: list, outputs: Any, mode: str, n_threads: Any
) -> None:
    kwargs: dict[str, Any] = {"n_threads": n_threads}
    if call in ("stats", "dataset_embedding", "model_embedding"):
        kwargs["mode"] = mode
        if len(outputs) == len(texts) + 1:
            outputs = outputs[: len(texts)]
    check(worker, probe_surrogate, config, call, texts, outputs, kwargs)


stats_fields = st.fixed_dictionaries(
    {},
    optional={
        "n": st.one_of(st.integers(0, 10), st.sampled_from([-5, 2**64 - 1, 2**64, 1.0, True, None])),
        "sum_f": st.sampled_from([np.ones(4), np.ones(3), np.ones((4, 1)), np.full(4, np.nan), "abc", None]),
        "ff": st.sampled_from([np.eye(4), np.eye(3), np.full((4, 4), np.inf), np.ones((2**12, 0))]),
        "sum_y": st.sampled_from([np.ones(3), np.ones(5000), np.ones(0)]),
        "mode": st.sampled_from(["label", "text", "x", 3]),
        "labels": st.sampled_from([None, ("x", "y", "z"), ["x", "y", "z"], ("x",), "xyz", (1, 2, 3)]),
        "fingerprint": st.sampled_from(["other", 3]),
    },
)


@FUZZ
@given(fields=stats_fields, embed=st.booleans())
def test_task_stats(worker: Worker, fields: dict, embed: bool) -> None:
    check(worker, probe_task_stats, fields, embed)


@FUZZ
@given(vector=arrays(max_rows=1), n=st.one_of(st.integers(0, 5), st.sampled_from([-1, 2**64, 1.5])))
def test_task_embedding(worker: Worker, vector: dict, n: Any) -> None:
    check(worker, probe_task_embedding, vector, n)


index_params = st.fixed_dictionaries(
    {"dim": st.one_of(st.just(7), st.sampled_from([0, -1, 2**31, 2**40, 2**64, 7.0]))},
    optional={
        "M": st.one_of(st.integers(2, 64), st.sampled_from([0, 1, 10_001, 2**40, 2**64])),
        "ef_construction": st.one_of(st.integers(1, 300), st.sampled_from([0, 2**31, 2**64])),
        "ef": st.one_of(st.integers(1, 300), st.sampled_from([0, 2**31, 2**64])),
        "capacity": st.one_of(st.integers(1, 100), st.sampled_from([0, 2**32, 2**40, 2**64])),
        "metric": st.sampled_from(["cosine", "l2", None]),
        "n_threads": n_threads,
    },
)


@FUZZ
@given(
    params=index_params,
    vectors=arrays(dim=7),
    queries=arrays(max_rows=5, dim=7),
    k=st.one_of(st.integers(-1, 10), st.sampled_from([2**62, 2**64, 1.5])),
    ef=st.one_of(st.none(), st.integers(1, 50), st.sampled_from([0, 2**40, 2**64])),
)
def test_index(worker: Worker, params: dict, vectors: dict, queries: dict, k: Any, ef: Any) -> None:
    check(worker, probe_index, params, vectors, queries, k, ef)


def _core_cases() -> st.SearchStrategy[tuple[str, list, dict]]:
    f32 = arrays().map(lambda s: {**s, "dtype": "float32"})
    f64_3d = arrays().map(lambda s: {**s, "dtype": "float64", "ndim": 3})
    u32 = st.sampled_from([np.zeros(1, np.uint32), np.arange(6, dtype=np.uint32), np.zeros(0, np.uint32)])
    f64 = st.sampled_from([np.ones(1), np.ones(6), np.zeros(0), np.full(6, np.nan)])
    big = st.one_of(st.integers(0, 70), st.sampled_from(HUGE_INTS + NEGATIVE_INTS))
    threads = st.one_of(st.integers(0, 4), st.sampled_from([2**40, 2**64, -1]))
    txt = st.lists(texts_item, max_size=6)
    return st.one_of(
        st.tuples(
            st.just("top_k"),
            st.tuples(f32, st.none() | f32, big, st.booleans(), threads).map(list),
            st.just({}),
        ),
        st.tuples(st.just("cosine"), st.tuples(f32, st.none() | f32, f32, threads).map(list), st.just({})),
        st.tuples(
            st.just("pairs_above"),
            st.tuples(f32, f32, floats, big, st.booleans(), threads).map(list),
            st.just({}),
        ),
        st.tuples(
            st.just("sketch_triangles"),
            st.tuples(f64_3d, f64_3d, u32, f64, big, threads).map(list),
            st.just({}),
        ),
        st.tuples(st.just("solve_spd_batch"), st.tuples(f64_3d, f64_3d, threads).map(list), st.just({})),
        st.tuples(
            st.just("featurize"), st.tuples(txt, st.none() | txt, big, big, threads).map(list), st.just({})
        ),
        st.tuples(st.just("tokens"), st.tuples(texts_item).map(list), st.just({})),
        st.tuples(st.just("hash64"), st.tuples(st.binary(max_size=64)).map(list), st.just({})),
        st.tuples(
            st.just("SurrogateCore.encode"),
            st.tuples(txt, st.none() | txt, big, threads).map(list),
            st.just({}),
        ),
        st.tuples(st.just("SurrogateCore.stats"), st.tuples(f32, f32, threads).map(list), st.just({})),
        st.tuples(
            st.just("SurrogateCore.embed"),
            st.tuples(big, f64, f64, f64, f64, f64, st.sampled_from(["label", "text", "?"])).map(list),
            st.just({}),
        ),
        st.tuples(
            st.just("SurrogateCore"),
            st.just([]),
            st.fixed_dictionaries(
                {"features": big, "dim": big, "seed": big, "hash_bits": big, "ridge": floats},
                optional={"method": st.sampled_from(["operator", "fisher", "x"])},
            ),
        ),
    )


def probe_core_constructor(kwargs: dict) -> str | None:
    from taskspace import _core

    _core.SurrogateCore(**{"method": "operator", **kwargs})
    return None


@settings(FUZZ, max_examples=120)
@given(case=_core_cases())
def test_core_functions(worker: Worker, case: tuple[str, list, dict]) -> None:
    name, args, kwargs = case
    if name == "SurrogateCore":
        check(worker, probe_core_constructor, kwargs)
    else:
        check(worker, probe_core, name, args, kwargs)


def test_a_crash_is_detected(worker: Worker) -> None:
    """The harness itself: a case that kills the worker fails as a crash and the worker restarts."""
    kind, detail = worker.run(probe_abort)
    assert kind == "crash" and "exit code" in detail
    assert worker.run(probe_core, "hash64", [b"x"], {}) == ("ok", None)


def probe_abort() -> str | None:
    os.abort()


if __name__ == "__main__" and sys.argv[1:] == ["--worker"]:
    _serve()
