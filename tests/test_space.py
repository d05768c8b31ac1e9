"""taskspace.TaskSpace on real embeddings (ts.Surrogate(features=64, dim=256) and the built-in
datasets): nearest / select / duplicates / similarity_matrix against brute-force numpy, the HNSW path
against the exact one, persistence in a real SQLite file (reopen, crash mid-write, another process),
fingerprint and mode checks, foreign and damaged files, bad input."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest
import taskspace as ts
from taskspace.datasets import builtin as datasets
from taskspace.space.store import SCHEMA_VERSION

DATASETS = ("movie_sentiment", "product_sentiment", "news_topic", "question_type")


@pytest.fixture(scope="module")
def sur() -> ts.Surrogate:
    return ts.Surrogate(features=64, dim=256)


def flipped(labels: list[str], rate: float, seed: int) -> list[str]:
    """Labels with a fraction replaced by another label of the same task: a worse model."""
    rng = np.random.default_rng(seed)
    names = sorted(set(labels))
    out = list(labels)
    for i in np.flatnonzero(rng.random(len(labels)) < rate):
        out[i] = names[(names.index(out[i]) + 1) % len(names)]
    return out


@pytest.fixture(scope="module")
def embeddings(sur) -> list[ts.TaskEmbedding]:
    """4 DTEs, and per dataset 3 MTEs of models of decreasing quality plus a near-copy of the best."""
    out = []
    for d in DATASETS:
        texts, labels = datasets.load(d)
        out.append(sur.dataset_embedding(texts, labels, name=d, meta={"source": "builtin"}))
        for j, rate in enumerate((0.0, 0.2, 0.45)):
            out.append(
                sur.model_embedding(
                    texts,
                    flipped(labels, rate, seed=j),
                    name=f"{d}/model-{j}",
                    meta={"model": f"m{j}", "prompt": f"prompt for {d}", "dataset": d},
                )
            )
        half = len(texts) // 2
        out.append(sur.model_embedding(texts[:half] * 2, labels[:half] * 2, name=f"{d}/copy"))
    return out


def fill(space: ts.TaskSpace, embs: list[ts.TaskEmbedding]) -> ts.TaskSpace:
    for e in embs:
        space.add(e)
    return space


@pytest.fixture
def space(sur, embeddings) -> ts.TaskSpace:
    return fill(ts.TaskSpace(sur), embeddings)


def brute(embs: list[ts.TaskEmbedding]) -> tuple[list[str], np.ndarray]:
    """Names (sorted) and their cosine matrix in float64 numpy."""
    embs = sorted(embs, key=lambda e: e.name)
    x = np.stack([e.vector for e in embs]).astype(np.float64)
    norms = np.linalg.norm(x, axis=1)
    safe = np.where(norms == 0, 1.0, norms)
    s = (x / safe[:, None]) @ (x / safe[:, None]).T
    return [e.name for e in embs], s


def truth(embs: list[ts.TaskEmbedding], query: str) -> dict[str, float]:
    """Cosine of every entry with ``query`` (float64 numpy)."""
    names, s = brute(embs)
    i = names.index(query)
    return {n: float(s[i, j]) for j, n in enumerate(names)}


def assert_same_ranking(
    got: list[tuple[str, float]], want: list[tuple[str, float]], cos: dict[str, float]
) -> None:
    """Same similarities in the same order; names may differ only within ties (float32 vs float64)."""
    assert len(got) == len(want)
    np.testing.assert_allclose([s for _, s in got], [s for _, s in want], atol=1e-5)
    np.testing.assert_allclose([cos[n] for n, _ in got], [s for _, s in want], atol=1e-5)
    assert len({n for n, _ in got}) == len(got)


def brute_nearest(embs, query: str, k: int, kind: str | None) -> list[tuple[str, float]]:
    kinds = {e.name: e.kind for e in embs}
    cands = [(n, c) for n, c in truth(embs, query).items() if n != query and kind in (None, kinds[n])]
    return sorted(cands, key=lambda p: (-p[1], p[0]))[:k]


# -- queries against numpy ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", [None, "dataset", "model"])
@pytest.mark.parametrize("k", [1, 3, 100])
def test_nearest_by_name_matches_brute_force(space, embeddings, kind, k):
    for e in embeddings[::3]:
        got = space.nearest(e.name, k=k, kind=kind)
        assert_same_ranking(got, brute_nearest(embeddings, e.name, k, kind), truth(embeddings, e.name))
        assert e.name not in [n for n, _ in got]


def test_nearest_by_vector_or_embedding(space, embeddings):
    e = embeddings[2]  # movie_sentiment/model-1: no other entry ties with it
    by_emb = space.nearest(e, k=3)
    assert by_emb[0][0] == e.name and by_emb[0][1] == pytest.approx(1.0, abs=1e-5)  # itself: not excluded
    assert space.nearest(e.vector.astype(np.float64), k=3) == by_emb
    assert space.nearest(list(map(float, e.vector)), k=3) == by_emb
    by_name = space.nearest(e.name, k=2)
    assert [n for n, _ in by_name] == [n for n, _ in by_emb[1:]]
    np.testing.assert_allclose([c for _, c in by_name], [c for _, c in by_emb[1:]], atol=1e-6)


def test_similarity_matrix_matches_numpy(space, embeddings):
    names, m = space.similarity_matrix()
    want_names, want = brute(embeddings)
    assert names == want_names and m.dtype == np.float32
    np.testing.assert_allclose(m, want, atol=1e-5)
    names, m = space.similarity_matrix(kind="dataset")
    assert names == sorted(DATASETS) and m.shape == (4, 4)
    empty = ts.TaskSpace(space.surrogate)
    assert empty.similarity_matrix() == ([], pytest.approx(np.zeros((0, 0))))


def test_select_ranks_models_for_a_dataset(space, embeddings):
    names, s = brute(embeddings)
    kinds = {e.name: e.kind for e in embeddings}
    for d in DATASETS:
        i = names.index(d)
        want = sorted(
            [(n, float(s[i, j])) for j, n in enumerate(names) if kinds[n] == "model"],
            key=lambda p: (-p[1], p[0]),
        )
        got = space.select(d)
        assert_same_ranking(got, want, truth(embeddings, d))
        # the real signal: the accurate model of this dataset beats its noisier versions
        ours = [n for n, _ in got if n.startswith(d + "/model-")]
        assert ours == [f"{d}/model-0", f"{d}/model-1", f"{d}/model-2"]
    cands = ["news_topic/model-2", "movie_sentiment/model-0", "news_topic/model-0", "news_topic/model-0"]
    got = space.select("news_topic", candidates=cands)
    assert [n for n, _ in got][:2] == ["news_topic/model-0", "news_topic/model-2"] and len(got) == 3
    assert space.select(space.get("news_topic"), candidates=cands) == got


def test_duplicates_match_brute_force(space, embeddings):
    names, s = brute(embeddings)
    upper = [
        (names[i], names[j], float(s[i, j])) for i in range(len(names)) for j in range(i + 1, len(names))
    ]
    for threshold in (0.99, 0.9, 0.5):
        assert all(abs(c - threshold) > 1e-4 for *_, c in upper)  # no pair sits on the edge
        want = {(a, b): c for a, b, c in upper if c >= threshold}
        got = space.duplicates(threshold)
        assert {(a, b) for a, b, _ in got} == set(want)
        np.testing.assert_allclose([c for *_, c in got], [want[a, b] for a, b, _ in got], atol=1e-5)
        assert [c for *_, c in got] == sorted((c for *_, c in got), reverse=True)
    top = space.duplicates(0.99)
    assert ("movie_sentiment", "movie_sentiment/model-0") in [(a, b) for a, b, _ in top]
    assert all(a < b for a, b, _ in space.duplicates(0.0))
    assert all(
        space.info(a).kind == space.info(b).kind == "model" for a, b, _ in space.duplicates(0.5, kind="model")
    )


def test_search_index_path_agrees_with_exact_path(sur, embeddings):
    exact = fill(ts.TaskSpace(sur), embeddings)
    graph = fill(ts.TaskSpace(sur, index_threshold=0), embeddings)  # every search through Index
    for e in embeddings:
        for kind in (None, "model"):
            want = exact.nearest(e.name, k=4, kind=kind)
            assert_same_ranking(graph.nearest(e.name, k=4, kind=kind), want, truth(embeddings, e.name))
    assert index_contents(graph) == stored_ids(graph)  # the index follows adds and removes:
    graph.remove("news_topic/model-0")
    exact.remove("news_topic/model-0")
    extra = sur.model_embedding(*datasets.load("news_topic"), name="news_topic/model-new")
    graph.add(extra)
    exact.add(extra)
    graph.add(extra, replace=True)  # replacing moves the entry to a new row id in the index
    exact.add(extra, replace=True)
    now = [e for e in embeddings if e.name != "news_topic/model-0"] + [extra]
    for e in ("news_topic", "movie_sentiment"):
        assert_same_ranking(graph.nearest(e, k=5), exact.nearest(e, k=5), truth(now, e))
    assert index_contents(graph) == stored_ids(graph)


# -- changes and persistence --------------------------------------------------------------------------


def test_add_get_remove_and_info(space, embeddings, sur):
    e = embeddings[1]
    assert len(space) == len(embeddings) and e.name in space and "nope" not in space and 3 not in space
    assert space.get(e.name) == e  # vector bit for bit, meta, n, kind, method, mode
    info = space.info(e.name)
    assert (info.model, info.prompt, info.dataset, info.kind, info.n) == (
        "m0",
        "prompt for movie_sentiment",
        "movie_sentiment",
        "model",
        e.n,
    )
    assert info.created.tzinfo is not None
    assert space.info("news_topic").dataset == "news_topic"  # a DTE's dataset is its own name
    assert space.names(kind="dataset") == sorted(DATASETS)
    assert space.names() == sorted(x.name for x in embeddings)
    space.remove(e.name)
    assert e.name not in space and len(space) == len(embeddings) - 1
    with pytest.raises(KeyError, match="no embedding named"):
        space.remove(e.name)
    with pytest.raises(KeyError):
        space.get(e.name)
    with pytest.raises(ts.InvalidInputError, match="already in the space"):
        space.add(embeddings[0])
    other = sur.model_embedding(*datasets.load("news_topic"), name=embeddings[0].name)
    space.add(other, replace=True)
    assert space.get(embeddings[0].name) == other and space.info(embeddings[0].name).kind == "model"


def test_reopen_restores_everything(tmp_path, sur, embeddings):
    path = tmp_path / "space.sqlite"
    with ts.TaskSpace(sur, path) as space:
        fill(space, embeddings)
        space.remove(embeddings[2].name)
        before = (space.names(), space.similarity_matrix(), space.nearest("news_topic", k=5))
    with pytest.raises(ts.InvalidInputError, match="closed"):
        space.names()
    reopened = ts.TaskSpace(sur, path)
    assert reopened.names() == before[0]
    np.testing.assert_array_equal(reopened.similarity_matrix()[1], before[1][1])
    got = reopened.nearest("news_topic", k=5)
    assert [n for n, _ in got] == [n for n, _ in before[2]]
    np.testing.assert_allclose([c for _, c in got], [c for _, c in before[2]], atol=1e-6)
    for e in embeddings:
        if e.name != embeddings[2].name:
            assert reopened.get(e.name) == e
    assert reopened.mode == "label"
    reopened.close()
    reopened.close()  # idempotent
    via_open = ts.TaskSpace.open(path)
    assert via_open.surrogate.fingerprint == sur.fingerprint and len(via_open) == len(embeddings) - 1
    via_open.close()


def test_another_surrogate_cannot_open_the_file(tmp_path, sur, embeddings):
    path = tmp_path / "space.sqlite"
    with ts.TaskSpace(sur, path) as space:
        space.add(embeddings[0])
    before = path.read_bytes()
    with pytest.raises(ts.FingerprintMismatchError, match=sur.fingerprint):
        ts.TaskSpace(ts.Surrogate(features=64, dim=256, seed=1), path)
    assert path.read_bytes() == before
    with ts.TaskSpace(sur, path) as space:
        assert space.names() == [embeddings[0].name]


def test_fingerprint_and_mode_are_checked_on_add(space, sur):
    texts, labels = datasets.load("news_topic")
    foreign = ts.Surrogate(features=64, dim=256, seed=7).dataset_embedding(texts, labels, name="foreign")
    with pytest.raises(ts.FingerprintMismatchError, match="surrogate"):
        space.add(foreign)
    text_mode = sur.dataset_embedding(texts, labels, name="text", mode="text")
    with pytest.raises(ts.FingerprintMismatchError, match="text mode"):
        space.add(text_mode)
    with pytest.raises(ts.FingerprintMismatchError):
        space.nearest(text_mode)
    with pytest.raises(ts.FingerprintMismatchError):
        space.nearest(foreign)
    assert "foreign" not in space and "text" not in space
    fresh = ts.TaskSpace(sur)
    fresh.add(text_mode)
    assert fresh.mode == "text"
    fresh.remove("text")
    assert fresh.mode is None
    fresh.add(space.get("news_topic"))  # an empty space takes any mode
    assert fresh.mode == "label"


def test_a_failed_write_changes_nothing(space, embeddings, monkeypatch):
    names = space.names()
    store = space._store

    def broken_insert(db, e):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(store, "insert", broken_insert)
    with pytest.raises(RuntimeError, match="disk on fire"):
        space.add(embeddings[0], replace=True)  # the delete of the old row is rolled back too
    monkeypatch.undo()
    assert space.names() == names and space.get(embeddings[0].name) == embeddings[0]
    bad_meta = ts.TaskEmbedding(
        vector=embeddings[0].vector,
        fingerprint=embeddings[0].fingerprint,
        mode="label",
        method="operator",
        name="bad-meta",
        meta={"x": object()},
    )
    with pytest.raises(ts.InvalidInputError, match="JSON"):
        space.add(bad_meta)
    assert space.names() == names


CRASH = textwrap.dedent(
    """
    import os, sys
    import taskspace as ts
    from taskspace.datasets import builtin as datasets
    sur = ts.Surrogate(features=64, dim=256)
    space = ts.TaskSpace(sur, sys.argv[1])
    e = sur.dataset_embedding(*datasets.load("news_topic"), name="half-written")
    with space._store.transaction() as db:
        space._store.delete(db, "movie_sentiment")
        space._store.insert(db, e)
        os._exit(3)  # the process dies in the middle of the transaction
    """
)


def test_a_crash_during_a_write_leaves_the_previous_state(tmp_path, sur, embeddings):
    path = tmp_path / "space.sqlite"
    with ts.TaskSpace(sur, path) as space:
        fill(space, embeddings[:5])
        names = space.names()
    proc = subprocess.run(
        [sys.executable, "-c", CRASH, str(path)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 3, proc.stderr
    with ts.TaskSpace(sur, path) as space:
        assert space.names() == names and "half-written" not in space
        assert space.get("movie_sentiment") == embeddings[0]


def test_changes_by_another_connection_are_seen(tmp_path, sur, embeddings):
    path = tmp_path / "space.sqlite"
    a = fill(ts.TaskSpace(sur, path), embeddings[:3])
    b = ts.TaskSpace(sur, path)
    assert b.names() == a.names()
    a.add(embeddings[3])
    a.remove(embeddings[0].name)
    assert b.names() == a.names()
    got, want = b.nearest(embeddings[3].name, k=2), a.nearest(embeddings[3].name, k=2)
    assert [n for n, _ in got] == [n for n, _ in want]
    np.testing.assert_allclose([c for _, c in got], [c for _, c in want], atol=1e-6)
    a.close()
    b.close()


def test_degenerate_embeddings_are_stored_but_near_nothing(space, sur):
    zero = ts.TaskEmbedding(
        vector=np.zeros(256),
        fingerprint=sur.fingerprint,
        mode="label",
        method="operator",
        name="zero",
        kind="model",
    )
    space.add(zero)
    assert "zero" in space and space.get("zero") == zero
    assert "zero" not in [n for n, _ in space.nearest("news_topic", k=100)]
    assert "zero" not in {n for pair in space.duplicates(-1.0) for n in pair[:2]}
    assert dict(space.select("news_topic"))["zero"] == 0.0
    names, m = space.similarity_matrix()
    i = names.index("zero")
    assert not m[i].any() and not m[:, i].any()
    with pytest.raises(ts.InvalidInputError, match="degenerate"):
        space.nearest("zero")
    with pytest.raises(ts.InvalidInputError, match="degenerate"):
        space.select("zero")


def test_threads_query_while_another_adds(sur, embeddings):
    space = ts.TaskSpace(sur)
    space.add(embeddings[0])
    errors: list[BaseException] = []
    done = threading.Event()

    def writer() -> None:
        try:
            for e in embeddings[1:]:
                space.add(e)
        except BaseException as e:
            errors.append(e)
        finally:
            done.set()

    def reader() -> None:
        try:
            while not done.is_set():
                got = space.nearest(embeddings[0].name, k=3)
                assert all(n in space for n, _ in got)
                names, m = space.similarity_matrix()
                assert m.shape == (len(names), len(names))
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=writer)] + [threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors[0]
    assert len(space) == len(embeddings)


# -- foreign and damaged files -------------------------------------------------------------------------


def test_a_file_that_is_not_sqlite_is_refused_untouched(tmp_path, sur):
    path = tmp_path / "notes.txt"
    path.write_text("these are my notes, not a database\n" * 100)
    before = path.read_bytes()
    with pytest.raises(ts.InvalidInputError, match="not a readable taskspace space"):
        ts.TaskSpace(sur, path)
    assert path.read_bytes() == before


def test_another_applications_database_is_refused_untouched(tmp_path, sur):
    path = tmp_path / "other.sqlite"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE customers (name TEXT)")
    db.commit()
    db.close()
    before = path.read_bytes()
    with pytest.raises(ts.InvalidInputError, match="not a taskspace space"):
        ts.TaskSpace(sur, path)
    assert path.read_bytes() == before


def test_a_newer_schema_is_refused(tmp_path, sur):
    path = tmp_path / "space.sqlite"
    ts.TaskSpace(sur, path).close()
    db = sqlite3.connect(path)
    db.execute("UPDATE taskspace_schema SET version = ?", (SCHEMA_VERSION + 1,))
    db.commit()
    db.close()
    with pytest.raises(ts.InvalidInputError, match="newer taskspace"):
        ts.TaskSpace(sur, path)


def test_a_truncated_file_is_refused(tmp_path, sur, embeddings):
    path = tmp_path / "space.sqlite"
    with ts.TaskSpace(sur, path) as space:
        fill(space, embeddings)
    raw = path.read_bytes()
    assert len(raw) > 8192
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ts.InvalidInputError):
        ts.TaskSpace(sur, path)


def test_open_needs_an_existing_file(tmp_path):
    with pytest.raises(ts.InvalidInputError, match="no such space file"):
        ts.TaskSpace.open(tmp_path / "missing.sqlite")


# -- bad input -----------------------------------------------------------------------------------------


def test_bad_arguments(space, sur, embeddings):
    with pytest.raises(TypeError):
        ts.TaskSpace("not a surrogate")  # type: ignore[arg-type]
    with pytest.raises(ts.InvalidInputError):
        ts.TaskSpace(sur, index_threshold=-1)
    with pytest.raises(TypeError):
        space.add(embeddings[0].vector)  # type: ignore[arg-type]
    unnamed = sur.dataset_embedding(*datasets.load("news_topic"))
    with pytest.raises(ts.InvalidInputError, match="no name"):
        space.add(unnamed)
    for k in (0, -1):
        with pytest.raises(ts.InvalidInputError):
            space.nearest("news_topic", k=k)
    with pytest.raises(TypeError):
        space.nearest("news_topic", k=1.5)  # type: ignore[arg-type]
    with pytest.raises(ts.InvalidInputError, match="kind"):
        space.names(kind="models")
    with pytest.raises(KeyError):
        space.nearest("missing")
    with pytest.raises(ts.InvalidInputError, match="one vector of length 256"):
        space.nearest(np.ones(3))
    with pytest.raises(ts.InvalidInputError, match="NaN"):
        space.nearest(np.full(256, np.nan))
    with pytest.raises(ts.InvalidInputError, match="degenerate"):
        space.nearest(np.zeros(256))
    with pytest.raises(KeyError):
        space.select("news_topic", candidates=["missing"])
    with pytest.raises(ts.InvalidInputError, match="empty"):
        space.select("news_topic", candidates=[])
    with pytest.raises(TypeError):
        space.select("news_topic", candidates="news_topic/model-0")
    for t in (1.5, -2, float("nan")):
        with pytest.raises(ts.InvalidInputError):
            space.duplicates(t)
    with pytest.raises(TypeError):
        space.duplicates("0.9")  # type: ignore[arg-type]


def test_empty_space_answers_empty(sur):
    space = ts.TaskSpace(sur)
    assert len(space) == 0 and space.names() == [] and space.duplicates() == [] and space.mode is None
    e = sur.dataset_embedding(*datasets.load("news_topic"), name="only")
    space.add(e)
    assert space.nearest("only") == [] and space.select("only") == []


def test_the_search_docs_examples_run(tmp_path, monkeypatch, capsys):
    """The python blocks of docs/search.md (merged into the README) run as written."""
    import re
    from pathlib import Path

    doc = Path(__file__).resolve().parents[1] / "docs" / "search.md"
    blocks = re.findall(r"```python\n(.*?)```", doc.read_text(encoding="utf-8"), flags=re.S)
    assert len(blocks) == 2
    monkeypatch.chdir(tmp_path)
    for code in blocks:
        exec(compile(code, str(doc), "exec"), {})
    out = capsys.readouterr().out
    assert (
        "llm/prompt-" in out and (tmp_path / "space.sqlite").is_file() and (tmp_path / "tasks.index").is_dir()
    )


# -- kind-filtered search through the per-kind HNSW indexes ----------------------------------------------

# Small thresholds make modest spaces take the HNSW path (the default, EXACT_MAX, needs > 10,000 entries).
N_MODELS, N_DATASETS = 900, 300


def clustered(n: int, dim: int, seed: int) -> np.ndarray:
    """Vectors around a few dozen Gaussian centres, like the embeddings of related tasks."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((max(n // 30, 1), dim))
    return (centres[rng.integers(0, len(centres), n)] + 0.6 * rng.standard_normal((n, dim))).astype(
        np.float32
    )


def synthetic(sur: ts.Surrogate, n: int, kind: str, seed: int, prefix: str) -> list[ts.TaskEmbedding]:
    return [
        ts.TaskEmbedding(
            vector=v,
            fingerprint=sur.fingerprint,
            mode="text",
            method="operator",
            name=f"{prefix}{i:05d}",
            kind=kind,
        )  # type: ignore[arg-type]
        for i, v in enumerate(clustered(n, sur.dim, seed))
    ]


@pytest.fixture(scope="module")
def many(sur) -> list[ts.TaskEmbedding]:
    """Models and datasets drawn from the same clusters, so each kind's neighbours mix with the other's."""
    both = clustered(N_MODELS + N_DATASETS, sur.dim, 11)
    return [
        ts.TaskEmbedding(
            vector=v,
            fingerprint=sur.fingerprint,
            mode="text",
            method="operator",
            name=f"{'m' if i < N_MODELS else 'd'}{i:05d}",
            kind="model" if i < N_MODELS else "dataset",
        )
        for i, v in enumerate(both)
    ]


def exact_nearest(
    embs: list[ts.TaskEmbedding], query: np.ndarray, k: int, kind: str | None, skip: str | None
):
    """Brute-force numpy (float64): the k most similar non-degenerate entries of ``kind``."""
    cands = [e for e in embs if kind in (None, e.kind) and e.name != skip and not e.degenerate]
    x = np.stack([e.vector for e in cands]).astype(np.float64)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    q = query.astype(np.float64) / np.linalg.norm(query)
    cos = x @ q
    return sorted(((e.name, float(c)) for e, c in zip(cands, cos, strict=True)), key=lambda p: (-p[1], p[0]))[
        :k
    ]


def check_search(space: ts.TaskSpace, embs: list[ts.TaskEmbedding], *, queries: int, k: int = 10) -> float:
    """Compare nearest() with brute force for every kind on name and vector queries; returns recall@k."""
    by_name = {e.name: e for e in embs}
    live = [e for e in embs if not e.degenerate]
    hits = total = 0
    for e in live[:: max(len(live) // queries, 1)][:queries]:
        for kind in (None, "dataset", "model"):
            for query, skip in ((e.name, e.name), (e.vector, None)):
                got = space.nearest(query, k=k, kind=kind)
                want = exact_nearest(embs, e.vector, k, kind, skip)
                assert len(got) == len(want)
                assert all(kind in (None, by_name[n].kind) for n, _ in got), (kind, got)
                assert all(n != skip for n, _ in got)
                assert got == sorted(got, key=lambda p: (-p[1], p[0]))  # the library's tie order
                cos = dict(exact_nearest(embs, e.vector, len(embs), None, None))
                np.testing.assert_allclose([s for _, s in got], [cos[n] for n, _ in got], atol=1e-5)
                # Exact float ties may pick other names: count a hit by similarity, not by name.
                hits += sum(s >= want[-1][1] - 1e-6 for _, s in got)
                total += len(want)
    return hits / total


def index_contents(space: ts.TaskSpace) -> dict[str | None, set[int]]:
    """Row ids the search index holds as searchable (live, non-zero), of each kind and of all."""
    index = space._index.index
    searchable = index.live & ~index.zero
    out = {
        kind: set(index.ids[searchable & (index.part == p)].tolist())
        for kind, p in (("dataset", 0), ("model", 1))
    }
    return {None: out["dataset"] | out["model"], **out}


def stored_ids(space: ts.TaskSpace) -> dict[str | None, set[int]]:
    """Row ids of each built index's entries (None: every kind's) as the SQLite file has them:
    the non-degenerate entries of its kind."""
    out: dict[str | None, set[int]] = {None: set(), "dataset": set(), "model": set()}
    for name in space.names():
        row = space.info(name)
        if np.any(row.vector):
            out[row.kind].add(row.id)
            out[None].add(row.id)
    return out


@pytest.fixture
def searched(monkeypatch) -> list[object]:
    """Records the allowed_ids of every Index.search call (the real search still runs)."""
    seen: list[object] = []
    real = ts.Index.search

    def search(self, queries, k=10, **options):
        seen.append(options.get("allowed_ids"))
        return real(self, queries, k, **options)

    monkeypatch.setattr(ts.Index, "search", search)
    return seen


@pytest.mark.parametrize("threshold", [200, 400])  # 400: datasets (300) are searched exactly, models not
def test_kind_filtered_search_uses_one_index_per_kind(sur, many, searched, threshold):
    space = fill(ts.TaskSpace(sur, index_threshold=threshold), many)
    assert check_search(space, many, queries=25) >= 0.95
    assert not searched  # the space's own compact index: one graph per kind, no per-query filter
    graphs = space._index.index._graphs
    assert graphs[0] is not None and graphs[1] is not None
    assert graphs[0].element_count + graphs[1].element_count == len(index_contents(space)[None])
    assert index_contents(space) == stored_ids(space)


def test_a_kind_under_the_threshold_is_searched_exactly(sur, many):
    space = fill(ts.TaskSpace(sur, index_threshold=N_DATASETS), many)
    for e in many[N_MODELS::37]:
        got, want = (
            space.nearest(e.name, k=7, kind="dataset"),
            exact_nearest(many, e.vector, 7, "dataset", e.name),
        )
        assert [n for n, _ in got] == [n for n, _ in want]  # exact: name for name
        np.testing.assert_allclose([s for _, s in got], [s for _, s in want], atol=1e-5)
    assert all(n.startswith("m") for n, _ in space.nearest(many[0].name, k=5, kind="model"))


def test_per_kind_indexes_follow_adds_removes_and_kind_changes(sur, many):
    space = fill(ts.TaskSpace(sur, index_threshold=200), many)
    for kind in (None, "dataset", "model"):
        space.nearest(many[0].name, k=3, kind=kind)
    now = {e.name: e for e in many}
    for e in many[::7]:
        space.remove(e.name)
        del now[e.name]
    # Replacing an entry with one of the other kind moves it to the other kind's index.
    for e in many[1:N_MODELS:50] + many[N_MODELS + 1 :: 50]:
        other = "dataset" if e.kind == "model" else "model"
        swapped = ts.TaskEmbedding(
            vector=e.vector, fingerprint=e.fingerprint, mode=e.mode, method=e.method, name=e.name, kind=other
        )
        space.add(swapped, replace=True)
        now[e.name] = swapped
    for e in synthetic(sur, 150, "dataset", 12, "new-d") + synthetic(sur, 150, "model", 13, "new-m"):
        space.add(e)
        now[e.name] = e
    zero = ts.TaskEmbedding(
        vector=np.zeros(sur.dim),
        fingerprint=sur.fingerprint,
        mode="text",
        method="operator",
        name="zero",
        kind="model",
    )
    space.add(zero)
    now["zero"] = zero
    assert index_contents(space) == stored_ids(space)
    assert all("zero" not in {n for n, _ in space.nearest(e.name, k=50)} for e in many[2:6])
    assert check_search(space, list(now.values()), queries=15) >= 0.95


def test_per_kind_indexes_after_reopen_and_another_connections_change(tmp_path, sur, many):
    path = tmp_path / "big.sqlite"
    with ts.TaskSpace(sur, path, index_threshold=200) as space:
        fill(space, many)
        before = [space.nearest(e.name, k=10, kind="model") for e in many[::100]]
    reopened = ts.TaskSpace.open(path, index_threshold=200)
    assert check_search(reopened, many, queries=10) >= 0.95
    after = [reopened.nearest(e.name, k=10, kind="model") for e in many[::100]]
    overlap = [len({n for n, _ in a} & {n for n, _ in b}) / 10 for a, b in zip(before, after, strict=True)]
    assert np.mean(overlap) >= 0.95  # a fresh graph, the same neighbours
    new = synthetic(sur, 5, "model", 14, "elsewhere")
    with ts.TaskSpace(sur, path, index_threshold=200) as other:
        for e in new:
            other.add(e)
        other.remove(many[0].name)
    # The next call sees the other connection's changes and searches fresh indexes.
    assert reopened.nearest(new[0].vector, k=1, kind="model")[0][0] == new[0].name
    assert reopened.nearest(new[0].vector, k=1, kind="dataset")[0][0].startswith("d")
    assert index_contents(reopened) == stored_ids(reopened)
    reopened.close()


def test_threads_search_by_kind_while_another_changes_the_space(sur, many):
    space = fill(ts.TaskSpace(sur, index_threshold=200), many)
    extra = synthetic(sur, 120, "dataset", 15, "extra") + synthetic(sur, 120, "model", 16, "extra-m")
    kinds = {e.name: e.kind for e in many + extra}
    errors: list[BaseException] = []
    done = threading.Event()

    def writer() -> None:
        try:
            for j, e in enumerate(extra):
                space.add(e)
                if j % 3 == 0:
                    space.remove(many[j].name)
        except BaseException as e:
            errors.append(e)
        finally:
            done.set()

    def reader(kind: str | None) -> None:
        try:
            for j in range(10_000):  # bounded; stops when the writer is done
                if done.is_set():
                    break
                got = space.nearest(many[N_MODELS - 1 - j % 50].vector, k=5, kind=kind)
                assert len(got) == 5 and all(kind in (None, kinds[n]) for n, _ in got)
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=writer)] + [
        threading.Thread(target=reader, args=(kind,)) for kind in (None, "dataset", "model")
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors[0]
    assert not any(t.is_alive() for t in threads)
    assert index_contents(space) == stored_ids(space)
